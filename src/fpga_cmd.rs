//! `trimac build`, `trimac flash` and `trimac serve`: bitstreams for the boards, loading them,
//! and a virtual board on a pseudo-terminal. The work is done by `trimac-fpga`; this file
//! parses arguments, shows progress and prints reports.

use crate::CliResult;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use trimac_fpga::board::{board, Board, Placer};
use trimac_fpga::flash::{default_bitstream, flash, Target};
use trimac_fpga::flow::{build, BuildError, BuildOptions, BuildReport, Progress};
use trimac_fpga::virtual_board::{calibrate, measure_speed, virtual_config, VirtualBoard};
use trimac_hdl::Config;

/// Arguments of `trimac build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Board: icebreaker, upduino3, ulx3s-85f, ulx3s-25f, orangecrab-25f.
    #[arg(long)]
    board: String,
    /// Array shape, rows x columns (default: the board's).
    #[arg(long)]
    array: Option<String>,
    /// Place-and-route seeds; the report gives the median, min and max Fmax over them.
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// Design clock in MHz (default: the board's); the PLL makes the closest it can.
    #[arg(long)]
    freq: Option<f64>,
    /// UART baud rate (default: the board's).
    #[arg(long)]
    baud: Option<u64>,
    /// Build directory (default: out/<board>-<array>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Niceness of place and route (`nice -n`); 0 runs it at normal priority.
    #[arg(long, default_value_t = 10)]
    nice: i32,
    /// Skip synthesizing the array alone (the LUT4-per-lane figure).
    #[arg(long)]
    no_array_report: bool,
    /// nextpnr placer: `heap` (with router1) or `static` (with router2). Default: the
    /// board's choice for the array (the ULX3S-85F places arrays of 1024 lanes or more
    /// with `static`, the rest with `heap`).
    #[arg(long)]
    placer: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Arguments of `trimac flash`.
#[derive(Args, Debug)]
pub struct FlashArgs {
    /// Board (see `trimac build --board`).
    #[arg(long)]
    board: String,
    /// Bitstream (default: what `trimac build` wrote for the board's array under out/).
    #[arg(long)]
    bitstream: Option<PathBuf>,
    /// Array of the default bitstream.
    #[arg(long)]
    array: Option<String>,
    /// Load into the FPGA's configuration memory (lost at power-off; the default).
    #[arg(long, conflicts_with = "flash")]
    sram: bool,
    /// Write the board's SPI flash (kept across power cycles).
    #[arg(long)]
    flash: bool,
}

/// Arguments of `trimac serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Device behind the port: `sim` (rust-hdl), `verilator`, or `cpu` (reference model).
    #[arg(long, default_value = "sim")]
    backend: String,
    /// Serve on a new pseudo-terminal (the only transport); its path is printed first.
    #[arg(long)]
    pty: bool,
    /// Array shape, rows x columns.
    #[arg(long, default_value = "8x8")]
    array: String,
    /// Clock the virtual board reports in INFO, Hz (default: a quarter of the measured
    /// simulation speed, so the driver's waits hold on a busy host).
    #[arg(long)]
    clock_hz: Option<u32>,
}

fn board_arg(name: &str) -> CliResult<&'static Board> {
    Ok(board(name).map_err(|e| format!("--board: {e}"))?)
}

fn array_arg(spec: Option<&str>, b: &Board) -> CliResult<(usize, usize)> {
    match spec {
        None => Ok(b.array),
        Some(s) => {
            let c = Config::from_array_spec(s).map_err(|e| format!("--array {s}: {e}"))?;
            Ok((c.rows, c.cols))
        }
    }
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// `trimac build`.
pub fn build_cmd(a: &BuildArgs) -> CliResult<ExitCode> {
    let b = board_arg(&a.board)?;
    let (rows, cols) = array_arg(a.array.as_deref(), b)?;
    let clock_hz = match a.freq {
        Some(f) if f.is_finite() && f > 0.0 && f < 1000.0 => (f * 1e6).round() as u64,
        Some(f) => return Err(format!("--freq {f}: give the design clock in MHz").into()),
        None => b.clock_hz,
    };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(format!("{}-{rows}x{cols}", b.name)));
    let opts = BuildOptions {
        board: b,
        rows,
        cols,
        clock_hz,
        baud: a.baud.unwrap_or(b.baud),
        seeds: a.seeds,
        out_dir: out,
        nice: (a.nice != 0).then_some(a.nice),
        array_report: !a.no_array_report,
        placer: a
            .placer
            .as_deref()
            .map(Placer::from_name)
            .transpose()
            .map_err(|e| format!("--placer: {e}"))?,
    };
    let bar = spinner();
    bar.set_message(format!("{} {rows}x{cols}: starting", b.name));
    let result = build(&opts, &mut |p| match p {
        Progress::Step(s) => bar.set_message(format!("{} {rows}x{cols}: {s}", b.name)),
        Progress::Seed {
            seed,
            done,
            total,
            fmax_mhz,
        } => bar.println(format!(
            "seed {seed}: Fmax {fmax_mhz:.1} MHz ({done}/{total})"
        )),
    });
    bar.finish_and_clear();
    match result {
        Ok(r) => {
            print_report(&r, a.json);
            eprintln!(
                "flash it with: trimac flash --board {} --bitstream {}",
                b.name,
                r.bitstream.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(BuildError::Timing(r)) => {
            print_report(&r, a.json);
            Err(BuildError::Timing(r).to_string().into())
        }
        Err(e) => Err(e.to_string().into()),
    }
}

fn print_report(r: &BuildReport, json: bool) {
    if json {
        match serde_json::to_string(r) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot encode the report: {e}"),
        }
    } else {
        println!("{r}");
    }
}

/// `trimac flash`.
pub fn flash_cmd(a: &FlashArgs) -> CliResult<ExitCode> {
    let b = board_arg(&a.board)?;
    let bitstream = match &a.bitstream {
        Some(p) => p.clone(),
        None => {
            let (rows, cols) = array_arg(a.array.as_deref(), b)?;
            let array = format!("{rows}x{cols}");
            default_bitstream(
                b,
                &array,
                &PathBuf::from("out").join(format!("{}-{array}", b.name)),
            )
        }
    };
    let target = if a.flash { Target::Flash } else { Target::Sram };
    eprintln!("{}: {}", b.title, b.note);
    let out = flash(b, &bitstream, target)?;
    eprint!("{out}");
    println!(
        "{} loaded into the {} of the {}",
        bitstream.display(),
        match target {
            Target::Sram => "FPGA (SRAM)",
            Target::Flash => "SPI flash",
        },
        b.name
    );
    Ok(ExitCode::SUCCESS)
}

/// Never set: `serve` runs until it is killed or its loop fails.
static NEVER: AtomicBool = AtomicBool::new(false);

/// `trimac serve`.
pub fn serve_cmd(a: &ServeArgs) -> CliResult<ExitCode> {
    if !a.pty {
        return Err(
            "serve needs --pty (the virtual board's serial port is a pseudo-terminal)".into(),
        );
    }
    let base =
        Config::from_array_spec(&a.array).map_err(|e| format!("--array {}: {e}", a.array))?;
    let vb = match a.backend.as_str() {
        "sim" => {
            let hz = match a.clock_hz {
                Some(hz) => hz,
                None => {
                    let mut probe = trimac_sim::rtl::RtlDevice::new(&base, Default::default())?;
                    calibrate(measure_speed(&mut probe, 20_000))
                }
            };
            VirtualBoard::start(virtual_config(&base, hz), |c: &Config| {
                trimac_sim::rtl::RtlDevice::new(c, Default::default())
            })?
        }
        "verilator" => {
            // Verilator builds a model per configuration: no second build to calibrate.
            let hz = a.clock_hz.unwrap_or(100_000);
            VirtualBoard::start(virtual_config(&base, hz), |c: &Config| {
                trimac_verilator::VerilatorDevice::new(c, Default::default())
            })?
        }
        "cpu" => {
            let hz = a.clock_hz.unwrap_or(1_000_000);
            VirtualBoard::start(virtual_config(&base, hz), |c: &Config| {
                Ok(trimac_sim::reference::ReferenceDevice::new(c))
            })?
        }
        other => {
            return Err(format!(
                "serve --backend {other}: the virtual board runs `sim`, `verilator` or `cpu`"
            )
            .into())
        }
    };
    // The first line of output is the path, for scripts and tests.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", vb.path())?;
    stdout.flush()?;
    drop(stdout);
    let c = vb.config();
    eprintln!(
        "virtual {} board ({} backend, reports a {} Hz clock, frame timeout {} cycles) on {}; \
         connect with: trimac demo --backend serial --port {} --array {}",
        c.array_name(),
        a.backend,
        c.clock_hz,
        c.frame_timeout_cycles,
        vb.path(),
        vb.path(),
        c.array_name()
    );
    let stats = vb.wait(&NEVER)?;
    eprintln!(
        "virtual board stopped: {} bytes in, {} out, {} replies",
        stats.bytes_in, stats.bytes_out, stats.replies
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trimac_fpga::board::BOARDS;

    #[test]
    fn bad_arguments_are_errors_naming_the_argument() {
        let args = BuildArgs {
            board: "nexys".into(),
            array: None,
            seeds: 1,
            freq: None,
            baud: None,
            out: None,
            nice: 10,
            no_array_report: true,
            placer: None,
            json: false,
        };
        let e = build_cmd(&args).unwrap_err().to_string();
        assert!(e.contains("--board") && e.contains("icebreaker"), "{e}");
        let args = BuildArgs {
            board: "icebreaker".into(),
            array: Some("3x3".into()),
            ..args
        };
        assert!(build_cmd(&args)
            .unwrap_err()
            .to_string()
            .contains("--array 3x3"));
        let args = BuildArgs {
            array: None,
            placer: Some("annealing".into()),
            ..args
        };
        let e = build_cmd(&args).unwrap_err().to_string();
        assert!(
            e.contains("--placer") && e.contains("annealing") && e.contains("heap"),
            "{e}"
        );
        let f = FlashArgs {
            board: "icebreaker".into(),
            bitstream: Some("/nonexistent/x.bin".into()),
            array: None,
            sram: true,
            flash: false,
        };
        assert!(flash_cmd(&f)
            .unwrap_err()
            .to_string()
            .contains("missing or empty"));
        let s = ServeArgs {
            backend: "sim".into(),
            pty: false,
            array: "4x4".into(),
            clock_hz: None,
        };
        assert!(serve_cmd(&s).unwrap_err().to_string().contains("--pty"));
        assert!(BOARDS.iter().any(|b| b.name == "ulx3s-85f"));
    }
}
