//! `trimac bench`: measured cycles, utilization and simulation speed of a GEMM and a GEMV on
//! each array shape asked for.
//!
//! Every workload runs on random operands (fixed seed) through the driver's
//! [`run_gemm`], exactly as `trimac gemm` does. Its result is compared bit for bit with the
//! golden model ([`golden::gemm`]) and the RUN cycles the device reported with the cycle formula
//! [`Config::run_cycles`] summed over the runs the driver's [`plan`] issues (`formula_ok`).
//! Either kind of mismatch makes the command fail after the report is printed.

use crate::report::{percent, seconds};
use crate::{progress_bar, CliResult};
use clap::Args;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;
use trimac_driver::device::{open, Device, OpenOptions};
use trimac_driver::error::DriverError;
use trimac_driver::gemm::{plan, run_gemm, Step};
use trimac_hdl::Config;
use trimac_sim::golden;

/// Seed of the random operands unless `--seed` says otherwise.
pub const DEFAULT_SEED: u64 = 0x7121_3ac0_b158;

/// Arguments of `trimac bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Backend, as for the other commands: `sim` (cycle-accurate rust-hdl simulation of the
    /// RTL), `cpu` (the golden reference model behind the same protocol), or any other backend
    /// the driver opens.
    #[arg(long, default_value = "sim")]
    pub backend: String,
    /// Array shapes to measure, a comma-separated list of RxC.
    #[arg(long, default_value = "8x8,16x16")]
    pub arrays: String,
    /// Size in array tiles: the GEMM is M = scale*max(R,C), K = scale*R, N = scale*C; the
    /// GEMV has M = 1 and the same K and N.
    #[arg(long, default_value_t = 4)]
    pub scale: usize,
    /// Seed of the random operands.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Print one JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The two workloads measured on every array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Matrix times matrix: M = scale * max(rows, cols).
    Gemm,
    /// Vector times matrix: M = 1.
    Gemv,
}

impl Workload {
    /// Both workloads, in report order.
    pub const ALL: [Workload; 2] = [Workload::Gemm, Workload::Gemv];

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Gemm => "gemm",
            Workload::Gemv => "gemv",
        }
    }

    /// `(m, k, n)` of this workload on `cfg` at `scale`, or why it cannot be formed.
    pub fn dims(self, cfg: &Config, scale: usize) -> Result<(usize, usize, usize), String> {
        if scale == 0 {
            return Err("--scale must be at least 1".into());
        }
        let times = |d: usize| {
            d.checked_mul(scale)
                .ok_or_else(|| format!("--scale {scale} is too large for {}", cfg.array_name()))
        };
        let (k, n) = (times(cfg.rows)?, times(cfg.cols)?);
        let m = match self {
            Workload::Gemm => times(cfg.rows.max(cfg.cols))?,
            Workload::Gemv => 1,
        };
        Ok((m, k, n))
    }
}

/// One measured workload.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRow {
    /// Which workload.
    pub workload: Workload,
    /// `RxC`.
    pub array: String,
    /// Backend name.
    pub backend: String,
    /// Rows of X and Y.
    pub m: usize,
    /// Columns of X, rows of W.
    pub k: usize,
    /// Columns of W and Y.
    pub n: usize,
    /// RUN cycles the device reported, summed over the runs.
    pub cycles: u64,
    /// [`Config::run_cycles`] summed over the planned runs.
    pub predicted_cycles: u64,
    /// `cycles == predicted_cycles`.
    pub formula_ok: bool,
    /// The result equals the golden model's, element for element.
    pub bit_exact: bool,
    /// Link cycles of the WRITE and READ exchanges.
    pub transfer_cycles: u64,
    /// `m * k * n`.
    pub macs: u64,
    /// RUN commands issued.
    pub runs: u64,
    /// `macs / (cycles * rows * cols)`.
    pub utilization: f64,
    /// Wall-clock time of the whole GEMM (transfers included), in seconds.
    pub wall_seconds: f64,
    /// `(cycles + transfer_cycles) / wall_seconds`: device cycles simulated (or modelled, on
    /// `cpu`) per second of wall time. CONFIGURE and RUN frames are not counted, so this is a
    /// slight underestimate.
    pub sim_cycles_per_second: f64,
    /// First differing element, when not bit-exact: `(row, column, device, golden)`.
    pub first_mismatch: Option<(usize, usize, i32, i32)>,
}

impl BenchRow {
    /// The row as a JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "workload": self.workload.name(),
            "array": self.array,
            "backend": self.backend,
            "m": self.m,
            "k": self.k,
            "n": self.n,
            "cycles": self.cycles,
            "predicted_cycles": self.predicted_cycles,
            "formula_ok": self.formula_ok,
            "bit_exact": self.bit_exact,
            "transfer_cycles": self.transfer_cycles,
            "macs": self.macs,
            "runs": self.runs,
            "utilization": self.utilization,
            "wall_seconds": self.wall_seconds,
            "sim_cycles_per_second": self.sim_cycles_per_second,
        })
    }

    /// Why this row failed, if it did.
    fn failure(&self) -> Option<String> {
        let what = format!(
            "{} {} {}x{}x{} on {}",
            self.array,
            self.workload.name(),
            self.m,
            self.k,
            self.n,
            self.backend
        );
        if let Some((r, c, got, want)) = self.first_mismatch {
            return Some(format!(
                "{what}: result differs from the golden model, first at Y[{r}][{c}] = {got}, \
                 golden {want}"
            ));
        }
        if !self.formula_ok {
            return Some(format!(
                "{what}: the device reported {} RUN cycles, the cycle formula predicts {}",
                self.cycles, self.predicted_cycles
            ));
        }
        None
    }
}

/// Parses `--arrays`: a comma-separated list of `RxC` shapes, each a valid configuration.
pub fn parse_arrays(spec: &str) -> Result<Vec<Config>, String> {
    let configs = spec
        .split(',')
        .map(|s| {
            let s = s.trim();
            if s.is_empty() {
                return Err(format!(
                    "--arrays `{spec}`: empty entry; write a comma-separated list such as 8x8,16x16"
                ));
            }
            Config::from_array_spec(s).map_err(|e| format!("--arrays `{spec}`: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(configs)
}

/// [`Config::run_cycles`] summed over the runs [`plan`] issues for `(m, k, n)` on `cfg`.
pub fn predicted_cycles(cfg: &Config, m: usize, k: usize, n: usize) -> Result<u64, DriverError> {
    let k_tiles = k.div_ceil(cfg.rows);
    Ok(plan(cfg, m, k, n)?
        .iter()
        .filter_map(|step| match step {
            Step::Run { rows, tiles, .. } => Some(cfg.run_cycles(rows.len(), k_tiles, tiles.len())),
            _ => None,
        })
        .sum())
}

/// SplitMix64: a tiny deterministic generator, so the operands depend on the seed only.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Random operands of a `(m, k, n)` product: X int8 over the whole range, W uniform over
/// {-1, 0, 1}. The same seed and shape always give the same operands.
pub fn operands(seed: u64, (m, k, n): (usize, usize, usize)) -> (Vec<i8>, Vec<i8>) {
    let mut rng = SplitMix64(seed ^ ((m as u64) << 42) ^ ((k as u64) << 21) ^ n as u64);
    let x = (0..m * k)
        .map(|_| (rng.next_u64() >> 56) as u8 as i8)
        .collect();
    let w = (0..k * n)
        .map(|_| ((rng.next_u64() >> 32) % 3) as i8 - 1)
        .collect();
    (x, w)
}

/// Runs `workload` at `scale` on `dev` and checks it against the golden model and the formula.
pub fn measure(
    dev: &mut dyn Device,
    workload: Workload,
    scale: usize,
    seed: u64,
) -> CliResult<BenchRow> {
    let cfg = dev.config().clone();
    let (m, k, n) = workload.dims(&cfg, scale)?;
    // Plans first: a shape the device cannot take is refused before any data is made.
    let predicted = predicted_cycles(&cfg, m, k, n)
        .map_err(|e| format!("--scale {scale} on {}: {e}", cfg.array_name()))?;
    let (x, w) = operands(seed, (m, k, n));
    let report = run_gemm(dev, &x, &w, (m, k, n), &mut |_, _| {})?;
    let want = golden::gemm(&x, &w, m, k, n);
    let first_mismatch = report
        .y
        .iter()
        .zip(&want)
        .position(|(a, b)| a != b)
        .map(|i| (i / n, i % n, report.y[i], want[i]));
    let bit_exact = first_mismatch.is_none() && report.y.len() == want.len();
    let device_cycles = (report.cycles + report.transfer_cycles) as f64;
    Ok(BenchRow {
        workload,
        array: cfg.array_name(),
        backend: dev.backend().to_string(),
        m,
        k,
        n,
        cycles: report.cycles,
        predicted_cycles: predicted,
        formula_ok: report.cycles == predicted,
        bit_exact,
        transfer_cycles: report.transfer_cycles,
        macs: report.macs,
        runs: report.runs,
        utilization: report.utilization,
        wall_seconds: report.wall_seconds,
        sim_cycles_per_second: match report.wall_seconds > 0.0 {
            true => device_cycles / report.wall_seconds,
            false => 0.0,
        },
        first_mismatch,
    })
}

/// Measures every workload on every array of `args`; `progress(label)` is called before each
/// workload starts.
pub fn run_bench(args: &BenchArgs, progress: &mut dyn FnMut(&str)) -> CliResult<Vec<BenchRow>> {
    let configs = parse_arrays(&args.arrays)?;
    // Refuse a bad scale for any array before the (possibly slow) measurements start.
    for cfg in &configs {
        for workload in Workload::ALL {
            let (m, k, n) = workload.dims(cfg, args.scale)?;
            plan(cfg, m, k, n)
                .map_err(|e| format!("--scale {} on {}: {e}", args.scale, cfg.array_name()))?;
        }
    }
    let mut rows = Vec::new();
    for cfg in &configs {
        progress(&format!("{} open", cfg.array_name()));
        let mut dev = open(&args.backend, cfg, &OpenOptions::default())?;
        for workload in Workload::ALL {
            progress(&format!("{} {}", cfg.array_name(), workload.name()));
            rows.push(measure(dev.as_mut(), workload, args.scale, args.seed)?);
        }
    }
    Ok(rows)
}

/// `trimac bench`: measures, prints a table (or a JSON array), and fails if any workload was
/// not bit-exact or did not take the predicted number of cycles.
pub fn bench(args: &BenchArgs) -> CliResult<ExitCode> {
    let total = parse_arrays(&args.arrays)?.len() * (1 + Workload::ALL.len());
    let bar = progress_bar(total, "bench");
    bar.enable_steady_tick(Duration::from_millis(250));
    let mut started = 0;
    let result = run_bench(args, &mut |label| {
        if started > 0 {
            bar.inc(1);
        }
        started += 1;
        bar.set_message(label.to_string());
    });
    bar.finish_and_clear();
    let rows = result?;
    if args.json {
        println!(
            "{}",
            Value::Array(rows.iter().map(BenchRow::to_json).collect())
        );
    } else {
        print!("{}", table(&rows));
    }
    let failures: Vec<String> = rows.iter().filter_map(BenchRow::failure).collect();
    if !failures.is_empty() {
        return Err(format!(
            "{} of {} workloads failed:\n  {}",
            failures.len(),
            rows.len(),
            failures.join("\n  ")
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The rows as an aligned text table.
pub fn table(rows: &[BenchRow]) -> String {
    let header = [
        "array",
        "workload",
        "backend",
        "M",
        "K",
        "N",
        "cycles",
        "formula",
        "utilization",
        "transfer cycles",
        "wall",
        "cycles/s",
        "bit-exact",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.array.clone(),
                r.workload.name().to_string(),
                r.backend.clone(),
                r.m.to_string(),
                r.k.to_string(),
                r.n.to_string(),
                r.cycles.to_string(),
                match r.formula_ok {
                    true => "exact".to_string(),
                    false => format!("MISMATCH ({})", r.predicted_cycles),
                },
                percent(r.utilization),
                r.transfer_cycles.to_string(),
                seconds(r.wall_seconds),
                format!("{:.0}", r.sim_cycles_per_second),
                match r.bit_exact {
                    true => "yes".to_string(),
                    false => "NO".to_string(),
                },
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |row: Vec<&str>| {
        let mut text = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            // Text columns (the first three) to the left, numbers to the right.
            match c < 3 {
                true => {
                    let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
                }
                false => {
                    let _ = write!(text, "{}{cell}  ", " ".repeat(pad));
                }
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;
    use trimac_driver::device::connect;
    use trimac_sim::reference::ReferenceDevice;

    fn args(backend: &str, arrays: &str, scale: usize) -> BenchArgs {
        BenchArgs {
            backend: backend.into(),
            arrays: arrays.into(),
            scale,
            seed: DEFAULT_SEED,
            json: true,
        }
    }

    #[test]
    fn cli_parses_bench() {
        let cli = Cli::try_parse_from([
            "trimac",
            "bench",
            "--backend",
            "sim",
            "--arrays",
            "4x4,8x8",
            "--scale",
            "2",
            "--json",
        ])
        .unwrap();
        match cli.command {
            Command::Bench(a) => {
                assert_eq!(
                    (a.backend.as_str(), a.arrays.as_str(), a.scale, a.json),
                    ("sim", "4x4,8x8", 2, true)
                );
                assert_eq!(a.seed, DEFAULT_SEED);
            }
            other => panic!("parsed as {other:?}"),
        }
        match Cli::try_parse_from(["trimac", "bench"]).unwrap().command {
            Command::Bench(a) => assert_eq!(
                (a.backend.as_str(), a.arrays.as_str(), a.scale, a.json),
                ("sim", "8x8,16x16", 4, false)
            ),
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["trimac", "bench", "--scale", "-1"]).is_err());
    }

    #[test]
    fn bad_arrays_are_clear_errors() {
        for (spec, needle) in [
            ("8x6", "cols = 6"),
            ("", "empty entry"),
            ("8x8,,4x4", "empty entry"),
            ("axb", "not a number"),
            ("16", "RxC"),
        ] {
            let err = parse_arrays(spec).unwrap_err();
            assert!(
                err.contains("--arrays") && err.contains(needle),
                "{spec}: {err}"
            );
        }
        let ok = parse_arrays(" 4x4, 16x16 ").unwrap();
        assert_eq!(
            ok.iter().map(|c| (c.rows, c.cols)).collect::<Vec<_>>(),
            [(4, 4), (16, 16)]
        );
        let err = bench(&args("cpu", "8x8,8x6", 1)).unwrap_err().to_string();
        assert!(err.contains("--arrays"), "{err}");
    }

    #[test]
    fn bad_scale_is_an_error_not_a_panic() {
        let zero = bench(&args("cpu", "4x4", 0)).unwrap_err().to_string();
        assert!(zero.contains("--scale"), "{zero}");
        // K = 4 * 2000 exceeds the 4096-word weight memory: the planner's capacity message.
        let big = bench(&args("cpu", "4x4", 2000)).unwrap_err().to_string();
        assert!(
            big.contains("--scale 2000") && big.contains("K = 8000"),
            "{big}"
        );
        let huge = bench(&args("cpu", "4x4", usize::MAX))
            .unwrap_err()
            .to_string();
        assert!(huge.contains("too large"), "{huge}");
        let backend = bench(&args("gpu", "4x4", 1)).unwrap_err().to_string();
        assert!(backend.contains("known backends"), "{backend}");
    }

    #[test]
    fn dims_follow_the_scale() {
        let cfg = Config::new(8, 16).unwrap();
        assert_eq!(Workload::Gemm.dims(&cfg, 4).unwrap(), (64, 32, 64));
        assert_eq!(Workload::Gemv.dims(&cfg, 4).unwrap(), (1, 32, 64));
    }

    #[test]
    fn operands_are_deterministic_ternary_and_varied() {
        let (x, w) = operands(1, (8, 16, 12));
        assert_eq!((x.len(), w.len()), (128, 192));
        assert_eq!(operands(1, (8, 16, 12)), (x.clone(), w.clone()));
        assert_ne!(operands(2, (8, 16, 12)).0, x);
        assert!(w.iter().all(|v| (-1..=1).contains(v)));
        for v in [-1, 0, 1] {
            assert!(w.iter().filter(|&&u| u == v).count() > 30, "{v} too rare");
        }
        assert!(x.iter().any(|&v| v < -64) && x.iter().any(|&v| v > 64));
    }

    #[test]
    fn cpu_bench_is_bit_exact_and_matches_the_formula() {
        let rows = run_bench(&args("cpu", "4x4", 4), &mut |_| {}).unwrap();
        assert_eq!(rows.len(), 2);
        let (gemm, gemv) = (&rows[0], &rows[1]);
        assert_eq!(
            (gemm.workload, gemm.m, gemm.k, gemm.n),
            (Workload::Gemm, 16, 16, 16)
        );
        assert_eq!(
            (gemv.workload, gemv.m, gemv.k, gemv.n),
            (Workload::Gemv, 1, 16, 16)
        );
        for r in &rows {
            assert!(r.bit_exact && r.first_mismatch.is_none(), "{r:?}");
            assert!(r.formula_ok && r.cycles == r.predicted_cycles, "{r:?}");
            assert_eq!(r.backend, "cpu");
            assert_eq!(r.macs, (r.m * r.k * r.n) as u64);
            let lanes = 16.0;
            assert!((r.utilization - r.macs as f64 / (r.cycles as f64 * lanes)).abs() < 1e-12);
        }
        // 1 + 15*16 + 16 + 8 + 5 = 270 cycles for 4096 MACs on 16 lanes.
        assert_eq!(gemm.cycles, 270);
        assert!(gemm.utilization > 0.9, "{gemm:?}");
        // GEMV: one weight row per cycle, 4 cycles per tile: at most 1/4 of the array.
        assert_eq!(gemv.cycles, 1 + 15 * 4 + 4 + 8 + 5);
        assert!(gemv.utilization <= 0.25, "{gemv:?}");
        assert!(bench(&args("cpu", "4x4", 4)).unwrap() == ExitCode::SUCCESS);
    }

    #[test]
    fn formula_is_summed_over_every_run_of_the_plan() {
        // Small memories force many runs (M split by max_m, N-tiles by the result memory).
        let cfg = Config {
            max_m: 5,
            result_depth: 10,
            ..Config::new(4, 4).unwrap()
        };
        let mut dev = connect(ReferenceDevice::new(&cfg), &cfg).unwrap();
        let row = measure(dev.as_mut(), Workload::Gemm, 3, 7).unwrap();
        assert!(row.runs > 4, "{row:?}");
        assert!(row.bit_exact && row.formula_ok, "{row:?}");
        let one_run = cfg.run_cycles(row.m, row.k / 4, row.n / 4);
        assert_ne!(row.predicted_cycles, one_run);
    }

    #[test]
    fn a_wrong_result_or_cycle_count_is_reported() {
        let mut row = run_bench(&args("cpu", "4x4", 1), &mut |_| {}).unwrap()[0].clone();
        assert!(row.failure().is_none());
        row.formula_ok = false;
        assert!(row.failure().unwrap().contains("cycle formula"));
        row.first_mismatch = Some((1, 2, 5, 6));
        row.bit_exact = false;
        let msg = row.failure().unwrap();
        assert!(
            msg.contains("Y[1][2] = 5") && msg.contains("golden 6"),
            "{msg}"
        );
        let text = table(&[row]);
        assert!(text.contains("MISMATCH") && text.contains("NO"), "{text}");
    }

    #[test]
    fn sim_bench_runs_the_rtl_exactly() {
        // Square, wider than tall and taller than wide: the tile period is max(m, rows, cols).
        let rows = run_bench(&args("sim", "4x4,4x8,8x4", 2), &mut |_| {}).unwrap();
        assert_eq!(rows.len(), 6);
        for r in &rows {
            assert_eq!(r.backend, "sim");
            assert!(r.bit_exact, "{r:?}");
            // The RTL's own cycle count, not a model: this checks the formula against the RTL.
            assert!(r.formula_ok, "{r:?}");
            assert!(
                r.transfer_cycles > 0 && r.sim_cycles_per_second > 0.0,
                "{r:?}"
            );
        }
        let json = rows[0].to_json();
        assert_eq!(json["formula_ok"], true);
        assert_eq!(json["m"], 8);
    }
}
