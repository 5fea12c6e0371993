//! `Y = X . W` on a device: splits the work to fit the device's memories, lays it out, runs
//! it, and gathers the exact int32 result.
//!
//! The plan ([`plan`]) is a list of [`Step`]s: weight loads (as many N-tiles as the weight
//! memory holds), activation loads (all of X at once when it fits, else per chunk of rows),
//! and runs (rows limited by `max_m` and the memories, N-tiles by the result memory). K must
//! fit the device in one piece (all of a row's K-tiles are summed in one run).

use crate::device::{Device, LayerDescriptor};
use crate::error::DriverError;
use crate::layout::{check_ternary, pack_activations, pack_weight_tiles, tiles, unpack_results};
use crate::npy::Matrix;
use std::ops::Range;
use std::time::Instant;
use trimac_hdl::protocol::Memory;
use trimac_hdl::Config;

/// Result and cost of one GEMM on a device.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmReport {
    /// `Y [m, n]`, row-major int32.
    pub y: Vec<i32>,
    /// Rows of X and Y.
    pub m: usize,
    /// Columns of X, rows of W.
    pub k: usize,
    /// Columns of W and Y.
    pub n: usize,
    /// Sum of the cycles the device reported for its RUNs.
    pub cycles: u64,
    /// Link cycles of WRITE and READ exchanges (bytes for backends without a cycle counter).
    pub transfer_cycles: u64,
    /// Bytes moved by WRITE and READ exchanges.
    pub transfer_bytes: u64,
    /// Multiply-accumulates of the GEMM proper, `m * k * n`.
    pub macs: u64,
    /// `macs / (cycles * rows * cols)`: the share of the array's MAC slots doing useful work.
    pub utilization: f64,
    /// RUN commands issued.
    pub runs: u64,
    /// Requests resent after link errors.
    pub retries: u64,
    /// Wall-clock time of the whole GEMM, in seconds.
    pub wall_seconds: f64,
}

/// One step of a GEMM plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write N-tiles `tiles` of W at weight word 0.
    Weights {
        /// N-tiles of W.
        tiles: Range<usize>,
    },
    /// Write rows `rows` of X at activation word `base`.
    Activations {
        /// Rows of X.
        rows: Range<usize>,
        /// First activation word.
        base: usize,
    },
    /// Configure and run rows `rows` against N-tiles `tiles`, then read the results.
    Run {
        /// Rows of X.
        rows: Range<usize>,
        /// N-tiles of W.
        tiles: Range<usize>,
        /// First activation word of `rows`.
        act_base: usize,
        /// First weight word of `tiles`.
        wt_base: usize,
    },
}

/// Largest K a device of configuration `cfg` can take in one run.
pub fn max_k(cfg: &Config) -> usize {
    cfg.max_k().min(cfg.act_depth * cfg.rows)
}

/// Splits `Y [m, n] = X [m, k] . W [k, n]` into steps that fit `cfg`'s memories.
pub fn plan(cfg: &Config, m: usize, k: usize, n: usize) -> Result<Vec<Step>, DriverError> {
    check_dims(m, k, n)?;
    if k > max_k(cfg) {
        return Err(DriverError::Capacity(format!(
            "K = {k} is too large for the {} device: it holds K <= {} (weight memory {} words, \
             activation memory {} words); split the reduction on the host",
            cfg.array_name(),
            max_k(cfg),
            cfg.weight_depth,
            cfg.act_depth
        )));
    }
    let kt = tiles(k, cfg.rows);
    let nt = tiles(n, cfg.cols);
    let group = nt.min(cfg.weight_depth / (kt * cfg.rows));
    let m_chunk = m
        .min(cfg.max_m)
        .min(cfg.act_depth / kt)
        .min(cfg.result_depth)
        .min(u16::MAX as usize);
    let run_tiles = group.min(cfg.result_depth / m_chunk);
    let resident = m * kt <= cfg.act_depth;
    let mut steps = Vec::new();
    if resident {
        steps.push(Step::Activations {
            rows: 0..m,
            base: 0,
        });
    }
    for g in (0..nt).step_by(group) {
        let group_tiles = g..(g + group).min(nt);
        steps.push(Step::Weights {
            tiles: group_tiles.clone(),
        });
        for m0 in (0..m).step_by(m_chunk) {
            let rows = m0..(m0 + m_chunk).min(m);
            let act_base = if resident { m0 * kt } else { 0 };
            if !resident {
                steps.push(Step::Activations {
                    rows: rows.clone(),
                    base: 0,
                });
            }
            for t0 in group_tiles.clone().step_by(run_tiles) {
                steps.push(Step::Run {
                    rows: rows.clone(),
                    tiles: t0..(t0 + run_tiles).min(group_tiles.end),
                    act_base,
                    wt_base: (t0 - g) * kt * cfg.rows,
                });
            }
        }
    }
    Ok(steps)
}

fn check_dims(m: usize, k: usize, n: usize) -> Result<(), DriverError> {
    if m == 0 || k == 0 || n == 0 {
        return Err(DriverError::Shape(format!(
            "empty GEMM ({m}x{k} times {k}x{n}): every dimension must be at least 1"
        )));
    }
    Ok(())
}

/// `Y = X . W` on `dev`: `x` is row-major int8 `[m, k]`, `w` row-major ternary `[k, n]`.
/// `progress(done, total)` is called after every run.
pub fn run_gemm(
    dev: &mut dyn Device,
    x: &[i8],
    w: &[i8],
    (m, k, n): (usize, usize, usize),
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GemmReport, DriverError> {
    check_dims(m, k, n)?;
    if x.len() != m * k {
        return Err(DriverError::Shape(format!(
            "X has {} values, a {m}x{k} matrix has {}",
            x.len(),
            m * k
        )));
    }
    check_ternary(w, k, n)?;
    let cfg = dev.config().clone();
    let steps = plan(&cfg, m, k, n)?;
    let total = steps
        .iter()
        .filter(|s| matches!(s, Step::Run { .. }))
        .count();
    let start = Instant::now();
    let before = dev.stats();
    let mut exec = Executor {
        gemm: Gemm { x, w, k, n },
        cfg: &cfg,
        live_weights: None,
        live_acts: None,
        clean: Some(before.retries),
        y: vec![0i32; m * n],
    };
    let mut done = 0;
    for step in &steps {
        exec.execute(dev, step)?;
        if matches!(step, Step::Run { .. }) {
            done += 1;
            progress(done, total);
        }
    }
    let y = exec.y;
    let spent = dev.stats().since(&before);
    let macs = (m * k * n) as u64;
    Ok(GemmReport {
        y,
        m,
        k,
        n,
        cycles: spent.run_cycles,
        transfer_cycles: spent.transfer_cycles,
        transfer_bytes: spent.transfer_bytes,
        macs,
        utilization: utilization(macs, spent.run_cycles, &cfg),
        runs: spent.runs,
        retries: spent.retries,
        wall_seconds: start.elapsed().as_secs_f64(),
    })
}

/// [`run_gemm`] on matrices read from files; checks that X's columns match W's rows.
pub fn run_gemm_matrices(
    dev: &mut dyn Device,
    x: &Matrix<i8>,
    w: &Matrix<i8>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GemmReport, DriverError> {
    if x.cols != w.rows {
        return Err(DriverError::Shape(format!(
            "X is {}x{} but W is {}x{}: X's columns (K) must equal W's rows",
            x.rows, x.cols, w.rows, w.cols
        )));
    }
    run_gemm(dev, &x.data, &w.data, (x.rows, x.cols, w.cols), progress)
}

/// `macs / (cycles * lanes)`, 0 when nothing ran.
pub fn utilization(macs: u64, cycles: u64, cfg: &Config) -> f64 {
    if cycles == 0 {
        return 0.0;
    }
    macs as f64 / (cycles as f64 * cfg.lanes() as f64)
}

/// Passes of a unit of work (write what it needs, run, read) made before giving up on a link
/// that keeps damaging frames.
pub const MAX_PASSES: usize = 8;

/// The error after [`MAX_PASSES`] passes of `what` each saw a transmission error.
pub(crate) fn too_noisy(what: &str) -> DriverError {
    DriverError::Protocol {
        command: "RUN",
        detail: format!(
            "{what}: all {MAX_PASSES} passes were hit by transmission errors; \
             the link is too noisy for a trustworthy result"
        ),
    }
}

/// The operands of one GEMM.
struct Gemm<'a> {
    x: &'a [i8],
    w: &'a [i8],
    k: usize,
    n: usize,
}

/// Executes a plan's steps and keeps the result exact across link errors.
///
/// A WRITE stores words before its CRC is checked, so a frame whose header was damaged may
/// have stored words anywhere in the weight or activation memory. The client counts every
/// failed attempt ([`Stats::retries`](crate::client::Stats)); a run's result is accepted only
/// if no attempt failed between the last clean write of the data the run reads (the live
/// weight and activation steps) and the read of its results. Otherwise the live data are
/// written again and the run repeated.
struct Executor<'a> {
    gemm: Gemm<'a>,
    cfg: &'a Config,
    live_weights: Option<Step>,
    live_acts: Option<Step>,
    /// The retry count at which the live data were last known intact (`None`: suspect).
    clean: Option<u64>,
    y: Vec<i32>,
}

impl Executor<'_> {
    fn execute(&mut self, dev: &mut dyn Device, step: &Step) -> Result<(), DriverError> {
        match step {
            Step::Weights { .. } => self.live_weights = Some(step.clone()),
            Step::Activations { .. } => self.live_acts = Some(step.clone()),
            Step::Run {
                rows,
                tiles: tile_range,
                act_base,
                wt_base,
            } => return self.run(dev, rows, tile_range, (*act_base, *wt_base)),
        }
        let r0 = dev.stats().retries;
        self.write(dev, step)?;
        if self.clean != Some(r0) || dev.stats().retries != r0 {
            self.clean = None;
        }
        Ok(())
    }

    fn write(&self, dev: &mut dyn Device, step: &Step) -> Result<(), DriverError> {
        let (g, cfg) = (&self.gemm, self.cfg);
        match step {
            Step::Weights { tiles } => {
                let words = pack_weight_tiles(g.w, g.k, g.n, tiles.clone(), cfg)?;
                dev.write(Memory::Weights, 0, &words)
            }
            Step::Activations { rows, base } => {
                let x = &g.x[rows.start * g.k..rows.end * g.k];
                let words = pack_activations(x, rows.len(), g.k, cfg);
                dev.write(Memory::Activations, *base, &words)
            }
            Step::Run { .. } => Ok(()),
        }
    }

    /// Writes the live data again until a pass completes without a failed attempt.
    fn refresh(&mut self, dev: &mut dyn Device) -> Result<u64, DriverError> {
        for _ in 0..MAX_PASSES {
            let r0 = dev.stats().retries;
            if self.clean == Some(r0) {
                return Ok(r0);
            }
            for step in [&self.live_weights, &self.live_acts].into_iter().flatten() {
                self.write(dev, step)?;
            }
            if dev.stats().retries == r0 {
                self.clean = Some(r0);
                return Ok(r0);
            }
        }
        Err(too_noisy("rewriting weights and activations"))
    }

    fn run(
        &mut self,
        dev: &mut dyn Device,
        rows: &Range<usize>,
        tile_range: &Range<usize>,
        bases: (usize, usize),
    ) -> Result<(), DriverError> {
        for _ in 0..MAX_PASSES {
            let r0 = self.refresh(dev)?;
            let part = self.run_once(dev, rows, tile_range, bases)?;
            if dev.stats().retries == r0 {
                self.store(rows, tile_range, &part);
                return Ok(());
            }
            self.clean = None;
        }
        Err(too_noisy("a run"))
    }

    /// Configures, runs and reads one run; returns its `[rows, columns of tile_range]` block.
    fn run_once(
        &self,
        dev: &mut dyn Device,
        rows: &Range<usize>,
        tile_range: &Range<usize>,
        (act_base, wt_base): (usize, usize),
    ) -> Result<Vec<i32>, DriverError> {
        let cfg = self.cfg;
        let layer = LayerDescriptor {
            m: to_u16(rows.len(), "rows per run")?,
            k_tiles: to_u16(tiles(self.gemm.k, cfg.rows), "K-tiles")?,
            n_tiles: to_u16(tile_range.len(), "N-tiles per run")?,
            act_base: to_u16(act_base, "activation base")?,
            wt_base: to_u16(wt_base, "weight base")?,
            out_base: 0,
            mult: 1,
            shift: 0,
            int8_out: false,
            relu: false,
        };
        dev.configure(&layer)?;
        dev.run()?;
        let bytes = dev.read(Memory::Results, 0, rows.len() * tile_range.len())?;
        Ok(unpack_results(
            &bytes,
            rows.len(),
            self.block_cols(tile_range),
            cfg,
        ))
    }

    fn block_cols(&self, tile_range: &Range<usize>) -> usize {
        (tile_range.end * self.cfg.cols).min(self.gemm.n) - tile_range.start * self.cfg.cols
    }

    fn store(&mut self, rows: &Range<usize>, tile_range: &Range<usize>, part: &[i32]) {
        let cols = self.block_cols(tile_range);
        let col0 = tile_range.start * self.cfg.cols;
        let n = self.gemm.n;
        for (r, row) in part.chunks(cols).enumerate() {
            let at = (rows.start + r) * n + col0;
            self.y[at..at + cols].copy_from_slice(row);
        }
    }
}

/// Converts a descriptor field, with an error naming it if it does not fit 16 bits.
pub(crate) fn to_u16(v: usize, what: &str) -> Result<u16, DriverError> {
    u16::try_from(v).map_err(|_| {
        DriverError::Capacity(format!(
            "{what} = {v} does not fit the 16-bit layer descriptor"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(steps: &[Step]) -> usize {
        steps
            .iter()
            .filter(|s| matches!(s, Step::Run { .. }))
            .count()
    }

    #[test]
    fn small_gemm_is_one_run() {
        let cfg = Config::new(8, 8).unwrap();
        let steps = plan(&cfg, 5, 20, 13).unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[2],
            Step::Run {
                rows: 0..5,
                tiles: 0..2,
                act_base: 0,
                wt_base: 0
            }
        );
    }

    #[test]
    fn tiny_memories_split_every_way() {
        let cfg = Config {
            weight_depth: 16, // K = 8 takes 8 words per N-tile: 2 N-tiles per load
            act_depth: 6,
            result_depth: 4,
            max_m: 3,
            ..Config::new(4, 4).unwrap()
        };
        let steps = plan(&cfg, 7, 8, 20).unwrap();
        // X (7 rows x 2 K-tiles = 14 words) does not fit 6 words: per-chunk activation loads.
        assert!(!steps.contains(&Step::Activations {
            rows: 0..7,
            base: 0
        }));
        // 5 N-tiles, 2 per weight load -> 3 loads; 3 row chunks; result memory 4 words -> 1 tile
        // per run at 3 rows.
        let loads = steps
            .iter()
            .filter(|s| matches!(s, Step::Weights { .. }))
            .count();
        assert_eq!(loads, 3);
        assert_eq!(runs(&steps), 3 * 5);
        for s in &steps {
            if let Step::Run { rows, tiles, .. } = s {
                assert!(rows.len() <= 3 && tiles.len() == 1);
            }
        }
    }

    #[test]
    fn k_beyond_the_device_names_the_limit() {
        let cfg = Config {
            weight_depth: 32,
            ..Config::new(4, 4).unwrap()
        };
        let err = plan(&cfg, 1, 33, 4).unwrap_err().to_string();
        assert!(err.contains("K = 33") && err.contains("K <= 32"), "{err}");
        assert!(plan(&cfg, 1, 32, 4).is_ok());
    }

    #[test]
    fn empty_dimensions_are_refused() {
        let cfg = Config::default();
        assert!(plan(&cfg, 0, 1, 1).is_err());
        assert!(plan(&cfg, 1, 0, 1).is_err());
        assert!(plan(&cfg, 1, 1, 0).is_err());
    }
}
