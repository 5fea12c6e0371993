//! `Controller`: walks a layer's tiles and issues activation reads, weight-row reads and
//! accumulator tokens, one cycle at a time.
//!
//! Tiles run N-tile major, K-tile minor. Tile `t` occupies `period = max(m, rows, cols)`
//! cycles: in its step `s` the controller issues activation row `s` (if `s < m`), weight row
//! `s` (if `s < rows`) and, with activation row `s`, the accumulator token that follows that
//! row's partial sums to the bottom of the array. The last tile stops after `max(m, rows)`
//! steps, then the controller waits `rows + cols + DRAIN_EXTRA` cycles for the last result to
//! be written. See docs/architecture.md for why this schedule never stalls.
//!
//! For the clock rate, every decision that steers many registers is itself a register: whether
//! the current step ends its tile (`at_end`, computed a step ahead: a tile lasts at least two
//! steps, so its step 0 never ends it), whether the tile is its outputs' last K-tile
//! (`kt_last`) and whether it is the run's last tile (`last_tile`), both computed when the
//! previous tile ends. No decision chains an add into a compare: the tile counters count down
//! beside the K/N-tile indices.

use rust_hdl::prelude::*;

/// Cycles the controller waits after its last issue, beyond `rows + cols`, so the last
/// partial sum has crossed the accumulator lanes and the requantizer and is written.
pub const DRAIN_EXTRA: usize = crate::config::RUN_DRAIN_CYCLES as usize;

/// Controller state.
#[derive(Copy, Clone, PartialEq, Debug, LogicState)]
pub enum RunState {
    /// Waiting for `start`.
    Idle,
    /// Issuing tiles.
    Issue,
    /// Waiting for the pipeline to empty.
    Drain,
}

/// The tile sequencer.
#[derive(LogicBlock)]
pub struct Controller {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Return to idle at once.
    pub reset: Signal<In, bool>,
    /// Start a run (one-cycle pulse while idle). The layer fields below must be valid from
    /// the cycle before `start` until `done`: while idle, the registers a run starts from
    /// follow them, some through a register of their own.
    pub start: Signal<In, bool>,
    /// `start` of the next cycle, for weight memories read two cycles ahead (only
    /// `wt_read2_addr_next` depends on it).
    pub start_next: Signal<In, bool>,
    /// Activation rows of the layer, at most the `max_m` given to [`Controller::new`].
    pub m: Signal<In, Bits<16>>,
    /// K-tiles of the layer.
    pub k_tiles: Signal<In, Bits<16>>,
    /// N-tiles of the layer.
    pub n_tiles: Signal<In, Bits<16>>,
    /// First activation word.
    pub act_base: Signal<In, Bits<16>>,
    /// First weight word.
    pub wt_base: Signal<In, Bits<16>>,
    /// First output word.
    pub out_base: Signal<In, Bits<16>>,
    /// High while a run is in progress.
    pub busy: Signal<Out, bool>,
    /// `busy` of the next cycle (for registered copies of `busy`).
    pub busy_next: Signal<Out, bool>,
    /// One-cycle pulse in the last cycle of a run.
    pub done: Signal<Out, bool>,
    /// Cycles of the current (or last) run so far.
    pub run_cycles: Signal<Out, Bits<32>>,
    /// Read activation word `act_addr` into the array this cycle.
    pub act_valid: Signal<Out, bool>,
    /// Activation word address.
    pub act_addr: Signal<Out, Bits<16>>,
    /// This activation row is the first of its tile.
    pub act_swap: Signal<Out, bool>,
    /// Read weight word `wt_addr` into the shadow weights this cycle.
    pub wt_valid: Signal<Out, bool>,
    /// This weight word is row 0 of its tile.
    pub wt_start: Signal<Out, bool>,
    /// Weight word address.
    pub wt_addr: Signal<Out, Bits<16>>,
    /// `wt_addr` of the next cycle (for registered copies of `wt_addr`).
    pub wt_addr_next: Signal<Out, Bits<16>>,
    /// For weight memories read a cycle ahead: the next cycle's value of a register that
    /// holds, on every cycle, the `wt_addr` of the cycle after (whenever `wt_valid` is set
    /// then; while idle it follows `wt_base`, the first `wt_addr` of a run).
    pub wt_read_addr_next: Signal<Out, Bits<16>>,
    /// For weight memories read two cycles ahead (`Config::registered_code_bus`): the next
    /// cycle's value of a register that holds, on every cycle, the `wt_addr` of two cycles
    /// after (whenever `wt_valid` is set then; while idle it follows `wt_base`, and it steps
    /// on from `start_next`).
    pub wt_read2_addr_next: Signal<Out, Bits<16>>,
    /// Accumulator token: the row issued this cycle is the first K-tile of its outputs.
    pub tok_first: Signal<Out, bool>,
    /// Accumulator token: the row issued this cycle is the last K-tile of its outputs.
    pub tok_last: Signal<Out, bool>,
    /// Accumulator token: activation row index (accumulator address).
    pub tok_row: Signal<Out, Bits<16>>,
    /// Accumulator token: output word address.
    pub tok_out: Signal<Out, Bits<16>>,
    rows: Constant<Bits<16>>,
    rows_m1: Constant<Bits<16>>,
    rows_m2: Constant<Bits<16>>,
    cols: Constant<Bits<16>>,
    drain_last_m1: Constant<Bits<16>>,
    // The step counter and the registers compared with it count below
    // `max(max_m, rows, cols)`, so only their low bits are kept: the rest are constant zeros
    // that synthesis removes, and each compare is that much shorter.
    step_mask: Constant<Bits<16>>,
    drain_mask: Constant<Bits<16>>,
    state: DFF<RunState>,
    step: DFF<Bits<16>>,
    kt: DFF<Bits<16>>,
    kt_left: DFF<Bits<16>>,
    nt_left: DFF<Bits<16>>,
    period_m2: DFF<Bits<16>>,
    last_tile_m2: DFF<Bits<16>>,
    at_end: DFF<bool>,
    // How the tile ends, registered with `at_end` (one-hot when it is set): the run, the
    // N-tile (the next tile is the next N-tile's first K-tile) or the K-tile. `kt_last` and
    // `last_tile` change only at a tile's end, so the next step's values are known a step
    // ahead.
    end_run: DFF<bool>,
    end_ntile: DFF<bool>,
    end_ktile: DFF<bool>,
    // `step < m`: this step issues an activation row (a register computed a cycle ahead, as
    // `step < m - 1` from `m_m1`, so no add feeds the compare).
    act_more: DFF<bool>,
    m_m1: DFF<Bits<16>>,
    // From the layer, a cycle behind it (read while idle, and `m_nonzero` at each tile's
    // start): `m > max(rows, cols)`, `m > rows`, `m - 2` and `m != 0`.
    m_gt_shape: DFF<bool>,
    m_gt_rows: DFF<bool>,
    m_m2: DFF<Bits<16>>,
    m_nonzero: DFF<bool>,
    kt_last: DFF<bool>,
    last_tile: DFF<bool>,
    k_single: DFF<bool>,
    act_row: DFF<Bits<16>>,
    act_next: DFF<Bits<16>>,
    out_row: DFF<Bits<16>>,
    out_next: DFF<Bits<16>>,
    wt_next: DFF<Bits<16>>,
    // `wt_next` of the next cycle (see `wt_read_addr_next`).
    wt_lead: DFF<Bits<16>>,
    // `wt_next` of two cycles later (see `wt_read2_addr_next`).
    wt_lead2: DFF<Bits<16>>,
    drain: DFF<Bits<16>>,
    drain_end: DFF<bool>,
    // kt_left == 1, nt_left == 0 and nt_left == 1, registered: the counters change only at a
    // tile's end and are read at the next, at least two steps later.
    kt_left_one: DFF<bool>,
    nt_left_zero: DFF<bool>,
    nt_left_one: DFF<bool>,
    cycles: DFF<Bits<32>>,
    end_m2: Signal<Local, Bits<16>>,
    ends_next: Signal<Local, bool>,
    issuing_act: Signal<Local, bool>,
    shape_max: Signal<Local, Bits<16>>,
    wt_more_next: Signal<Local, bool>,
    wt_more_next2: Signal<Local, bool>,
}

impl Controller {
    /// A controller for an array of `rows x cols` and layers of at most `max_m` activation
    /// rows.
    pub fn new(rows: usize, cols: usize, max_m: usize) -> Self {
        assert!((2..=255).contains(&rows) && (1..=255).contains(&cols));
        assert!((1..=0xFFFF).contains(&max_m));
        let mask = |count: usize| (count.next_power_of_two() - 1).min(0xFFFF) as u64;
        Self {
            clock: Default::default(),
            reset: Default::default(),
            start: Default::default(),
            start_next: Default::default(),
            m: Default::default(),
            k_tiles: Default::default(),
            n_tiles: Default::default(),
            act_base: Default::default(),
            wt_base: Default::default(),
            out_base: Default::default(),
            busy: Default::default(),
            busy_next: Default::default(),
            done: Default::default(),
            run_cycles: Default::default(),
            act_valid: Default::default(),
            act_addr: Default::default(),
            act_swap: Default::default(),
            wt_valid: Default::default(),
            wt_start: Default::default(),
            wt_addr: Default::default(),
            wt_addr_next: Default::default(),
            wt_read_addr_next: Default::default(),
            wt_read2_addr_next: Default::default(),
            tok_first: Default::default(),
            tok_last: Default::default(),
            tok_row: Default::default(),
            tok_out: Default::default(),
            rows: Constant::new((rows as u64).into()),
            rows_m1: Constant::new(((rows - 1) as u64).into()),
            rows_m2: Constant::new(((rows - 2) as u64).into()),
            cols: Constant::new((cols as u64).into()),
            drain_last_m1: Constant::new(((rows + cols + DRAIN_EXTRA - 2) as u64).into()),
            step_mask: Constant::new(mask(max_m.max(rows).max(cols)).into()),
            drain_mask: Constant::new(mask(rows + cols + DRAIN_EXTRA).into()),
            state: Default::default(),
            step: Default::default(),
            kt: Default::default(),
            kt_left: Default::default(),
            nt_left: Default::default(),
            period_m2: Default::default(),
            last_tile_m2: Default::default(),
            at_end: Default::default(),
            end_run: Default::default(),
            end_ntile: Default::default(),
            end_ktile: Default::default(),
            act_more: Default::default(),
            m_m1: Default::default(),
            m_gt_shape: Default::default(),
            m_gt_rows: Default::default(),
            m_m2: Default::default(),
            m_nonzero: Default::default(),
            kt_last: Default::default(),
            last_tile: Default::default(),
            k_single: Default::default(),
            act_row: Default::default(),
            act_next: Default::default(),
            out_row: Default::default(),
            out_next: Default::default(),
            wt_next: Default::default(),
            wt_lead: Default::default(),
            wt_lead2: Default::default(),
            drain: Default::default(),
            drain_end: Default::default(),
            kt_left_one: Default::default(),
            nt_left_zero: Default::default(),
            nt_left_one: Default::default(),
            cycles: Default::default(),
            end_m2: Default::default(),
            ends_next: Default::default(),
            issuing_act: Default::default(),
            shape_max: Default::default(),
            wt_more_next: Default::default(),
            wt_more_next2: Default::default(),
        }
    }
}

impl Logic for Controller {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            state,
            step,
            kt,
            kt_left,
            nt_left,
            period_m2,
            last_tile_m2,
            at_end,
            end_run,
            end_ntile,
            end_ktile,
            act_more,
            m_m1,
            m_gt_shape,
            m_gt_rows,
            m_m2,
            m_nonzero,
            kt_last,
            last_tile,
            k_single,
            act_row,
            act_next,
            out_row,
            out_next,
            wt_next,
            wt_lead,
            wt_lead2,
            drain,
            drain_end,
            kt_left_one,
            nt_left_zero,
            nt_left_one,
            cycles
        );
        // The step before the tile's last: when the step register holds it, the next step ends
        // the tile.
        self.end_m2.next = self.period_m2.q.val();
        if self.last_tile.q.val() {
            self.end_m2.next = self.last_tile_m2.q.val();
        }
        self.issuing_act.next = (self.state.q.val() == RunState::Issue) & self.act_more.q.val();
        // The next step ends the tile (read in Issue).
        self.ends_next.next = self.step.q.val() == self.end_m2.val();
        // Outputs: what to issue this cycle.
        self.busy.next = self.state.q.val() != RunState::Idle;
        self.kt_left_one.d.next = self.kt_left.q.val() == 1;
        self.nt_left_zero.d.next = self.nt_left.q.val() == 0;
        self.nt_left_one.d.next = self.nt_left.q.val() == 1;
        // The drain's last cycle, a register computed a cycle ahead.
        self.done.next = self.drain_end.q.val();
        self.drain_end.d.next = (self.state.q.val() == RunState::Drain)
            & (self.drain.q.val() == self.drain_last_m1.val());
        self.run_cycles.next = self.cycles.q.val();
        self.act_valid.next = self.issuing_act.val();
        self.act_addr.next = self.act_next.q.val();
        self.act_swap.next = self.step.q.val() == 0;
        self.wt_valid.next =
            (self.state.q.val() == RunState::Issue) & (self.step.q.val() < self.rows.val());
        self.wt_start.next = self.step.q.val() == 0;
        self.wt_addr.next = self.wt_next.q.val();
        self.tok_first.next = self.kt.q.val() == 0;
        self.tok_last.next = self.kt_last.q.val();
        self.tok_row.next = self.step.q.val();
        self.tok_out.next = self.out_next.q.val();
        // max(rows, cols), then the tile period max(m, rows, cols) and the last tile's length.
        self.shape_max.next = self.rows.val();
        if self.cols.val() > self.rows.val() {
            self.shape_max.next = self.cols.val();
        }
        self.m_gt_shape.d.next = self.m.val() > self.shape_max.val();
        self.m_gt_rows.d.next = self.m.val() > self.rows.val();
        self.m_m2.d.next = (self.m.val() - 2) & self.step_mask.val();
        self.m_nonzero.d.next = self.m.val() != 0;
        // The next step issues a weight row (read in Issue): the run goes on and the step is
        // a tile's first or the one after is below `rows`.
        self.wt_more_next.next = !self.end_run.q.val()
            & (self.at_end.q.val() | (self.step.q.val() < self.rows_m1.val()));
        // The step after the next issues a weight row (read in Issue): the run goes on and
        // the step is the tile's last (the step after next is the next tile's 1), the one
        // before it in a tile that is not the run's last (0), or below `rows - 2`.
        self.wt_more_next2.next = !self.end_run.q.val()
            & (self.at_end.q.val()
                | (self.ends_next.val() & !self.last_tile.q.val())
                | (self.step.q.val() < self.rows_m2.val()));
        match self.state.q.val() {
            RunState::Idle => {
                // While idle, the registers a run starts from follow the layer, so `start`
                // steers only the state, the cycle count and `wt_lead`. A run's first `wt_addr`
                // is `wt_base`, and its second `wt_base + 1` (every tile has at least two
                // weight rows).
                self.wt_lead.d.next = self.wt_base.val();
                self.wt_lead2.d.next = self.wt_base.val();
                if self.start_next.val() {
                    self.wt_lead2.d.next = self.wt_base.val() + 1;
                }
                if self.start.val() {
                    self.wt_lead2.d.next = self.wt_base.val() + 2;
                }
                self.step.d.next = 0.into();
                self.act_more.d.next = self.m_nonzero.q.val();
                // (0 for m = 0, a layer the link refuses: no row is then ever issued.)
                self.m_m1.d.next = 0.into();
                if self.m_nonzero.q.val() {
                    self.m_m1.d.next = (self.m.val() - 1) & self.step_mask.val();
                }
                self.kt.d.next = 0.into();
                self.kt_left.d.next = self.k_tiles.val() - 1;
                self.nt_left.d.next = self.n_tiles.val() - 1;
                // Step 0 is never a tile's last (a tile lasts at least two steps).
                self.at_end.d.next = false;
                self.end_run.d.next = false;
                self.end_ntile.d.next = false;
                self.end_ktile.d.next = false;
                self.k_single.d.next = self.k_tiles.val() == 1;
                self.kt_last.d.next = self.k_tiles.val() == 1;
                self.last_tile.d.next = (self.k_tiles.val() == 1) & (self.n_tiles.val() == 1);
                self.period_m2.d.next = self.shape_max.val() - 2;
                if self.m_gt_shape.q.val() {
                    self.period_m2.d.next = self.m_m2.q.val();
                }
                self.last_tile_m2.d.next = self.rows.val() - 2;
                if self.m_gt_rows.q.val() {
                    self.last_tile_m2.d.next = self.m_m2.q.val();
                }
                self.act_row.d.next = self.act_base.val();
                self.act_next.d.next = self.act_base.val();
                self.out_row.d.next = self.out_base.val();
                self.out_next.d.next = self.out_base.val();
                self.wt_next.d.next = self.wt_base.val();
                if self.start.val() {
                    self.wt_lead.d.next = self.wt_base.val() + 1;
                    self.state.d.next = RunState::Issue;
                    self.cycles.d.next = 1.into();
                }
            }
            RunState::Issue => {
                self.cycles.d.next = self.cycles.q.val() + 1;
                if self.issuing_act.val() {
                    self.act_next.d.next = self.act_next.q.val() + self.k_tiles.val();
                    self.out_next.d.next = self.out_next.q.val() + self.n_tiles.val();
                }
                if self.step.q.val() < self.rows.val() {
                    self.wt_next.d.next = self.wt_next.q.val() + 1;
                }
                if self.wt_more_next.val() {
                    self.wt_lead.d.next = self.wt_lead.q.val() + 1;
                }
                if self.wt_more_next2.val() {
                    self.wt_lead2.d.next = self.wt_lead2.q.val() + 1;
                }
                self.step.d.next = (self.step.q.val() + 1) & self.step_mask.val();
                self.act_more.d.next = self.step.q.val() < self.m_m1.q.val();
                self.at_end.d.next = self.ends_next.val();
                self.end_run.d.next = self.ends_next.val() & self.last_tile.q.val();
                self.end_ntile.d.next =
                    self.ends_next.val() & !self.last_tile.q.val() & self.kt_last.q.val();
                self.end_ktile.d.next =
                    self.ends_next.val() & !self.last_tile.q.val() & !self.kt_last.q.val();
                if self.at_end.q.val() {
                    self.step.d.next = 0.into();
                    self.act_more.d.next = self.m_nonzero.q.val();
                    self.at_end.d.next = false;
                    self.end_run.d.next = false;
                    self.end_ntile.d.next = false;
                    self.end_ktile.d.next = false;
                }
                if self.end_run.q.val() {
                    self.state.d.next = RunState::Drain;
                    self.drain.d.next = 0.into();
                }
                if self.end_ntile.q.val() {
                    // The next tile is the next N-tile's first K-tile.
                    self.kt_last.d.next = self.k_single.q.val();
                    self.last_tile.d.next = self.k_single.q.val() & self.nt_left_one.q.val();
                    self.kt.d.next = 0.into();
                    self.kt_left.d.next = self.k_tiles.val() - 1;
                    self.nt_left.d.next = self.nt_left.q.val() - 1;
                    self.act_row.d.next = self.act_base.val();
                    self.act_next.d.next = self.act_base.val();
                    self.out_row.d.next = self.out_row.q.val() + 1;
                    self.out_next.d.next = self.out_row.q.val() + 1;
                }
                if self.end_ktile.q.val() {
                    // The next tile is this N-tile's next K-tile.
                    self.kt_last.d.next = self.kt_left_one.q.val();
                    self.last_tile.d.next = self.kt_left_one.q.val() & self.nt_left_zero.q.val();
                    self.kt.d.next = self.kt.q.val() + 1;
                    self.kt_left.d.next = self.kt_left.q.val() - 1;
                    self.act_row.d.next = self.act_row.q.val() + 1;
                    self.act_next.d.next = self.act_row.q.val() + 1;
                    self.out_next.d.next = self.out_row.q.val();
                }
            }
            RunState::Drain => {
                self.cycles.d.next = self.cycles.q.val() + 1;
                self.drain.d.next = (self.drain.q.val() + 1) & self.drain_mask.val();
                if self.drain_end.q.val() {
                    self.state.d.next = RunState::Idle;
                }
            }
            _ => {
                self.state.d.next = RunState::Idle;
            }
        }
        if self.reset.val() {
            self.state.d.next = RunState::Idle;
            self.drain_end.d.next = false;
        }
        // The registers' next values, for copies kept outside (see `FanoutRegister`).
        self.busy_next.next = self.state.d.val() != RunState::Idle;
        self.wt_addr_next.next = self.wt_next.d.val();
        self.wt_read_addr_next.next = self.wt_lead.d.val();
        self.wt_read2_addr_next.next = self.wt_lead2.d.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::{settle, tick};

    /// What the controller must issue in one Issue cycle, from the schedule in the module doc.
    #[derive(Debug, PartialEq)]
    struct Issue {
        act: Option<(u64, bool)>,
        wt: Option<(u64, bool)>,
        tok: Option<(bool, bool, u64, u64)>,
    }

    /// The schedule of a run, cycle by cycle from the first Issue cycle.
    fn schedule(rows: usize, cols: usize, m: usize, kt: usize, nt: usize) -> Vec<Issue> {
        let (act_base, wt_base, out_base) = (100, 200, 300);
        let period = m.max(rows).max(cols);
        let mut out = vec![];
        for n in 0..nt {
            for k in 0..kt {
                let t = n * kt + k;
                let last = t + 1 == kt * nt;
                let len = if last { m.max(rows) } else { period };
                for s in 0..len {
                    out.push(Issue {
                        act: (s < m).then(|| ((act_base + s * kt + k) as u64, s == 0)),
                        wt: (s < rows).then(|| ((wt_base + t * rows + s) as u64, s == 0)),
                        tok: (s < m).then(|| {
                            (
                                k == 0,
                                k + 1 == kt,
                                s as u64,
                                (out_base + n + s * nt) as u64,
                            )
                        }),
                    });
                }
            }
        }
        out
    }

    fn observed(c: &Controller) -> Issue {
        Issue {
            act: c
                .act_valid
                .val()
                .then(|| (c.act_addr.val().index() as u64, c.act_swap.val())),
            wt: c
                .wt_valid
                .val()
                .then(|| (c.wt_addr.val().index() as u64, c.wt_start.val())),
            tok: c.act_valid.val().then(|| {
                (
                    c.tok_first.val(),
                    c.tok_last.val(),
                    c.tok_row.val().index() as u64,
                    c.tok_out.val().index() as u64,
                )
            }),
        }
    }

    /// One clock cycle, checking that `busy_next` and `wt_addr_next` were the next cycle's
    /// `busy` and `wt_addr`, and that the weight read address (the register behind
    /// `wt_read_addr_next`) was the next cycle's `wt_addr` whenever that is valid.
    fn step(c: &mut Controller) {
        step_with(c, None);
    }

    /// `step`, and with `lead2` (the values the register behind `wt_read2_addr_next` has
    /// held, from a cycle before `start_next`), that it held each valid `wt_addr` two cycles
    /// before.
    fn step_with(c: &mut Controller, lead2: Option<&mut Vec<Bits<16>>>) {
        settle(c);
        let (busy, wt_addr) = (c.busy_next.val(), c.wt_addr_next.val());
        let (read_addr, read_addr_next) = (c.wt_lead.q.val(), c.wt_read_addr_next.val());
        let (lead2_now, lead2_next) = (c.wt_lead2.q.val(), c.wt_read2_addr_next.val());
        tick(c, |b| &mut b.clock);
        assert_eq!(c.busy.val(), busy, "busy_next");
        assert_eq!(c.wt_addr.val(), wt_addr, "wt_addr_next");
        assert_eq!(c.wt_lead.q.val(), read_addr_next, "wt_read_addr_next");
        assert_eq!(c.wt_lead2.q.val(), lead2_next, "wt_read2_addr_next");
        if c.wt_valid.val() {
            assert_eq!(c.wt_addr.val(), read_addr, "weight read address");
        }
        if let Some(h) = lead2 {
            h.push(lead2_now);
            if c.wt_valid.val() {
                assert!(h.len() >= 2, "a weight row issued before the run started");
                assert_eq!(c.wt_addr.val(), h[h.len() - 2], "two-ahead read address");
            }
        }
    }

    /// Runs one layer and checks every cycle against `schedule` and the cycle formula.
    fn check_run(c: &mut Controller, rows: usize, cols: usize, m: usize, kt: usize, nt: usize) {
        let cfg = crate::Config::new(rows, cols).unwrap();
        c.m.next = (m as u64).into();
        c.k_tiles.next = (kt as u64).into();
        c.n_tiles.next = (nt as u64).into();
        c.act_base.next = 100.into();
        c.wt_base.next = 200.into();
        c.out_base.next = 300.into();
        // The fields before the start, as the host link sets them (a frame earlier), and
        // `start_next` the cycle before `start`.
        let mut lead2 = vec![];
        step_with(c, Some(&mut lead2));
        c.start_next.next = true;
        step_with(c, Some(&mut lead2));
        c.start_next.next = false;
        c.start.next = true;
        step_with(c, Some(&mut lead2));
        c.start.next = false;
        let want = schedule(rows, cols, m, kt, nt);
        let shape = format!("{rows}x{cols}, m {m}, {kt} K-tiles, {nt} N-tiles");
        for (cycle, w) in want.iter().enumerate() {
            assert!(
                c.busy.val() && !c.done.val(),
                "{shape}: issue cycle {cycle}"
            );
            assert_eq!(&observed(c), w, "{shape}: issue cycle {cycle}");
            step_with(c, Some(&mut lead2));
        }
        let drain = rows + cols + DRAIN_EXTRA;
        for cycle in 0..drain {
            let o = observed(c);
            assert!(
                o.act.is_none() && o.wt.is_none(),
                "{shape}: drain cycle {cycle}"
            );
            assert!(c.busy.val(), "{shape}: drain cycle {cycle}");
            assert_eq!(
                c.done.val(),
                cycle + 1 == drain,
                "{shape}: drain cycle {cycle}"
            );
            if c.done.val() {
                let total = 1 + want.len() + drain;
                assert_eq!(total as u64, cfg.run_cycles(m, kt, nt), "{shape}");
                assert_eq!(c.run_cycles.val().index() + 1, total, "{shape}");
            }
            step(c);
        }
        assert!(
            !c.busy.val() && !c.done.val(),
            "{shape}: idle after the run"
        );
    }

    #[test]
    fn issues_the_documented_schedule() {
        for (rows, cols) in [(2, 4), (2, 8), (4, 4), (8, 4), (4, 8), (8, 8)] {
            let mut c = Controller::new(rows, cols, 512);
            c.connect_all();
            for m in [1, 2, 3, 5, 9, 17] {
                for kt in 1..=3 {
                    for nt in 1..=3 {
                        check_run(&mut c, rows, cols, m, kt, nt);
                    }
                }
            }
        }
    }

    #[test]
    fn runs_layers_of_max_m_rows_with_the_narrowed_counters() {
        // The step counter keeps only the bits `max(max_m, rows, cols)` needs: a layer of
        // exactly `max_m` rows (the step then reaches the mask), and one whose period is the
        // array's, follow the schedule.
        for (rows, cols, max_m) in [(4, 4, 16), (8, 4, 8), (2, 8, 5), (4, 8, 33)] {
            let mut c = Controller::new(rows, cols, max_m);
            c.connect_all();
            for m in [max_m, max_m - 1, 1] {
                for (kt, nt) in [(1, 1), (2, 1), (1, 3), (3, 2)] {
                    check_run(&mut c, rows, cols, m, kt, nt);
                }
            }
        }
    }

    #[test]
    fn reset_returns_to_idle_mid_run() {
        let mut c = Controller::new(4, 4, 512);
        c.connect_all();
        c.m.next = 6.into();
        c.k_tiles.next = 2.into();
        c.n_tiles.next = 2.into();
        c.start.next = true;
        step(&mut c);
        c.start.next = false;
        for _ in 0..7 {
            step(&mut c);
        }
        assert!(c.busy.val());
        c.reset.next = true;
        step(&mut c);
        c.reset.next = false;
        assert!(!c.busy.val() && !c.act_valid.val() && !c.wt_valid.val());
        // A new run after the reset follows the schedule from its start.
        check_run(&mut c, 4, 4, 5, 2, 3);
    }
}
