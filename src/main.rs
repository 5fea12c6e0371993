//! `trimac`: the command line of the ternary-weight accelerator. A thin layer: the work is
//! done by `trimac-driver`; this file parses arguments, shows progress and prints reports.
#![forbid(unsafe_code)]

mod bench;
mod fpga_cmd;
mod report;
mod toolchain_cmd;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use report::Table;
use serde_json::json;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use trimac_driver::device::{open, Device, OpenOptions};
use trimac_driver::gemm::run_gemm_matrices;
use trimac_driver::mlp::run_mlp;
use trimac_driver::model::{accuracy, DemoPaths, Model, TestSet};
use trimac_driver::npy::{read_i8_matrix, read_ternary_matrix, write_i32_matrix, Matrix};
use trimac_hdl::Config;

type CliResult<T> = Result<T, Box<dyn Error>>;

/// Ternary-weight (BitNet b1.58) systolic accelerator: run matrix products and a demo model
/// on a device, or emit its Verilog.
#[derive(Parser, Debug)]
#[command(name = "trimac", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Y = X . W on the device: X int8 [M,K], W ternary int8 [K,N], Y int32 [M,N].
    Gemm(GemmArgs),
    /// Write the Verilog of the whole top-level.
    Verilog(VerilogArgs),
    /// Classify the committed digits test set with the committed ternary MLP on the device.
    Demo(DemoArgs),
    /// Show the configuration the device reports.
    Info(InfoArgs),
    /// Install or inspect the project's pinned open toolchain (Verilator, Yosys, nextpnr, ...).
    Toolchain(toolchain_cmd::ToolchainArgs),
    /// Measure GEMM and GEMV cycles, utilization and simulation speed on random data.
    Bench(bench::BenchArgs),
    /// Build a bitstream for a board, with a utilization and timing report.
    Build(fpga_cmd::BuildArgs),
    /// Load a bitstream onto a board.
    Flash(fpga_cmd::FlashArgs),
    /// A virtual board: a simulated device behind a pseudo-terminal (a board's serial port).
    Serve(fpga_cmd::ServeArgs),
}

/// Which device to talk to.
#[derive(Args, Debug)]
struct DeviceArgs {
    /// Backend: `sim` (cycle-accurate rust-hdl simulation of the RTL, the built-in simulator)
    /// or `cpu` (the golden reference model behind the same protocol), or `verilator` (the
    /// same RTL verilated: much faster; needs the project toolchain).
    #[arg(long, default_value = "sim")]
    backend: String,
    /// Array shape, rows x columns.
    #[arg(long, default_value = "8x8")]
    array: String,
    /// Write a VCD waveform of the session (sim backend only).
    #[arg(long)]
    vcd: Option<PathBuf>,
    /// Write a waveform of the session: FST if FILE ends in .fst, else VCD (verilator backend).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Serial port of a board or a virtual board (`--backend serial`).
    #[arg(long)]
    port: Option<String>,
    /// Baud rate of the serial port (`--backend serial`).
    #[arg(long, default_value_t = trimac_driver::serial::DEFAULT_BAUD)]
    baud: u32,
}

impl DeviceArgs {
    fn config(&self) -> CliResult<Config> {
        Config::from_array_spec(&self.array)
            .map_err(|e| format!("--array {}: {e}", self.array).into())
    }

    fn open(&self) -> CliResult<Box<dyn Device>> {
        if let (Some(port), "serial") = (&self.port, self.backend.as_str()) {
            return Ok(trimac_driver::serial::open(
                port,
                self.baud,
                &self.config()?,
            )?);
        }
        if self.port.is_some() {
            return Err("--port is for --backend serial".into());
        }
        let opts = OpenOptions {
            vcd: match (&self.vcd, &self.trace, self.backend.as_str()) {
                (Some(_), _, "verilator") => {
                    return Err("--vcd is for the sim backend; use --trace with verilator".into())
                }
                (_, Some(_), b) if b != "verilator" => {
                    return Err(
                        format!("--trace needs --backend verilator (use --vcd with {b})").into(),
                    )
                }
                (vcd, trace, _) => vcd.clone().or_else(|| trace.clone()),
            },
        };
        Ok(open(&self.backend, &self.config()?, &opts)?)
    }
}

#[derive(Args, Debug)]
struct GemmArgs {
    /// Ternary weights W [K,N], int8 .npy with values -1, 0, 1.
    #[arg(long)]
    weights: PathBuf,
    /// Activations X [M,K], int8 .npy.
    #[arg(long)]
    input: PathBuf,
    /// Where to write Y [M,N], int32 .npy.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct VerilogArgs {
    /// Array shape, rows x columns.
    #[arg(long, default_value = "8x8")]
    array: String,
    /// Output file (default: standard output).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DemoArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Run only the first N test images.
    #[arg(long)]
    limit: Option<usize>,
    /// Model file (.tmm) instead of the committed digits MLP.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Test inputs (raw features, .npy [images, features]) instead of the committed split.
    #[arg(long, requires = "test_y")]
    test_x: Option<PathBuf>,
    /// Test labels (.npy [images]) that go with `--test-x`.
    #[arg(long, requires = "test_x")]
    test_y: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct InfoArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gemm(a) => gemm(&a),
        Command::Verilog(a) => verilog(&a),
        Command::Demo(a) => demo(&a),
        Command::Info(a) => info(&a),
        Command::Toolchain(a) => toolchain_cmd::toolchain(&a),
        Command::Bench(a) => bench::bench(&a),
        Command::Build(a) => fpga_cmd::build_cmd(&a),
        Command::Flash(a) => fpga_cmd::flash_cmd(&a),
        Command::Serve(a) => fpga_cmd::serve_cmd(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A progress bar on stderr (drawn only when stderr is a terminal).
fn progress_bar(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg:>8} [{bar:32}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

fn gemm(a: &GemmArgs) -> CliResult<ExitCode> {
    let x = read_i8_matrix(&a.input)?;
    let w = read_ternary_matrix(&a.weights)?;
    let mut dev = a.device.open()?;
    let bar = progress_bar(0, "runs");
    let report = run_gemm_matrices(dev.as_mut(), &x, &w, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let y = Matrix {
        rows: report.m,
        cols: report.n,
        data: report.y.clone(),
    };
    write_i32_matrix(&a.out, &y)?;
    let cfg = dev.config();
    if a.json {
        let j = json!({
            "command": "gemm",
            "backend": dev.backend(),
            "array": cfg.array_name(),
            "m": report.m,
            "k": report.k,
            "n": report.n,
            "cycles": report.cycles,
            "transfer_cycles": report.transfer_cycles,
            "transfer_bytes": report.transfer_bytes,
            "macs": report.macs,
            "utilization": report.utilization,
            "runs": report.runs,
            "retries": report.retries,
            "wall_seconds": report.wall_seconds,
            "output": a.out.display().to_string(),
        });
        println!("{j}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(format!(
        "gemm {}x{} . {}x{} on {} {}",
        report.m,
        report.k,
        report.k,
        report.n,
        dev.backend(),
        cfg.array_name()
    ));
    t.row("cycles", report.cycles.to_string());
    t.row(
        "transfer cycles",
        format!(
            "{} ({} bytes)",
            report.transfer_cycles, report.transfer_bytes
        ),
    );
    t.row("MACs", report.macs.to_string());
    t.row("utilization", report::percent(report.utilization));
    t.row("runs", report.runs.to_string());
    t.row("wall time", report::seconds(report.wall_seconds));
    t.row(
        "output",
        format!("{} ({}x{} int32)", a.out.display(), report.m, report.n),
    );
    print!("{t}");
    Ok(ExitCode::SUCCESS)
}

fn verilog(a: &VerilogArgs) -> CliResult<ExitCode> {
    let cfg = Config::from_array_spec(&a.array).map_err(|e| format!("--array {}: {e}", a.array))?;
    let text = trimac_hdl::verilog::emit_top(&cfg);
    match &a.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        None => {
            // A closed pipe (`trimac verilog | head`) is the reader's choice, not an error.
            use std::io::Write;
            match std::io::stdout().lock().write_all(text.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(format!("cannot write to stdout: {e}").into())
                }
                _ => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo model and test split (the committed ones unless the arguments name others; the
/// first `--limit` images).
fn demo_data(a: &DemoArgs) -> CliResult<(Model, TestSet, usize)> {
    let limit = a.limit;
    let mut paths = DemoPaths::digits(Path::new(env!("CARGO_MANIFEST_DIR")));
    if let Some(m) = &a.model {
        paths.model = m.clone();
    }
    if let (Some(x), Some(y)) = (&a.test_x, &a.test_y) {
        paths.test_x = x.clone();
        paths.test_y = y.clone();
    }
    let model = Model::load(&paths.model)?;
    let test = TestSet::load(&paths.test_x, &paths.test_y)?;
    model.check_test_set(&test)?;
    let images = limit.unwrap_or(test.rows).min(test.rows);
    if images == 0 {
        return Err("--limit must be at least 1 (and the test set must not be empty)".into());
    }
    Ok((model, test, images))
}

fn demo(a: &DemoArgs) -> CliResult<ExitCode> {
    let (model, test, images) = demo_data(a)?;
    let x = &test.x[..images * test.cols];
    let labels = &test.labels[..images];
    let mut dev = a.device.open()?;
    let bar = progress_bar(images, "images");
    let report = run_mlp(dev.as_mut(), &model, x, images, &mut |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let golden_start = Instant::now();
    let golden = model.predict_golden(x, images);
    let cpu_golden_seconds = golden_start.elapsed().as_secs_f64();
    let matches_cpu = report.logits == golden;
    let acc = accuracy(&report.logits, labels, model.classes);
    let cfg = dev.config().clone();
    let cycles_per_image = report.run_cycles as f64 / images as f64;
    if a.json {
        let j = json!({
            "command": "demo",
            "backend": dev.backend(),
            "array": cfg.array_name(),
            "images": images,
            "correct": acc.correct,
            "accuracy": acc.fraction(),
            "matches_cpu": matches_cpu,
            "cycles": report.run_cycles,
            "cycles_per_image": cycles_per_image,
            "transfer_cycles": report.transfer_cycles,
            "macs": report.macs,
            "utilization": report.utilization,
            "chaining": report.chaining.name(),
            "device_seconds_per_image": cycles_per_image / cfg.clock_hz as f64,
            "cpu_golden_seconds": cpu_golden_seconds,
            "wall_seconds": report.wall_seconds,
            "retries": report.retries,
        });
        println!("{j}");
    } else {
        let mut t = Table::new(format!(
            "demo: digits MLP {} on {} {}",
            layer_dims(&model),
            dev.backend(),
            cfg.array_name()
        ));
        t.row("images", images.to_string());
        t.row("accuracy", acc.to_string());
        t.row(
            "cycles per image",
            format!(
                "{cycles_per_image:.1} ({} at {:.0} MHz)",
                report::seconds(cycles_per_image / cfg.clock_hz as f64),
                cfg.clock_hz as f64 / 1e6
            ),
        );
        t.row("utilization", report::percent(report.utilization));
        t.row(
            "transfer cycles",
            format!(
                "{} (layers chained on the {})",
                report.transfer_cycles,
                report.chaining.name()
            ),
        );
        t.row("CPU golden kernel", report::seconds(cpu_golden_seconds));
        t.row("wall time", report::seconds(report.wall_seconds));
        t.row(
            "matches CPU",
            match matches_cpu {
                true => "yes: every logit identical".to_string(),
                false => "NO: the device's logits differ from the golden model".to_string(),
            },
        );
        print!("{t}");
    }
    Ok(match matches_cpu {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}

/// `64 -> 128 -> 10` for the report title.
fn layer_dims(model: &Model) -> String {
    let mut dims = vec![model.input_len.to_string()];
    dims.extend(model.layers.iter().map(|l| l.n.to_string()));
    dims.join(" -> ")
}

fn info(a: &InfoArgs) -> CliResult<ExitCode> {
    let dev = a.device.open()?;
    let info = dev.info();
    let c = &info.config;
    if a.json {
        let j = json!({
            "backend": dev.backend(),
            "array": c.array_name(),
            "protocol_version": info.protocol_version,
            "rows": c.rows,
            "cols": c.cols,
            "psum_bits": info.psum_bits,
            "weight_depth": c.weight_depth,
            "act_depth": c.act_depth,
            "result_depth": c.result_depth,
            "max_m": c.max_m,
            "max_k": trimac_driver::gemm::max_k(c),
            "clock_hz": c.clock_hz,
            "frame_timeout_cycles": c.frame_timeout_cycles,
        });
        println!("{j}");
    } else {
        println!("backend          {}", dev.backend());
        println!("{info}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use trimac_driver::npy::{read_i32_matrix, write_i8_matrix};
    use trimac_sim::golden;

    fn device(array: &str) -> DeviceArgs {
        DeviceArgs {
            backend: "cpu".into(),
            array: array.into(),
            vcd: None,
            trace: None,
            port: None,
            baud: trimac_driver::serial::DEFAULT_BAUD,
        }
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("trimac-cli-{}-{name}", std::process::id()))
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["trimac", "demo", "--array", "4x4", "--limit", "3"]);
        assert!(matches!(cli.unwrap().command, Command::Demo(_)));
        assert!(Cli::try_parse_from(["trimac", "gemm", "--weights", "w.npy"]).is_err());
    }

    #[test]
    fn gemm_writes_the_exact_product() {
        let (m, k, n) = (9, 13, 6);
        let x: Vec<i8> = (0..m * k).map(|i| (i * 41) as i8).collect();
        let w: Vec<i8> = (0..k * n).map(|i| (i % 3) as i8 - 1).collect();
        let (xp, wp, yp) = (temp("x.npy"), temp("w.npy"), temp("y.npy"));
        write_i8_matrix(
            &xp,
            &Matrix {
                rows: m,
                cols: k,
                data: x.clone(),
            },
        )
        .unwrap();
        write_i8_matrix(
            &wp,
            &Matrix {
                rows: k,
                cols: n,
                data: w.clone(),
            },
        )
        .unwrap();
        let args = GemmArgs {
            weights: wp.clone(),
            input: xp.clone(),
            out: yp.clone(),
            device: device("4x4"),
            json: true,
        };
        assert_eq!(gemm(&args).unwrap(), ExitCode::SUCCESS);
        let y = read_i32_matrix(&yp).unwrap();
        assert_eq!((y.rows, y.cols), (m, n));
        assert_eq!(y.data, golden::gemm(&x, &w, m, k, n));
        // K mismatch (X used as W): an error, not a panic.
        let bad = GemmArgs {
            weights: xp.clone(),
            ..args
        };
        assert!(gemm(&bad).is_err());
        for p in [xp, wp, yp] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn demo_matches_the_cpu() {
        let args = DemoArgs {
            device: device("8x8"),
            limit: Some(40),
            model: None,
            test_x: None,
            test_y: None,
            json: false,
        };
        assert_eq!(demo(&args).unwrap(), ExitCode::SUCCESS);
    }

    #[test]
    fn demo_takes_another_model_file_and_refuses_a_corrupted_one() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits");
        let dir = std::env::temp_dir().join(format!("trimac-demo-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("copy.tmm");
        std::fs::copy(root.join("digits-mlp.tmm"), &copy).unwrap();
        let args = |model: &Path| DemoArgs {
            device: device("4x4"),
            limit: Some(5),
            model: Some(model.to_path_buf()),
            test_x: Some(root.join("test_x.npy")),
            test_y: Some(root.join("test_y.npy")),
            json: true,
        };
        assert_eq!(demo(&args(&copy)).unwrap(), ExitCode::SUCCESS);
        let mut bytes = std::fs::read(&copy).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        let bad = dir.join("bad.tmm");
        std::fs::write(&bad, bytes).unwrap();
        let e = demo(&args(&bad)).unwrap_err().to_string();
        assert!(e.contains("bad.tmm"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_device_arguments_are_errors() {
        let info_of = |d: DeviceArgs| {
            info(&InfoArgs {
                device: d,
                json: true,
            })
        };
        assert!(info_of(device("8x6"))
            .unwrap_err()
            .to_string()
            .contains("--array 8x6"));
        let mut d = device("8x8");
        d.backend = "gpu".into();
        assert!(info_of(d)
            .unwrap_err()
            .to_string()
            .contains("known backends"));
        assert!(info_of(device("4x4")).is_ok());
    }
}
