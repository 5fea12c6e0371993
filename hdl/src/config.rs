//! The one configuration object every generator, simulator and driver reads.
//!
//! A [`Config`] fixes the array shape, the on-chip memory sizes and the clock. The hardware
//! generators size every block from it, the simulators and the reference device model read it,
//! and the device reports it over the link (`INFO`) so the host driver adapts to whatever is
//! flashed.

use std::fmt;

/// Array shapes offered by the CLI (`--array RxC`). Any other shape that passes
/// [`Config::validate`] also works; these are the ones the project builds and reports.
pub const ARRAY_MENU: [(usize, usize); 4] = [(4, 4), (8, 8), (16, 16), (32, 32)];

/// Width of the partial sums that travel down the array columns, in bits.
///
/// A column of `rows` PEs sums at most `rows` products of magnitude <= 128, so
/// `|sum| <= 128 * rows`; 16 signed bits hold that for `rows <= 255`.
pub const PSUM_BITS: usize = 16;

/// Width of the accumulators and of the raw results, in bits (results are int32).
pub const ACC_BITS: usize = 32;

/// Largest number of array rows. The one-hot byte selects of the host link are 32 bits wide
/// (one bit per activation byte of a word); [`PSUM_BITS`] alone would allow 255.
pub const MAX_ROWS: usize = 32;
/// Largest number of array columns (one-hot lane selects of the host link).
pub const MAX_COLS: usize = 32;

/// Cycles a run spends besides issuing tiles and draining the array: the start cycle.
pub const RUN_START_CYCLES: u64 = 1;
/// Cycles the controller waits after its last issue beyond `rows + cols`. The last activation
/// needs 2 cycles through the feeder (RAM read, gate), `rows + cols - 1` through the array, 1
/// through the accumulator lane, 2 through the requantizer and 1 to be written: `rows + cols
/// + 5` in all.
pub const RUN_DRAIN_CYCLES: u64 = 5;

/// Configuration of one trimac instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// PE rows: the number of K (reduction) elements the array consumes per cycle.
    pub rows: usize,
    /// PE columns: the number of N (output) elements the array produces per cycle.
    pub cols: usize,
    /// Weight memory depth in words; a word holds one array row of weights (`cols` codes).
    pub weight_depth: usize,
    /// Activation memory depth in words; a word holds `rows` int8 activations.
    pub act_depth: usize,
    /// Result memory depth in words; a word holds `cols` int32 results.
    pub result_depth: usize,
    /// Accumulator depth: the largest M (activation rows) one run may have.
    pub max_m: usize,
    /// Design clock in Hz (used to turn cycles into time; boards set it).
    pub clock_hz: u32,
    /// Cycles without a byte, inside a frame, after which the device abandons the frame and
    /// answers `TRUNCATED`.
    pub frame_timeout_cycles: u32,
    /// Accumulator RAM reads go through a register: each accumulator lane reads a cycle
    /// earlier and has one more pipeline stage, for block RAMs whose read data arrives late in
    /// the cycle (ECP5's DP16KD). Results and cycle counts are the same either way, so `INFO`
    /// does not report it; boards choose it ([`min_revisit_cycles`] gives the bound each
    /// choice puts on the schedule).
    ///
    /// [`min_revisit_cycles`]: crate::blocks::accumulator_lane::min_revisit_cycles
    pub registered_acc_reads: bool,
    /// Host reads (READ replies) take the memories' words through a register before the
    /// byte multiplexer, and wait a cycle more for each word: for block RAMs whose read data
    /// arrives late, where the multiplexer behind them would otherwise share the cycle with
    /// the RAM's clock-to-out; result words then leave through a chain of lane registers
    /// (`ResultShifter`), a byte per load, instead of the multiplexer. Results and run cycles
    /// are the same either way (a READ reply takes one cycle more per word), so `INFO` does
    /// not report it; boards choose it.
    pub registered_host_reads: bool,
    /// Activation bank reads for the array go through a register: each bank reads a cycle
    /// earlier (from the previous row's feed registers, row 0 from the controller) and its
    /// word waits a cycle, so the array's first adders start at a flip-flop rather than at
    /// the RAM's late read data. Results and cycles are the same either way, so `INFO` does
    /// not report it; boards choose it.
    pub registered_act_reads: bool,
    /// Weight memory reads for the array go through a register: each weight RAM reads a
    /// cycle earlier (from the controller's `wt_read_addr_next`, in copies) and its word
    /// waits a cycle, so the code bus to a column's PEs starts at a flip-flop rather than at
    /// the RAM's late read data. Results and cycles are the same either way, so `INFO` does
    /// not report it; boards choose it.
    pub registered_weight_reads: bool,
    /// The weight code bus is registered once more, in the array, in one copy per eight rows
    /// (needs `registered_weight_reads`): each weight RAM reads two cycles ahead (from the
    /// controller's `wt_read2_addr_next`, and from two cycles before the start, which the
    /// host link announces), so no code net runs from a RAM to every PE of its column.
    /// Results and cycles are the same either way, so `INFO` does not report it; boards
    /// choose it.
    pub registered_code_bus: bool,
    /// The host link tests a CONFIGURE region's end against a power-of-two memory depth as a
    /// LUT tree (`end >> log2(depth) != 0 && end != depth`) instead of a carry-chain compare.
    /// On the iCE40 the ends come out of SB_MAC16s far from the logic, and the tree took them
    /// off the critical paths (median 47.9 to 49.1 MHz on the iCEBreaker); on the ECP5 the
    /// carry chains are fast and the same change cost the ULX3S 8x8 18 MHz (docs/boards.md,
    /// thirteenth round). Depths that are not powers of two keep the compare. The status is
    /// the same either way; boards choose it.
    pub lut_range_checks: bool,
    /// The host link's READ load strobe (`host_rd_load`, a clock enable of every READ
    /// position register and of the core's read registers) is one LUT of registers set a
    /// cycle ahead from the link's next-state values, instead of a decode of its state: on
    /// the ULX3S-85F 32x32 that took it off the critical paths (67.8 to 75.0 MHz on seed
    /// 3); on the iCE40 the next-state logic in front of those registers cost the
    /// iCEBreaker 12 MHz (docs/boards.md, fifteenth round). Replies are the same either
    /// way; boards choose it.
    pub registered_read_strobe: bool,
}

/// A configuration that cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Default for Config {
    fn default() -> Self {
        Config::new(8, 8).expect("8x8 is a valid array")
    }
}

impl Config {
    /// The default configuration for an array of `rows` x `cols` PEs.
    pub fn new(rows: usize, cols: usize) -> Result<Config, ConfigError> {
        let cfg = Config {
            rows,
            cols,
            weight_depth: 4096,
            act_depth: 4096,
            result_depth: 4096,
            max_m: 512,
            clock_hz: 50_000_000,
            frame_timeout_cycles: 4096,
            registered_acc_reads: false,
            registered_host_reads: false,
            registered_act_reads: false,
            registered_weight_reads: false,
            registered_code_bus: false,
            lut_range_checks: false,
            registered_read_strobe: false,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses an array shape written `RxC` (e.g. `8x8`) into a default configuration.
    pub fn from_array_spec(spec: &str) -> Result<Config, ConfigError> {
        let (r, c) = spec.split_once(['x', 'X']).ok_or_else(|| {
            ConfigError(format!(
                "array shape `{spec}` is not of the form RxC (e.g. 8x8)"
            ))
        })?;
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| ConfigError(format!("array shape `{spec}`: `{s}` is not a number")))
        };
        Config::new(parse(r)?, parse(c)?)
    }

    /// Checks every limit the hardware relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if !self.rows.is_power_of_two() || !(2..=MAX_ROWS).contains(&self.rows) {
            return err(format!(
                "rows = {} must be a power of two in 2..={MAX_ROWS}",
                self.rows
            ));
        }
        if !self.cols.is_power_of_two() || !(4..=MAX_COLS).contains(&self.cols) {
            return err(format!(
                "cols = {} must be a power of two in 4..={MAX_COLS}",
                self.cols
            ));
        }
        for (name, depth) in [
            ("weight_depth", self.weight_depth),
            ("act_depth", self.act_depth),
            ("result_depth", self.result_depth),
            ("max_m", self.max_m),
        ] {
            if depth == 0 || depth > 65536 {
                return err(format!("{name} = {depth} is outside 1..=65536"));
            }
        }
        if self.clock_hz == 0 {
            return err("clock_hz must be positive".into());
        }
        if self.frame_timeout_cycles < 16 {
            return err("frame_timeout_cycles must be at least 16".into());
        }
        if self.registered_code_bus && !self.registered_weight_reads {
            return err("registered_code_bus needs registered_weight_reads".into());
        }
        Ok(())
    }

    /// `RxC` as printed in reports.
    pub fn array_name(&self) -> String {
        format!("{}x{}", self.rows, self.cols)
    }

    /// MAC lanes (PEs) in the array.
    pub fn lanes(&self) -> usize {
        self.rows * self.cols
    }

    /// Bytes in one weight word on the link (4 two-bit codes per byte).
    pub fn weight_word_bytes(&self) -> usize {
        self.cols / 4
    }

    /// Bytes in one activation word on the link (one int8 per row).
    pub fn act_word_bytes(&self) -> usize {
        self.rows
    }

    /// Bytes in one result word on the link (one little-endian int32 per column).
    pub fn result_word_bytes(&self) -> usize {
        4 * self.cols
    }

    /// Cycles from the start of a RUN to its last result written, for a layer of `m` rows,
    /// `k_tiles` K-tiles and `n_tiles` N-tiles (docs/architecture.md derives it):
    ///
    /// `1 + (T - 1) * P + max(m, rows) + rows + cols + RUN_DRAIN_CYCLES` with
    /// `T = k_tiles * n_tiles` and `P = max(m, rows, cols)`. Every backend is tested to take
    /// exactly this many cycles.
    pub fn run_cycles(&self, m: usize, k_tiles: usize, n_tiles: usize) -> u64 {
        let period = m.max(self.rows).max(self.cols) as u64;
        let tiles = (k_tiles * n_tiles).max(1) as u64;
        RUN_START_CYCLES
            + (tiles - 1) * period
            + m.max(self.rows) as u64
            + (self.rows + self.cols) as u64
            + RUN_DRAIN_CYCLES
    }

    /// Largest K a layer may have: every K-tile needs `rows` weight words per N-tile.
    pub fn max_k(&self) -> usize {
        (self.weight_depth / self.rows) * self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_sizes_are_valid() {
        for (r, c) in ARRAY_MENU {
            let cfg = Config::new(r, c).unwrap();
            assert_eq!(cfg.lanes(), r * c);
            assert!(128 * cfg.rows < (1 << (PSUM_BITS - 1)));
        }
    }

    #[test]
    fn parses_array_spec() {
        assert_eq!(Config::from_array_spec("16x16").unwrap().rows, 16);
        assert!(Config::from_array_spec("16").is_err());
        assert!(Config::from_array_spec("8x6").is_err());
        assert!(Config::from_array_spec("12x12").is_err());
        assert!(Config::from_array_spec("64x64").is_err());
        assert!(Config::from_array_spec("1x8").is_err());
        assert!(Config::from_array_spec("axb").is_err());
    }

    #[test]
    fn accumulator_cannot_overflow_at_max_k() {
        let cfg = Config::new(32, 32).unwrap();
        // |sum| <= 128 * K must fit a signed ACC_BITS accumulator.
        assert!((128u64 * cfg.max_k() as u64) < (1u64 << (ACC_BITS - 1)));
    }

    #[test]
    fn a_staged_code_bus_needs_registered_weight_reads() {
        let staged = Config {
            registered_code_bus: true,
            ..Config::default()
        };
        let e = staged.validate().unwrap_err();
        assert!(e.0.contains("registered_weight_reads"), "{e}");
        let both = Config {
            registered_weight_reads: true,
            ..staged
        };
        assert!(both.validate().is_ok());
    }
}
