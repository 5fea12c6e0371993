//! The bitstream build: Verilog, synthesis, place and route over several seeds, packing, and
//! the report (utilization, Fmax over the seeds, timing at the design clock).
//!
//! ```text
//!  BoardTop (rust-hdl) + board wrapper --> board.v, board.pcf/.lpf
//!  yosys synth_ice40 / synth_ecp5      --> board.json, synth-stat.json
//!  yosys (the TernaryArray alone)      --> array-stat.json (LUT4 per MAC lane)
//!  nextpnr --seed 1..N                 --> seedN.asc/.config, seedN-report.json
//!  icepack / ecppack (best seed)       --> trimac-<board>-<array>.bin/.bit, report.json
//! ```
//!
//! Every tool is found with [`trimac_toolchain::locate`] and runs with its output in a log file
//! in the build directory; a failing tool ends the build with the tail of its log.

use crate::board::{Board, Family, Placer};
use crate::constraints;
use crate::top::{board_verilog, TopPlan};
use rust_hdl::prelude::*;
use serde::Serialize;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use trimac_hdl::blocks::ternary_array::TernaryArray;
use trimac_toolchain::{locate, Tool, ToolchainError};

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The board.
    pub board: &'static Board,
    /// Array rows.
    pub rows: usize,
    /// Array columns.
    pub cols: usize,
    /// Design clock to reach, in Hz (the PLL makes the closest frequency it can).
    pub clock_hz: u64,
    /// UART baud rate.
    pub baud: u64,
    /// Place-and-route seeds (1, 2, ..., `seeds`).
    pub seeds: usize,
    /// Build directory.
    pub out_dir: PathBuf,
    /// Run nextpnr with this niceness (`nice -n`), to share the machine.
    pub nice: Option<i32>,
    /// Also synthesize the array alone, for the LUT4-per-lane figure.
    pub array_report: bool,
    /// nextpnr's placer; `None`: the board's choice for the array
    /// ([`Board::default_placer`]).
    pub placer: Option<Placer>,
}

impl BuildOptions {
    /// The board's default build into `out_dir`: its array, clock and baud rate, one seed.
    pub fn new(board: &'static Board, out_dir: PathBuf) -> BuildOptions {
        BuildOptions {
            board,
            rows: board.array.0,
            cols: board.array.1,
            clock_hz: board.clock_hz,
            baud: board.baud,
            seeds: 1,
            out_dir,
            nice: Some(10),
            array_report: true,
            placer: None,
        }
    }
}

/// A step of the build, for progress displays.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// A step started (`synthesis`, `packing`, ...).
    Step(String),
    /// Place and route of one seed finished: `done` of `total`, with its Fmax.
    Seed {
        /// The seed.
        seed: usize,
        /// Seeds finished.
        done: usize,
        /// Seeds in all.
        total: usize,
        /// Its Fmax in MHz.
        fmax_mhz: f64,
    },
}

/// One resource: used of total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Used.
    pub used: usize,
    /// Available on the chip.
    pub total: usize,
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = if self.total > 0 {
            100.0 * self.used as f64 / self.total as f64
        } else {
            0.0
        };
        write!(f, "{} / {} ({pct:.1} %)", self.used, self.total)
    }
}

/// Cell counts of one synthesis run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CellCounts {
    /// 4-input LUTs (ECP5: `LUT4` plus both halves of every `CCU2C`).
    pub luts: usize,
    /// Carry cells (iCE40 `SB_CARRY`; ECP5 `CCU2C`, already in `luts`).
    pub carries: usize,
    /// Flip-flops.
    pub ffs: usize,
    /// Block RAMs.
    pub brams: usize,
    /// iCE40 SPRAMs.
    pub sprams: usize,
    /// Multipliers.
    pub dsps: usize,
}

/// Everything a build reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BuildReport {
    /// Board name.
    pub board: String,
    /// FPGA part.
    pub part: String,
    /// Array shape `RxC`.
    pub array: String,
    /// MAC lanes (PEs).
    pub mac_lanes: usize,
    /// Design clock asked for, Hz.
    pub clock_hz_requested: u64,
    /// Design clock the PLL makes, Hz (reported by INFO).
    pub clock_hz: u64,
    /// UART baud rate asked for.
    pub baud: u64,
    /// UART clock cycles per bit.
    pub uart_divisor: usize,
    /// Logic: iCE40 logic cells (LUT4 + FF pairs) / ECP5 LUT4s, placed.
    pub luts_used: usize,
    /// Logic available.
    pub luts_total: usize,
    /// Flip-flops.
    pub ffs: Usage,
    /// Block RAMs (iCE40 EBR, ECP5 DP16KD).
    pub bram: Usage,
    /// iCE40 SPRAMs.
    pub spram: Usage,
    /// Multipliers.
    pub dsp: Usage,
    /// Block RAMs whose read register is their own output register (ECP5: the fabric
    /// flip-flop behind each read merged into the DP16KD, `output_registers`); 0 on iCE40.
    pub bram_output_registers: usize,
    /// Multipliers whose product register is their own output register (ECP5, as above);
    /// 0 on iCE40.
    pub dsp_output_registers: usize,
    /// Cells of the whole design after synthesis.
    pub synth: CellCounts,
    /// LUT4s of the array alone (synthesized by itself), if measured.
    pub array_luts: Option<usize>,
    /// Flip-flops of the array alone, if measured.
    pub array_ffs: Option<usize>,
    /// `array_luts / mac_lanes`.
    pub array_luts_per_lane: Option<f64>,
    /// LUT4s of everything but the array (synthesized design minus the array alone).
    pub rest_luts: Option<usize>,
    /// Fmax of each seed, MHz.
    pub fmax_per_seed: Vec<f64>,
    /// Median Fmax over the seeds, MHz.
    pub fmax_mhz: f64,
    /// Lowest Fmax, MHz.
    pub fmax_mhz_min: f64,
    /// Highest Fmax, MHz.
    pub fmax_mhz_max: f64,
    /// The seed whose bitstream was written (highest Fmax).
    pub best_seed: usize,
    /// The placer (and router) nextpnr ran with.
    pub placer: Placer,
    /// The written bitstream meets the design clock.
    pub timing_met: bool,
    /// The median Fmax meets the design clock.
    pub median_meets: bool,
    /// MAC lanes x median Fmax, in millions of multiply-accumulates per second.
    pub mmacs: f64,
    /// The bitstream.
    pub bitstream: PathBuf,
    /// Its size in bytes.
    pub bitstream_bytes: u64,
    /// Wall time of the build, seconds.
    pub seconds: f64,
}

impl BuildReport {
    /// The design clock in MHz.
    pub fn clock_mhz(&self) -> f64 {
        self.clock_hz as f64 / 1e6
    }
}

impl fmt::Display for BuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lut_name = if self.part.starts_with("iCE40") {
            "logic cells"
        } else {
            "LUT4"
        };
        writeln!(f, "trimac {} on {} ({})", self.array, self.board, self.part)?;
        writeln!(f, "  MAC lanes        {}", self.mac_lanes)?;
        writeln!(
            f,
            "  design clock     {:.3} MHz (UART {} baud, {} cycles/bit)",
            self.clock_mhz(),
            self.baud,
            self.uart_divisor
        )?;
        let luts = Usage {
            used: self.luts_used,
            total: self.luts_total,
        };
        writeln!(f, "  {lut_name:<16} {luts}")?;
        writeln!(f, "  flip-flops       {}", self.ffs)?;
        writeln!(f, "  block RAM        {}", self.bram)?;
        if self.bram_output_registers > 0 {
            writeln!(
                f,
                "                   {} with their output register",
                self.bram_output_registers
            )?;
        }
        if self.spram.total > 0 {
            writeln!(f, "  SPRAM            {}", self.spram)?;
        }
        writeln!(f, "  DSP              {}", self.dsp)?;
        if self.dsp_output_registers > 0 {
            writeln!(
                f,
                "                   {} with their output register",
                self.dsp_output_registers
            )?;
        }
        if let (Some(a), Some(per)) = (self.array_luts, self.array_luts_per_lane) {
            writeln!(
                f,
                "  array alone      {a} LUT4 ({per:.1} per MAC lane), the rest {} LUT4",
                self.rest_luts.unwrap_or(0)
            )?;
        }
        let seeds: Vec<String> = self
            .fmax_per_seed
            .iter()
            .map(|x| format!("{x:.1}"))
            .collect();
        writeln!(
            f,
            "  Fmax             {:.1} MHz median, {:.1}..{:.1} over {} seed(s) [{}]",
            self.fmax_mhz,
            self.fmax_mhz_min,
            self.fmax_mhz_max,
            self.fmax_per_seed.len(),
            seeds.join(", ")
        )?;
        writeln!(
            f,
            "  place and route  nextpnr, {} placer ({})",
            self.placer.name(),
            self.placer.router()
        )?;
        writeln!(
            f,
            "  timing           {} at {:.3} MHz (seed {} written; median {})",
            if self.timing_met { "met" } else { "NOT met" },
            self.clock_mhz(),
            self.best_seed,
            if self.median_meets {
                "meets it"
            } else {
                "misses it"
            }
        )?;
        writeln!(
            f,
            "  throughput       {:.0} M MAC/s (lanes x median Fmax)",
            self.mmacs
        )?;
        write!(
            f,
            "  bitstream        {} ({} bytes)",
            self.bitstream.display(),
            self.bitstream_bytes
        )
    }
}

/// Why a build failed.
#[derive(Debug)]
pub enum BuildError {
    /// A tool is missing (the message says how to install it).
    Toolchain(ToolchainError),
    /// The request cannot be built (array shape, clock, baud rate).
    Plan(String),
    /// The design does not fit the chip.
    DoesNotFit {
        /// The board.
        board: String,
        /// The resource that ran out.
        resource: String,
        /// How many the design needs.
        needed: usize,
        /// How many the chip has.
        available: usize,
    },
    /// Place and route finished but the design misses the design clock.
    Timing(Box<BuildReport>),
    /// A tool failed.
    Tool {
        /// The tool.
        tool: String,
        /// Its log.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// File-system trouble.
    Io(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Toolchain(e) => write!(f, "{e}"),
            BuildError::Plan(e) => write!(f, "{e}"),
            BuildError::DoesNotFit {
                board,
                resource,
                needed,
                available,
            } => write!(
                f,
                "the design does not fit the {board}: it needs {needed} {resource}, the chip \
                 has {available}; build a smaller --array"
            ),
            BuildError::Timing(r) => write!(
                f,
                "timing not met: the best of {} seed(s) reaches {:.1} MHz, the design clock is \
                 {:.3} MHz; try more --seeds, a lower --freq or a smaller --array",
                r.fmax_per_seed.len(),
                r.fmax_mhz_max,
                r.clock_mhz()
            ),
            BuildError::Tool { tool, log, tail } => {
                write!(f, "{tool} failed (log: {}):\n{tail}", log.display())
            }
            BuildError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<ToolchainError> for BuildError {
    fn from(e: ToolchainError) -> Self {
        BuildError::Toolchain(e)
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> BuildError {
    BuildError::Io(format!("cannot {what} {}: {e}", path.display()))
}

/// The tools a build of `family` needs, in the order it runs them.
pub fn tools(family: Family) -> [Tool; 3] {
    match family {
        Family::Ice40 => [Tool::Yosys, Tool::NextpnrIce40, Tool::Icepack],
        Family::Ecp5 => [Tool::Yosys, Tool::NextpnrEcp5, Tool::Ecppack],
    }
}

/// Checks that every tool of a `family` build is there, before any work is done.
pub fn check_tools(family: Family) -> Result<(), BuildError> {
    for t in tools(family) {
        locate(t)?;
    }
    Ok(())
}

/// Runs `tool` with `args` in `dir`, its output into `log`.
fn run_tool(
    tool: Tool,
    args: &[String],
    dir: &Path,
    log: &Path,
    nice: Option<i32>,
) -> Result<(), BuildError> {
    let tc = locate(tool)?;
    let logfile = fs::File::create(log).map_err(|e| io_err("create", log, e))?;
    let errfile = logfile.try_clone().map_err(|e| io_err("open", log, e))?;
    let mut cmd = match nice {
        Some(n) => {
            let mut c = Command::new("nice");
            c.arg("-n").arg(n.to_string()).arg(&tc.program);
            for (k, v) in &tc.env {
                c.env(k, v);
            }
            c
        }
        None => tc.command(),
    };
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(logfile)
        .stderr(errfile);
    let status = cmd.status().map_err(|e| BuildError::Tool {
        tool: tool.name().into(),
        log: log.to_path_buf(),
        tail: format!("cannot start {}: {e}", tc.program.display()),
    })?;
    if !status.success() {
        return Err(BuildError::Tool {
            tool: tool.name().into(),
            log: log.to_path_buf(),
            tail: log_tail(log, 25),
        });
    }
    Ok(())
}

/// The last `n` lines of a log file.
fn log_tail(path: &Path, n: usize) -> String {
    let Ok(f) = fs::File::open(path) else {
        return String::new();
    };
    let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Cell counts from a yosys `stat -json` file.
pub fn parse_yosys_stat(family: Family, json: &str) -> Result<CellCounts, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("yosys statistics: {e}"))?;
    let cells = v
        .get("design")
        .and_then(|d| d.get("num_cells_by_type"))
        .and_then(|c| c.as_object())
        .ok_or("yosys statistics: no design cell counts")?;
    let n = |name: &str| cells.get(name).and_then(|x| x.as_u64()).unwrap_or(0) as usize;
    let sum_prefix = |prefix: &str| {
        cells
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, x)| x.as_u64().unwrap_or(0) as usize)
            .sum::<usize>()
    };
    Ok(match family {
        Family::Ice40 => CellCounts {
            luts: n("SB_LUT4"),
            carries: n("SB_CARRY"),
            ffs: sum_prefix("SB_DFF"),
            brams: n("SB_RAM40_4K"),
            sprams: n("SB_SPRAM256KA"),
            dsps: n("SB_MAC16"),
        },
        Family::Ecp5 => CellCounts {
            luts: n("LUT4") + 2 * n("CCU2C") + 2 * n("TRELLIS_DPR16X4"),
            carries: n("CCU2C"),
            ffs: n("TRELLIS_FF"),
            brams: n("DP16KD") + n("PDPW16KD"),
            sprams: 0,
            dsps: n("MULT18X18D"),
        },
    })
}

/// What one nextpnr run reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PnrReport {
    /// Lowest achieved Fmax over the design's clocks, MHz.
    pub fmax_mhz: f64,
    /// `(resource, used, available)` as nextpnr names them.
    pub utilization: Vec<(String, usize, usize)>,
}

impl PnrReport {
    /// `(used, available)` of `resource`.
    pub fn get(&self, resource: &str) -> Option<(usize, usize)> {
        self.utilization
            .iter()
            .find(|(r, _, _)| r == resource)
            .map(|&(_, u, a)| (u, a))
    }
}

/// Parses a nextpnr `--report` JSON file.
pub fn parse_pnr_report(json: &str) -> Result<PnrReport, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("nextpnr report: {e}"))?;
    let fmax = v
        .get("fmax")
        .and_then(|f| f.as_object())
        .ok_or("nextpnr report: no fmax section")?;
    let fmax_mhz = fmax
        .values()
        .filter_map(|c| c.get("achieved").and_then(|a| a.as_f64()))
        .fold(f64::INFINITY, f64::min);
    if !fmax_mhz.is_finite() {
        return Err("nextpnr report: no clock with an achieved Fmax".into());
    }
    let utilization = v
        .get("utilization")
        .and_then(|u| u.as_object())
        .map(|u| {
            u.iter()
                .map(|(k, x)| {
                    let g = |f: &str| x.get(f).and_then(|y| y.as_u64()).unwrap_or(0) as usize;
                    (k.clone(), g("used"), g("available"))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(PnrReport {
        fmax_mhz,
        utilization,
    })
}

/// Median of a non-empty list.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The first resource in `counts` beyond what `board` has, as a [`BuildError::DoesNotFit`].
fn check_fit(board: &Board, counts: &CellCounts) -> Result<(), BuildError> {
    let r = &board.resources;
    let lut_name = match board.family {
        Family::Ice40 => "LUT4 (logic cells)",
        Family::Ecp5 => "LUT4",
    };
    let checks = [
        (lut_name, counts.luts, r.luts),
        ("flip-flops", counts.ffs, r.ffs),
        (
            match board.family {
                Family::Ice40 => "block RAMs (EBR, 4 kbit)",
                Family::Ecp5 => "block RAMs (DP16KD, 18 kbit)",
            },
            counts.brams,
            r.brams,
        ),
        ("SPRAMs", counts.sprams, r.sprams),
        ("DSP multipliers", counts.dsps, r.dsps),
    ];
    for (name, needed, available) in checks {
        if needed > available {
            return Err(BuildError::DoesNotFit {
                board: board.name.into(),
                resource: name.into(),
                needed,
                available,
            });
        }
    }
    Ok(())
}

/// nextpnr's own complaint when a design does not fit, as a [`BuildError::DoesNotFit`].
fn pnr_fit_error(board: &Board, log: &Path) -> Option<BuildError> {
    let text = fs::read_to_string(log).ok()?;
    for line in text.lines() {
        // "Info:      ICESTORM_LC:  6000/ 5280   113%"
        let l = line.trim_start_matches("Info:").trim();
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        let Some((used, avail)) = rest.split_once('/') else {
            continue;
        };
        let used: usize = match used.trim().parse() {
            Ok(u) => u,
            Err(_) => continue,
        };
        let avail: usize = match avail.split_whitespace().next().and_then(|a| a.parse().ok()) {
            Some(a) => a,
            None => continue,
        };
        if used > avail {
            return Some(BuildError::DoesNotFit {
                board: board.name.into(),
                resource: name.trim().into(),
                needed: used,
                available: avail,
            });
        }
    }
    None
}

/// Synthesizes `verilog` (top module `top_module`) for `family`; returns its cell counts.
fn synthesize(
    board: &Board,
    dir: &Path,
    verilog: &str,
    top_module: &str,
    stem: &str,
    write_json: bool,
) -> Result<CellCounts, BuildError> {
    let v = dir.join(format!("{stem}.v"));
    fs::write(&v, verilog).map_err(|e| io_err("write", &v, e))?;
    let synth = match board.family {
        Family::Ice40 => {
            let mut s = format!("synth_ice40 -top {top_module} -device u -dsp");
            if board.resources.sprams > 0 {
                s.push_str(" -spram");
            }
            s
        }
        Family::Ecp5 => format!("synth_ecp5 -top {top_module}"),
    };
    let json = if write_json {
        format!("delete t:$scopeinfo; write_json {stem}.json; ")
    } else {
        String::new()
    };
    // Each shared module definition (verilog::share_identical_modules) is elaborated and
    // cleaned once before `flatten` copies it into every instance: at 32x32 this keeps yosys
    // under the 4 GB a WebAssembly build can address (flattening the raw processes needs more).
    // The host link's state register is one-hot encoded after `flatten` (set by hand: yosys
    // does not recode a register with an initial value). That value is safe to drop: the board
    // top holds the design in reset from power-up until three cycles after the PLL locks, and
    // reset puts the link in its first state.
    let script = format!(
        "read_verilog {stem}.v; hierarchy -top {top_module}; proc; opt_clean; opt -fast; \
         {synth} -run begin:coarse; setattr -set fsm_encoding \"one-hot\" w:*.link.state.q; \
         {synth} -run coarse:; {json}tee -q -o {stem}-stat.json stat -json"
    );
    run_tool(
        Tool::Yosys,
        &["-q".into(), "-p".into(), script],
        dir,
        &dir.join(format!("{stem}-yosys.log")),
        None,
    )?;
    let stat_path = dir.join(format!("{stem}-stat.json"));
    let stat = fs::read_to_string(&stat_path).map_err(|e| io_err("read", &stat_path, e))?;
    parse_yosys_stat(board.family, &stat).map_err(BuildError::Io)
}

/// Builds a bitstream and its report. `progress` hears about every step.
pub fn build(
    opts: &BuildOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<BuildReport, BuildError> {
    let start = Instant::now();
    let board = opts.board;
    if opts.seeds == 0 {
        return Err(BuildError::Plan("--seeds must be at least 1".into()));
    }
    let plan = TopPlan::new(board, opts.rows, opts.cols, opts.clock_hz, opts.baud)
        .map_err(BuildError::Plan)?;
    check_tools(board.family)?;
    let dir = &opts.out_dir;
    fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    let cfg = &plan.config;

    progress(Progress::Step("Verilog".into()));
    let ext = constraints::extension(board.family);
    let cons = dir.join(format!("board.{ext}"));
    fs::write(&cons, constraints::constraints(board)).map_err(|e| io_err("write", &cons, e))?;
    let verilog = board_verilog(board, &plan);

    progress(Progress::Step("synthesis".into()));
    let synth = synthesize(board, dir, &verilog, "board", "board", true)?;
    check_fit(board, &synth)?;
    let (bram_output_registers, dsp_output_registers) = match board.family {
        Family::Ice40 => (0, 0),
        Family::Ecp5 => {
            progress(Progress::Step(
                "block RAM and multiplier output registers".into(),
            ));
            let path = dir.join("board.json");
            let text = fs::read_to_string(&path).map_err(|e| io_err("read", &path, e))?;
            let mut netlist: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| BuildError::Io(format!("{}: {e}", path.display())))?;
            let rams = crate::output_registers::absorb_output_registers(&mut netlist, "board")
                .map_err(|e| BuildError::Io(format!("{}: {e}", path.display())))?;
            let mults = crate::output_registers::absorb_multiplier_registers(&mut netlist, "board")
                .map_err(|e| BuildError::Io(format!("{}: {e}", path.display())))?;
            let text = serde_json::to_string(&netlist)
                .map_err(|e| BuildError::Io(format!("{}: {e}", path.display())))?;
            fs::write(&path, text).map_err(|e| io_err("write", &path, e))?;
            (rams.cells, mults.cells)
        }
    };

    let array = if opts.array_report {
        progress(Progress::Step("array alone".into()));
        let mut arr = TernaryArray::new(cfg.rows, cfg.cols, cfg.registered_code_bus);
        arr.connect_all();
        Some(synthesize(
            board,
            dir,
            &trimac_hdl::verilog::share_identical_modules(&generate_verilog(&arr)),
            "top",
            "array",
            false,
        )?)
    } else {
        None
    };

    let freq = format!("{:.3}", cfg.clock_hz as f64 / 1e6);
    let placer = opts
        .placer
        .unwrap_or_else(|| board.default_placer(opts.rows * opts.cols));
    let mut fmax = Vec::with_capacity(opts.seeds);
    let mut best: Option<(usize, f64, PnrReport)> = None;
    for seed in 1..=opts.seeds {
        progress(Progress::Step(format!(
            "place and route, seed {seed} of {}",
            opts.seeds
        )));
        let out = match board.family {
            Family::Ice40 => format!("seed{seed}.asc"),
            Family::Ecp5 => format!("seed{seed}.config"),
        };
        let report = format!("seed{seed}-report.json");
        let mut args: Vec<String> = vec![
            format!("--{}", board.device),
            "--package".into(),
            board.package.into(),
            "--json".into(),
            "board.json".into(),
            "--freq".into(),
            freq.clone(),
            "--seed".into(),
            seed.to_string(),
            "--report".into(),
            report.clone(),
            "--timing-allow-fail".into(),
        ];
        args.extend(placer.nextpnr_args().iter().map(|a| a.to_string()));
        match board.family {
            // `--opt-timing`: nextpnr-ice40's post-placement timing pass moves cells of the
            // critical paths after the analytic placer (median over seeds 1-5 of the
            // iCEBreaker 8x4: 46.7 MHz without it, 48.4 with it; docs/boards.md).
            Family::Ice40 => args.extend([
                "--pcf".into(),
                format!("board.{ext}"),
                "--asc".into(),
                out.clone(),
                "--opt-timing".into(),
            ]),
            Family::Ecp5 => {
                args.extend([
                    "--lpf".into(),
                    format!("board.{ext}"),
                    "--textcfg".into(),
                    out.clone(),
                ]);
                if let Some(s) = board.speed {
                    args.extend(["--speed".into(), s.to_string()]);
                }
            }
        }
        let tool = match board.family {
            Family::Ice40 => Tool::NextpnrIce40,
            Family::Ecp5 => Tool::NextpnrEcp5,
        };
        let log = dir.join(format!("seed{seed}-nextpnr.log"));
        if let Err(e) = run_tool(tool, &args, dir, &log, opts.nice) {
            return Err(pnr_fit_error(board, &log).unwrap_or(e));
        }
        let rpath = dir.join(&report);
        let text = fs::read_to_string(&rpath).map_err(|e| io_err("read", &rpath, e))?;
        let r = parse_pnr_report(&text).map_err(BuildError::Io)?;
        progress(Progress::Seed {
            seed,
            done: seed,
            total: opts.seeds,
            fmax_mhz: r.fmax_mhz,
        });
        fmax.push(r.fmax_mhz);
        if best.as_ref().is_none_or(|b| r.fmax_mhz > b.1) {
            best = Some((seed, r.fmax_mhz, r));
        }
    }
    let Some((best_seed, best_fmax, pnr)) = best else {
        return Err(BuildError::Plan("no seed was run".into()));
    };

    progress(Progress::Step("packing".into()));
    let (bit_ext, pack_tool, mut pack_args) = match board.family {
        Family::Ice40 => ("bin", Tool::Icepack, vec![]),
        Family::Ecp5 => (
            "bit",
            Tool::Ecppack,
            board
                .ecppack_args
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        ),
    };
    let bit_name = format!("trimac-{}-{}.{bit_ext}", board.name, cfg.array_name());
    pack_args.push(match board.family {
        Family::Ice40 => format!("seed{best_seed}.asc"),
        Family::Ecp5 => format!("seed{best_seed}.config"),
    });
    pack_args.push(bit_name.clone());
    run_tool(pack_tool, &pack_args, dir, &dir.join("pack.log"), None)?;
    let bitstream = dir.join(&bit_name);
    let bitstream_bytes = fs::metadata(&bitstream)
        .map_err(|e| io_err("read", &bitstream, e))?
        .len();

    let clock_mhz = cfg.clock_hz as f64 / 1e6;
    let (lut_key, ff_key, bram_key, dsp_key) = match board.family {
        Family::Ice40 => ("ICESTORM_LC", "", "ICESTORM_RAM", "ICESTORM_DSP"),
        Family::Ecp5 => ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D"),
    };
    let usage = |key: &str, fallback_used: usize, total: usize| {
        pnr.get(key)
            .map(|(u, a)| Usage {
                used: u,
                total: if a > 0 { a } else { total },
            })
            .unwrap_or(Usage {
                used: fallback_used,
                total,
            })
    };
    let res = &board.resources;
    let luts = usage(lut_key, synth.luts, res.luts);
    let median_fmax = median(&fmax);
    let lanes = cfg.lanes();
    let report = BuildReport {
        board: board.name.into(),
        part: board.part.into(),
        array: cfg.array_name(),
        mac_lanes: lanes,
        clock_hz_requested: opts.clock_hz,
        clock_hz: cfg.clock_hz as u64,
        baud: opts.baud,
        uart_divisor: plan.uart_divisor,
        luts_used: luts.used,
        luts_total: luts.total,
        ffs: usage(ff_key, synth.ffs, res.ffs),
        bram: usage(bram_key, synth.brams, res.brams),
        spram: usage("ICESTORM_SPRAM", synth.sprams, res.sprams),
        dsp: usage(dsp_key, synth.dsps, res.dsps),
        bram_output_registers,
        dsp_output_registers,
        synth,
        array_luts: array.map(|a| a.luts),
        array_ffs: array.map(|a| a.ffs),
        array_luts_per_lane: array.map(|a| a.luts as f64 / lanes as f64),
        rest_luts: array.map(|a| synth.luts.saturating_sub(a.luts)),
        fmax_mhz_min: fmax.iter().copied().fold(f64::INFINITY, f64::min),
        fmax_mhz_max: best_fmax,
        fmax_mhz: median_fmax,
        fmax_per_seed: fmax,
        best_seed,
        placer,
        timing_met: best_fmax >= clock_mhz,
        median_meets: median_fmax >= clock_mhz,
        mmacs: lanes as f64 * median_fmax,
        bitstream,
        bitstream_bytes,
        seconds: start.elapsed().as_secs_f64(),
    };
    let rj = dir.join("report.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| BuildError::Io(e.to_string()))?;
    fs::write(&rj, text).map_err(|e| io_err("write", &rj, e))?;
    if !report.timing_met {
        return Err(BuildError::Timing(Box::new(report)));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::board;

    #[test]
    fn parses_yosys_statistics() {
        let json = r#"{"design": {"num_cells_by_type": {"SB_LUT4": 100, "SB_CARRY": 40,
            "SB_DFF": 30, "SB_DFFE": 5, "SB_RAM40_4K": 3, "SB_SPRAM256KA": 1, "SB_MAC16": 2}}}"#;
        let c = parse_yosys_stat(Family::Ice40, json).unwrap();
        assert_eq!(
            c,
            CellCounts {
                luts: 100,
                carries: 40,
                ffs: 35,
                brams: 3,
                sprams: 1,
                dsps: 2
            }
        );
        let json = r#"{"design": {"num_cells_by_type": {"LUT4": 10, "CCU2C": 4,
            "TRELLIS_FF": 7, "DP16KD": 2, "MULT18X18D": 1}}}"#;
        let c = parse_yosys_stat(Family::Ecp5, json).unwrap();
        assert_eq!((c.luts, c.ffs, c.brams, c.dsps), (18, 7, 2, 1));
        assert!(parse_yosys_stat(Family::Ecp5, "{}").is_err());
        assert!(parse_yosys_stat(Family::Ecp5, "not json").is_err());
    }

    #[test]
    fn parses_nextpnr_reports() {
        let json = r#"{"fmax": {"clk_a": {"achieved": 61.5, "constraint": 48.0},
            "clk_b": {"achieved": 52.25, "constraint": 48.0}},
            "utilization": {"ICESTORM_LC": {"available": 5280, "used": 2100},
            "ICESTORM_RAM": {"available": 30, "used": 12}}}"#;
        let r = parse_pnr_report(json).unwrap();
        assert_eq!(r.fmax_mhz, 52.25);
        assert_eq!(r.get("ICESTORM_LC"), Some((2100, 5280)));
        assert_eq!(r.get("ICESTORM_RAM"), Some((12, 30)));
        assert!(parse_pnr_report(r#"{"fmax": {}}"#).is_err());
    }

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn resources_beyond_the_chip_name_the_limit() {
        let b = board("icebreaker").unwrap();
        let counts = CellCounts {
            luts: 1000,
            brams: 31,
            ..CellCounts::default()
        };
        let e = check_fit(b, &counts).unwrap_err().to_string();
        assert!(
            e.contains("31") && e.contains("30") && e.contains("EBR"),
            "{e}"
        );
        let ok = CellCounts {
            luts: 5000,
            brams: 30,
            sprams: 4,
            dsps: 8,
            ..CellCounts::default()
        };
        assert!(check_fit(b, &ok).is_ok());
    }

    #[test]
    fn nextpnr_overflow_lines_name_the_resource() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("pnr.log");
        fs::write(
            &log,
            "Info: Device utilisation:\nInfo: \t     ICESTORM_LC:  6100/ 5280   115%\n\
             Info: \t    ICESTORM_RAM:    20/   30    66%\nERROR: failed\n",
        )
        .unwrap();
        let e = pnr_fit_error(board("icebreaker").unwrap(), &log).unwrap();
        let s = e.to_string();
        assert!(
            s.contains("ICESTORM_LC") && s.contains("6100") && s.contains("5280"),
            "{s}"
        );
    }

    #[test]
    fn zero_seeds_and_bad_plans_fail_before_any_tool_runs() {
        let dir = tempfile::tempdir().unwrap();
        let b = board("icebreaker").unwrap();
        let mut o = BuildOptions::new(b, dir.path().to_path_buf());
        o.seeds = 0;
        assert!(build(&o, &mut |_| {})
            .unwrap_err()
            .to_string()
            .contains("seeds"));
        let mut o = BuildOptions::new(b, dir.path().to_path_buf());
        o.baud = 50_000_000;
        assert!(build(&o, &mut |_| {})
            .unwrap_err()
            .to_string()
            .contains("baud"));
    }
}
