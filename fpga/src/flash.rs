//! Loading a bitstream onto a board: openFPGALoader (found through `trimac-toolchain`), or
//! `dfu-util` for boards with a USB DFU bootloader (the OrangeCrab).
//!
//! With no board attached the programmer fails; [`flash`] turns that into a message that says
//! so, with the programmer's own words.

use crate::board::{Board, Programmer};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use trimac_toolchain::{locate, Tool, ToolchainError};

/// Where the bitstream goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The FPGA's configuration memory: lost at power-off, fast.
    Sram,
    /// The board's SPI flash: loaded at every power-up.
    Flash,
}

/// Why flashing failed.
#[derive(Debug)]
pub enum FlashError {
    /// The bitstream file is missing or empty.
    Bitstream(String),
    /// The programmer is not installed.
    Toolchain(ToolchainError),
    /// The programmer is not installed (a tool outside the project toolchain).
    Missing(String),
    /// The programmer ran and found no board.
    NoBoard {
        /// The board.
        board: String,
        /// What the programmer said.
        detail: String,
    },
    /// The programmer failed otherwise.
    Failed {
        /// The command line.
        command: String,
        /// What it said.
        detail: String,
    },
    /// The board cannot do what was asked.
    Unsupported(String),
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashError::Bitstream(e) | FlashError::Missing(e) | FlashError::Unsupported(e) => {
                write!(f, "{e}")
            }
            FlashError::Toolchain(e) => write!(f, "{e}"),
            FlashError::NoBoard { board, detail } => write!(
                f,
                "no {board} board found: is it plugged in, powered, and may this user open its \
                 USB device (udev rules)? The programmer said: {detail}"
            ),
            FlashError::Failed { command, detail } => {
                write!(f, "`{command}` failed: {detail}")
            }
        }
    }
}

impl std::error::Error for FlashError {}

/// The programmer invocation for `board`: program, arguments (the bitstream last).
pub fn plan(
    board: &Board,
    bitstream: &Path,
    target: Target,
) -> Result<(String, Vec<String>), FlashError> {
    let file = bitstream.display().to_string();
    match board.programmer {
        Programmer::OpenFpgaLoader { board: name } => Ok((
            "openFPGALoader".into(),
            vec!["-b".into(), name.into(), target_flag(target).into(), file],
        )),
        Programmer::OpenFpgaLoaderCable { cable } => Ok((
            "openFPGALoader".into(),
            vec!["-c".into(), cable.into(), target_flag(target).into(), file],
        )),
        Programmer::DfuUtil { usb_id } => match target {
            Target::Flash => Ok((
                "dfu-util".into(),
                vec![
                    "-d".into(),
                    usb_id.into(),
                    "-a".into(),
                    "0".into(),
                    "-D".into(),
                    file,
                ],
            )),
            Target::Sram => Err(FlashError::Unsupported(format!(
                "the {}'s bootloader writes flash only: use --flash",
                board.name
            ))),
        },
    }
}

fn target_flag(target: Target) -> &'static str {
    match target {
        Target::Sram => "--write-sram",
        Target::Flash => "--write-flash",
    }
}

/// Messages of programmers that found no board.
const NO_BOARD: [&str; 9] = [
    "unable to open ftdi device",
    "no device found",
    "no dfu capable usb device",
    "cannot find",
    "jtag init failed",
    "device not found",
    "fail to open",
    "libusb_open",
    "no cable",
];

/// Classifies a failed programmer run.
pub fn classify(board: &Board, command: &str, output: &str) -> FlashError {
    let lower = output.to_lowercase();
    let detail = output
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("(no output)")
        .to_string();
    if NO_BOARD.iter().any(|m| lower.contains(m)) {
        return FlashError::NoBoard {
            board: board.name.into(),
            detail,
        };
    }
    if lower.contains("error while loading shared libraries") {
        return FlashError::Failed {
            command: command.into(),
            detail: format!(
                "{detail} (openFPGALoader needs libusb and libftdi: apt-get install \
                 libusb-1.0-0 libftdi1-2)"
            ),
        };
    }
    FlashError::Failed {
        command: command.into(),
        detail,
    }
}

/// Loads `bitstream` onto `board`. Returns the programmer's output.
pub fn flash(board: &Board, bitstream: &Path, target: Target) -> Result<String, FlashError> {
    let size = std::fs::metadata(bitstream).map(|m| m.len()).unwrap_or(0);
    if size == 0 {
        return Err(FlashError::Bitstream(format!(
            "bitstream {} is missing or empty: build it with `trimac build --board {}`",
            bitstream.display(),
            board.name
        )));
    }
    let (program, args) = plan(board, bitstream, target)?;
    let mut cmd = if program == "openFPGALoader" {
        locate(Tool::OpenFpgaLoader)
            .map_err(FlashError::Toolchain)?
            .command()
    } else {
        Command::new(&program)
    };
    cmd.args(&args);
    let line = format!("{program} {}", args.join(" "));
    let (ok, output) = run_bounded(cmd, Duration::from_secs(600)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            FlashError::Missing(format!(
                "{program} is not installed (Debian: apt-get install {program})"
            ))
        } else {
            FlashError::Failed {
                command: line.clone(),
                detail: e.to_string(),
            }
        }
    })?;
    if !ok {
        return Err(classify(board, &line, &output));
    }
    Ok(output)
}

/// Runs `cmd` with its output captured, killing it after `timeout`.
fn run_bounded(mut cmd: Command, timeout: Duration) -> std::io::Result<(bool, String)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = format!(
        "{}{}",
        t_out.join().unwrap_or_default(),
        t_err.join().unwrap_or_default()
    );
    match status {
        Some(s) => Ok((s.success(), text)),
        None => Ok((
            false,
            format!("{text}\nno answer within {} s", timeout.as_secs()),
        )),
    }
}

/// The bitstream `trimac build` writes for `board` and `array` in `out_dir`.
pub fn default_bitstream(board: &Board, array: &str, out_dir: &Path) -> PathBuf {
    let ext = match board.family {
        crate::board::Family::Ice40 => "bin",
        crate::board::Family::Ecp5 => "bit",
    };
    out_dir.join(format!("trimac-{}-{array}.{ext}", board.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::board;

    #[test]
    fn programmer_lines_per_board() {
        let p = Path::new("x.bin");
        let (prog, args) = plan(board("icebreaker").unwrap(), p, Target::Sram).unwrap();
        assert_eq!(prog, "openFPGALoader");
        assert_eq!(args, ["-b", "icebreaker", "--write-sram", "x.bin"]);
        let (_, args) = plan(board("ulx3s-85f").unwrap(), p, Target::Flash).unwrap();
        assert_eq!(args, ["-b", "ulx3s", "--write-flash", "x.bin"]);
        let oc = board("orangecrab-25f").unwrap();
        let (prog, args) = plan(oc, p, Target::Flash).unwrap();
        assert_eq!(prog, "dfu-util");
        assert!(args.contains(&"1209:5af0".to_string()));
        assert!(plan(oc, p, Target::Sram)
            .unwrap_err()
            .to_string()
            .contains("--flash"));
    }

    #[test]
    fn a_missing_board_is_said_plainly() {
        let b = board("icebreaker").unwrap();
        let e = classify(
            b,
            "openFPGALoader -b icebreaker",
            "write to flash\nunable to open ftdi device: -3 (device not found)\n",
        );
        assert!(matches!(e, FlashError::NoBoard { .. }));
        assert!(e.to_string().contains("no icebreaker board found"));
        let e = classify(b, "x", "something else broke");
        assert!(matches!(e, FlashError::Failed { .. }));
    }

    #[test]
    fn missing_bitstream_is_an_error_before_any_tool() {
        let b = board("ulx3s-85f").unwrap();
        let e = flash(b, Path::new("/nonexistent/trimac.bit"), Target::Sram).unwrap_err();
        assert!(
            e.to_string().contains("trimac build --board ulx3s-85f"),
            "{e}"
        );
        assert_eq!(
            default_bitstream(b, "32x32", Path::new("out")),
            Path::new("out/trimac-ulx3s-85f-32x32.bit")
        );
    }
}
