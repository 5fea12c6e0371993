//! `Core`: the array with its memories, feeders, accumulator lanes and output stage.
//!
//! ```text
//!  act_banks[i] --(row i delayed i cycles)--> TernaryArray <-- weight_rams[j] (code bus,
//!                                                 |              row-by-row shadow loads)
//!                                      psum_out[j] v
//!  token delay line (rows + 1 taps*) --> AccumulatorLane[0] -> [1] -> ... (one cycle per lane)
//!                                                 v
//!                                                 |-> result_rams[j] (int32)
//!                                     Requantizer[j] -> act_banks[j]   (int8, square arrays)
//!
//!  * rows taps with registered accumulator reads (`Config::registered_acc_reads`)
//! ```
//!
//! The host link reaches every memory through the `host_*` ports while no run is in progress:
//! writes are staged per lane and committed as whole words, reads load one byte chosen by a
//! one-hot lane select ([`ReadSelect`]) into a register (with `Config::registered_host_reads`,
//! from a register of each memory's word, the link waiting a cycle more per word, and result
//! words sent a byte per load by a [`ResultShifter`] instead of the multiplexer).

use super::accumulator_lane::AccumulatorLane;
use super::controller::Controller;
use super::dffs;
use super::fanout::{FanoutRegister, LOADS_PER_COPY};
use super::lane_ram::LaneRam;
use super::read_select::ReadSelect;
pub use super::read_select::{MEM_ACTS, MEM_RESULTS, MEM_WEIGHTS};
use super::requantizer::Requantizer;
use super::result_shifter::ResultShifter;
use super::ternary_array::TernaryArray;
use crate::config::{Config, ACC_BITS};
use rust_hdl::prelude::*;

// The memories' copies are picked with `j / 8` and `i / 8`.
const _: () = assert!(LOADS_PER_COPY == 8);

/// The compute core.
#[derive(LogicBlock)]
pub struct Core {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Abandon a run.
    pub reset: Signal<In, bool>,
    /// Start a run of the layer below (one-cycle pulse). The layer must be valid then, and
    /// `wt_base` also the two cycles before.
    pub start: Signal<In, bool>,
    /// `start` of the next cycle (for registered copies of it).
    pub start_next: Signal<In, bool>,
    /// `start` two cycles later (for registered copies of `start_next`; read only with
    /// `Config::registered_code_bus`).
    pub start_next2: Signal<In, bool>,
    /// Layer: activation rows.
    pub m: Signal<In, Bits<16>>,
    /// Layer: K-tiles.
    pub k_tiles: Signal<In, Bits<16>>,
    /// Layer: N-tiles.
    pub n_tiles: Signal<In, Bits<16>>,
    /// Layer: first activation word.
    pub act_base: Signal<In, Bits<16>>,
    /// Layer: first weight word.
    pub wt_base: Signal<In, Bits<16>>,
    /// Layer: first output word.
    pub out_base: Signal<In, Bits<16>>,
    /// Layer: requantization multiplier. This and the three fields below reach the lanes
    /// through copies, a cycle after they change (the host link sets them a frame before a
    /// run).
    pub mult: Signal<In, Bits<16>>,
    /// Layer: requantization shift.
    pub shift: Signal<In, Bits<5>>,
    /// Layer: write int8 into activation memory (else int32 into result memory).
    pub int8_out: Signal<In, bool>,
    /// Layer: ReLU before the int8 clamp.
    pub relu: Signal<In, bool>,
    /// A run is in progress.
    pub busy: Signal<Out, bool>,
    /// Last cycle of a run.
    pub done: Signal<Out, bool>,
    /// Cycles of the current or last run.
    pub run_cycles: Signal<Out, Bits<32>>,
    /// Host read: word address (all lanes of the selected memory) of the next cycle; the core
    /// registers it in copies, one per `LOADS_PER_COPY` memories.
    pub host_rd_addr_next: Signal<In, Bits<16>>,
    /// Host read: one-hot position of the byte in a weight word (zero when not reading
    /// weights).
    pub host_rd_weight_pos: Signal<In, Bits<32>>,
    /// Host read: one-hot position of the byte in an activation word.
    pub host_rd_act_pos: Signal<In, Bits<32>>,
    /// Host read: one-hot lane of the byte in a result word, one vector per byte of a lane.
    pub host_rd_result_pos: Vec<Signal<In, Bits<32>>>,
    /// Host read: load `host_rd_byte` with the selected byte of the word the memories read
    /// (the word at the host read address one cycle earlier).
    pub host_rd_load: Signal<In, bool>,
    /// Host read: this load takes a word's first byte.
    pub host_rd_first: Signal<In, bool>,
    /// Host read: the READ is of results.
    pub host_rd_results: Signal<In, bool>,
    /// Host read: the byte of the last load (a register, so the reply path starts at a
    /// flip-flop rather than at the memories' outputs).
    pub host_rd_byte: Signal<Out, Bits<8>>,
    /// Host write: stage `host_wr_byte` into the lanes of byte `host_wr_sel`.
    pub host_stage: Signal<In, bool>,
    /// Host write: store the staged word at `host_wr_addr`.
    pub host_commit: Signal<In, bool>,
    /// Host write: target is activation memory (else weight memory).
    pub host_wr_acts: Signal<In, bool>,
    /// Host write: word address.
    pub host_wr_addr: Signal<In, Bits<16>>,
    /// Host write: the byte to stage.
    pub host_wr_byte: Signal<In, Bits<8>>,
    /// Host write: one-hot position of the byte within its word.
    pub host_wr_sel: Signal<In, Bits<32>>,
    ctrl: Controller,
    array: TernaryArray,
    weight_rams: Vec<LaneRam<Bits<2>>>,
    act_banks: Vec<LaneRam<Bits<8>>>,
    result_rams: Vec<LaneRam<Bits<ACC_BITS>>>,
    lanes: Vec<AccumulatorLane>,
    // Square arrays only (else empty: non-square arrays refuse `INT8_OUT`).
    requants: Vec<Requantizer>,
    weight_stage: Vec<DFF<Bits<2>>>,
    act_stage: Vec<DFF<Bits<8>>>,
    feed_addr: Vec<DFF<Bits<16>>>,
    feed_valid: Vec<DFF<bool>>,
    feed_swap: Vec<DFF<bool>>,
    feed_valid_d: Vec<DFF<bool>>,
    feed_swap_d: Vec<DFF<bool>>,
    // The weight load strobe's delay line: `load_token[i]` is row `i + 1`'s strobe a cycle
    // ahead (the array registers it); row 0's comes from the controller.
    load_token: Vec<DFF<bool>>,
    tok_valid: Vec<DFF<bool>>,
    tok_first: Vec<DFF<bool>>,
    tok_last: Vec<DFF<bool>>,
    tok_row: Vec<DFF<Bits<16>>>,
    tok_out: Vec<DFF<Bits<16>>>,
    // Copies of the controller's `busy` and `wt_addr`, one per `LOADS_PER_COPY` weight RAMs.
    busy_fan: FanoutRegister<bool>,
    wt_addr_fan: FanoutRegister<Bits<16>>,
    // Copies of the host read address: for the activation banks, the weight RAMs and the
    // result RAMs, one per `LOADS_PER_COPY` of each.
    rd_addr_acts: FanoutRegister<Bits<16>>,
    rd_addr_weights: FanoutRegister<Bits<16>>,
    rd_addr_results: FanoutRegister<Bits<16>>,
    // Registered host reads only (`Config::registered_host_reads`; else empty): the words
    // the memories read, registered before the byte multiplexer, and the chain of lane
    // registers that sends result words a byte per load instead of the multiplexer (else a
    // single idle lane, since hdl_gen cannot index a port vector of a block in a vector).
    rd_codes: Vec<DFF<Bits<2>>>,
    rd_acts: Vec<DFF<Bits<8>>>,
    rd_results: Vec<DFF<Bits<ACC_BITS>>>,
    result_shifter: ResultShifter,
    // Registered activation reads only (`Config::registered_act_reads`; else empty): each
    // bank's word for the array, a cycle after the bank read it.
    act_word: Vec<DFF<Bits<8>>>,
    // Registered weight reads only (`Config::registered_weight_reads`; else empty, and the
    // copies single): each weight RAM's word for the array, a cycle after the RAM read it;
    // copies of the controller's weight read address (a cycle ahead of `wt_addr`) and of
    // "a run is on or starts" (the RAMs read for the array from the start cycle).
    wt_word: Vec<DFF<Bits<2>>>,
    wt_read_fan: FanoutRegister<Bits<16>>,
    wt_sel_fan: FanoutRegister<bool>,
    // 1 with a staged code bus (`Config::registered_code_bus`: the weight RAMs read two
    // cycles ahead, from `wt_read2_addr_next` and from two cycles before the start), else 0.
    _code_staged: usize,
    // Copies of the layer's output fields, one per `LOADS_PER_COPY` lanes: the
    // requantizers' multiplier (straight into their block multipliers), shift and ReLU, and
    // the int8 flag that steers their writes.
    mult_fan: FanoutRegister<Bits<16>>,
    shift_fan: FanoutRegister<Bits<5>>,
    relu_fan: FanoutRegister<bool>,
    int8_fan: FanoutRegister<bool>,
    // Square arrays only (else empty): each requantizer's int8 write, registered on its way
    // to the activation bank of its index (a bank feeds a row, at the array's left edge,
    // and the requantizer sits under its column, so the path is long).
    int8_valid: Vec<DFF<bool>>,
    int8_addr: Vec<DFF<Bits<16>>>,
    int8_byte: Vec<DFF<Bits<8>>>,
    read_select: ReadSelect,
    rd_byte: DFF<Bits<8>>,
    _rd_rows: usize,
    _rd_cols: usize,
    _tree_cols: usize,
    _result_shifters: usize,
    // `rows` and 1 with registered activation reads, else 0 and 0.
    _act_word_rows: usize,
    _act_word_first: usize,
    _wt_word_cols: usize,
    // `cols` without registered weight reads, else 0.
    _wt_now_cols: usize,
    _rows: usize,
    _cols: usize,
    _tok_taps: usize,
    _square: usize,
}

impl Core {
    /// The core for `cfg`.
    pub fn new(cfg: &Config) -> Self {
        cfg.validate().expect("invalid configuration");
        let (rows, cols) = (cfg.rows, cfg.cols);
        // Lane 0 sees a row's token one cycle before that row's partial sum leaves column 0,
        // or two with registered accumulator reads.
        let tok_taps = rows + 1 - usize::from(cfg.registered_acc_reads);
        let per_rows = FanoutRegister::<bool>::copies_for(rows, LOADS_PER_COPY);
        let per_cols = FanoutRegister::<bool>::copies_for(cols, LOADS_PER_COPY);
        let act_word_rows = if cfg.registered_act_reads { rows } else { 0 };
        let square = if rows == cols { rows } else { 0 };
        // The weight RAMs' read address and select come from one pair of copies or the other
        // (the unused pair is single, so synthesis removes it).
        let (wt_word_cols, wt_copies, wt_now_copies) = if cfg.registered_weight_reads {
            (cols, per_cols, 1)
        } else {
            (0, 1, per_cols)
        };
        let (rd_rows, rd_cols) = if cfg.registered_host_reads {
            (rows, cols)
        } else {
            (0, 0)
        };
        Self {
            clock: Default::default(),
            reset: Default::default(),
            start: Default::default(),
            start_next: Default::default(),
            start_next2: Default::default(),
            m: Default::default(),
            k_tiles: Default::default(),
            n_tiles: Default::default(),
            act_base: Default::default(),
            wt_base: Default::default(),
            out_base: Default::default(),
            mult: Default::default(),
            shift: Default::default(),
            int8_out: Default::default(),
            relu: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            run_cycles: Default::default(),
            host_rd_addr_next: Default::default(),
            host_rd_weight_pos: Default::default(),
            host_rd_act_pos: Default::default(),
            host_rd_result_pos: (0..4).map(|_| Default::default()).collect(),
            host_rd_load: Default::default(),
            host_rd_first: Default::default(),
            host_rd_results: Default::default(),
            host_rd_byte: Default::default(),
            host_stage: Default::default(),
            host_commit: Default::default(),
            host_wr_acts: Default::default(),
            host_wr_addr: Default::default(),
            host_wr_byte: Default::default(),
            host_wr_sel: Default::default(),
            ctrl: Controller::new(rows, cols, cfg.max_m),
            array: TernaryArray::new(rows, cols, cfg.registered_code_bus),
            weight_rams: (0..cols).map(|_| LaneRam::new(cfg.weight_depth)).collect(),
            act_banks: (0..rows).map(|_| LaneRam::new(cfg.act_depth)).collect(),
            result_rams: (0..cols).map(|_| LaneRam::new(cfg.result_depth)).collect(),
            lanes: (0..cols)
                .map(|_| AccumulatorLane::new(cfg.max_m, cfg.registered_acc_reads))
                .collect(),
            requants: (0..square).map(|_| Requantizer::default()).collect(),
            weight_stage: dffs(cols),
            act_stage: dffs(rows),
            feed_addr: dffs(rows),
            feed_valid: dffs(rows),
            feed_swap: dffs(rows),
            feed_valid_d: dffs(rows),
            feed_swap_d: dffs(rows),
            load_token: dffs(rows - 1),
            tok_valid: dffs(tok_taps),
            tok_first: dffs(tok_taps),
            tok_last: dffs(tok_taps),
            tok_row: dffs(tok_taps),
            tok_out: dffs(tok_taps),
            busy_fan: FanoutRegister::new(wt_now_copies),
            wt_addr_fan: FanoutRegister::new(wt_now_copies),
            rd_codes: dffs(rd_cols),
            rd_acts: dffs(rd_rows),
            rd_results: dffs(rd_cols),
            result_shifter: ResultShifter::new(rd_cols.max(1)),
            act_word: dffs(act_word_rows),
            wt_word: dffs(wt_word_cols),
            wt_read_fan: FanoutRegister::new(wt_copies),
            wt_sel_fan: FanoutRegister::new(wt_copies),
            _code_staged: usize::from(cfg.registered_code_bus),
            mult_fan: FanoutRegister::new(per_cols),
            shift_fan: FanoutRegister::new(per_cols),
            relu_fan: FanoutRegister::new(per_cols),
            int8_fan: FanoutRegister::new(per_cols),
            int8_valid: dffs(square),
            int8_addr: dffs(square),
            int8_byte: dffs(square),
            rd_addr_acts: FanoutRegister::new(per_rows),
            rd_addr_weights: FanoutRegister::new(per_cols),
            rd_addr_results: FanoutRegister::new(per_cols),
            read_select: ReadSelect::new(rows, cols, cols - rd_cols),
            rd_byte: Default::default(),
            _rd_rows: rd_rows,
            _rd_cols: rd_cols,
            _tree_cols: cols - rd_cols,
            _result_shifters: rd_cols.min(1),
            _act_word_rows: act_word_rows,
            _act_word_first: act_word_rows.min(1),
            _wt_word_cols: wt_word_cols,
            _wt_now_cols: cols - wt_word_cols,
            _rows: rows,
            _cols: cols,
            _tok_taps: tok_taps,
            _square: square,
        }
    }
}

impl Logic for Core {
    #[hdl_gen]
    fn update(&mut self) {
        // Controller.
        self.ctrl.clock.next = self.clock.val();
        self.ctrl.reset.next = self.reset.val();
        self.ctrl.start.next = self.start.val();
        self.ctrl.start_next.next = self.start_next.val();
        self.ctrl.m.next = self.m.val();
        self.ctrl.k_tiles.next = self.k_tiles.val();
        self.ctrl.n_tiles.next = self.n_tiles.val();
        self.ctrl.act_base.next = self.act_base.val();
        self.ctrl.wt_base.next = self.wt_base.val();
        self.ctrl.out_base.next = self.out_base.val();
        self.busy.next = self.ctrl.busy.val();
        self.busy_fan.clock.next = self.clock.val();
        self.busy_fan.d.next = self.ctrl.busy_next.val();
        self.wt_addr_fan.clock.next = self.clock.val();
        self.wt_addr_fan.d.next = self.ctrl.wt_addr_next.val();
        self.wt_read_fan.clock.next = self.clock.val();
        self.wt_read_fan.d.next = self.ctrl.wt_read_addr_next.val();
        self.wt_sel_fan.clock.next = self.clock.val();
        self.wt_sel_fan.d.next = self.ctrl.busy_next.val() | self.start_next.val();
        for _s in 0..self._code_staged {
            self.wt_read_fan.d.next = self.ctrl.wt_read2_addr_next.val();
            self.wt_sel_fan.d.next =
                self.ctrl.busy_next.val() | self.start_next.val() | self.start_next2.val();
        }
        self.mult_fan.clock.next = self.clock.val();
        self.mult_fan.d.next = self.mult.val();
        self.shift_fan.clock.next = self.clock.val();
        self.shift_fan.d.next = self.shift.val();
        self.relu_fan.clock.next = self.clock.val();
        self.relu_fan.d.next = self.relu.val();
        self.int8_fan.clock.next = self.clock.val();
        self.int8_fan.d.next = self.int8_out.val();
        self.rd_addr_acts.clock.next = self.clock.val();
        self.rd_addr_acts.d.next = self.host_rd_addr_next.val();
        self.rd_addr_weights.clock.next = self.clock.val();
        self.rd_addr_weights.d.next = self.host_rd_addr_next.val();
        self.rd_addr_results.clock.next = self.clock.val();
        self.rd_addr_results.d.next = self.host_rd_addr_next.val();
        self.done.next = self.ctrl.done.val();
        self.run_cycles.next = self.ctrl.run_cycles.val();
        self.array.clock.next = self.clock.val();
        for r in (self._tok_taps - 1)..self._tok_taps {
            // Activation feed: row i reads its bank i cycles after row 0, so row i's
            // activation enters the array one cycle after row i-1's.
            for i in 0..self._rows {
                self.act_banks[i].clock.next = self.clock.val();
                self.act_stage[i].clock.next = self.clock.val();
                self.feed_addr[i].clock.next = self.clock.val();
                self.feed_valid[i].clock.next = self.clock.val();
                self.feed_swap[i].clock.next = self.clock.val();
                self.feed_valid_d[i].clock.next = self.clock.val();
                self.feed_swap_d[i].clock.next = self.clock.val();
                self.feed_valid_d[i].d.next = self.feed_valid[i].q.val();
                self.feed_swap_d[i].d.next = self.feed_swap[i].q.val() & self.feed_valid[i].q.val();
                // The bank reads for the array when its feed is valid, else for the host
                // (which reads only between runs): the select is the row's own register,
                // not one `busy` fanning out to every bank's address bits.
                self.act_banks[i].read_address.next = self.rd_addr_acts.q[i / 8].val();
                if self.feed_valid[i].q.val() {
                    self.act_banks[i].read_address.next = self.feed_addr[i].q.val();
                }
                self.array.act_in[i].next = bits::<8>(0);
                if self.feed_valid_d[i].q.val() {
                    self.array.act_in[i].next = self.act_banks[i].read_data.val();
                }
                self.array.swap_in[i].next = self.feed_swap_d[i].q.val();
                // Host writes: stage bytes, commit whole words.
                self.act_stage[i].d.next = self.act_stage[i].q.val();
                if self.host_stage.val()
                    & self.host_wr_acts.val()
                    & self.host_wr_sel.val().get_bit(i)
                {
                    self.act_stage[i].d.next = self.host_wr_byte.val();
                }
                self.act_banks[i].write_address.next = self.host_wr_addr.val();
                self.act_banks[i].write_data.next = self.act_stage[i].q.val();
                self.act_banks[i].write_enable.next =
                    self.host_commit.val() & self.host_wr_acts.val() & !self.ctrl.busy.val();
            }
            // Registered activation reads: each bank reads a cycle earlier, row 0 from the
            // controller and row i from row i-1's feed registers, and the array takes its
            // word from `act_word`, at the cycle it took the bank's read data before.
            for i in 0..self._act_word_first {
                self.act_banks[i].read_address.next = self.rd_addr_acts.q[i / 8].val();
                if self.ctrl.act_valid.val() {
                    self.act_banks[i].read_address.next = self.ctrl.act_addr.val();
                }
            }
            for i in 1..self._act_word_rows {
                self.act_banks[i].read_address.next = self.rd_addr_acts.q[i / 8].val();
                if self.feed_valid[i - 1].q.val() {
                    self.act_banks[i].read_address.next = self.feed_addr[i - 1].q.val();
                }
            }
            for i in 0..self._act_word_rows {
                self.act_word[i].clock.next = self.clock.val();
                self.act_word[i].d.next = self.act_banks[i].read_data.val();
                self.array.act_in[i].next = bits::<8>(0);
                if self.feed_valid_d[i].q.val() {
                    self.array.act_in[i].next = self.act_word[i].q.val();
                }
            }
            self.feed_addr[0].d.next = self.ctrl.act_addr.val();
            self.feed_valid[0].d.next = self.ctrl.act_valid.val();
            self.feed_swap[0].d.next = self.ctrl.act_swap.val();
            self.array.load_next[0].next = self.ctrl.wt_valid.val() & self.ctrl.wt_start.val();
            for i in 1..self._rows {
                self.feed_addr[i].d.next = self.feed_addr[i - 1].q.val();
                self.feed_valid[i].d.next = self.feed_valid[i - 1].q.val();
                self.feed_swap[i].d.next = self.feed_swap[i - 1].q.val();
                self.load_token[i - 1].clock.next = self.clock.val();
                self.load_token[i - 1].d.next = self.array.load_next[i - 1].val();
                self.array.load_next[i].next = self.load_token[i - 1].q.val();
            }
            // Accumulator tokens wait `_tok_taps` cycles (see `new`).
            for s in 0..self._tok_taps {
                self.tok_valid[s].clock.next = self.clock.val();
                self.tok_first[s].clock.next = self.clock.val();
                self.tok_last[s].clock.next = self.clock.val();
                self.tok_row[s].clock.next = self.clock.val();
                self.tok_out[s].clock.next = self.clock.val();
            }
            self.tok_valid[0].d.next = self.ctrl.act_valid.val();
            self.tok_first[0].d.next = self.ctrl.tok_first.val();
            self.tok_last[0].d.next = self.ctrl.tok_last.val();
            self.tok_row[0].d.next = self.ctrl.tok_row.val();
            self.tok_out[0].d.next = self.ctrl.tok_out.val();
            for s in 1..self._tok_taps {
                self.tok_valid[s].d.next = self.tok_valid[s - 1].q.val();
                self.tok_first[s].d.next = self.tok_first[s - 1].q.val();
                self.tok_last[s].d.next = self.tok_last[s - 1].q.val();
                self.tok_row[s].d.next = self.tok_row[s - 1].q.val();
                self.tok_out[s].d.next = self.tok_out[s - 1].q.val();
            }
            self.lanes[0].tok_valid_in.next = self.tok_valid[r].q.val();
            self.lanes[0].tok_first_in.next = self.tok_first[r].q.val();
            self.lanes[0].tok_last_in.next = self.tok_last[r].q.val();
            self.lanes[0].tok_row_in.next = self.tok_row[r].q.val();
            self.lanes[0].tok_out_in.next = self.tok_out[r].q.val();
        }
        for j in 0..self._cols {
            // Weights: one row per cycle onto the code bus.
            self.weight_rams[j].clock.next = self.clock.val();
            self.weight_stage[j].clock.next = self.clock.val();
            self.weight_stage[j].d.next = self.weight_stage[j].q.val();
            if self.host_stage.val()
                & !self.host_wr_acts.val()
                & self.host_wr_sel.val().get_bit(j >> 2)
            {
                self.weight_stage[j].d.next = self.host_wr_byte.val().get_bits::<2>((j & 3) << 1);
            }
            self.weight_rams[j].write_address.next = self.host_wr_addr.val();
            self.weight_rams[j].write_data.next = self.weight_stage[j].q.val();
            self.weight_rams[j].write_enable.next =
                self.host_commit.val() & !self.host_wr_acts.val() & !self.ctrl.busy.val();
            // Accumulate, and store int32 results straight from the lane.
            self.lanes[j].clock.next = self.clock.val();
            self.lanes[j].psum_in.next = self.array.psum_out[j].val();
            self.result_rams[j].clock.next = self.clock.val();
            self.result_rams[j].read_address.next = self.rd_addr_results.q[j / 8].val();
            self.result_rams[j].write_address.next = self.lanes[j].result_addr.val();
            self.result_rams[j].write_data.next = self.lanes[j].result.val();
            self.result_rams[j].write_enable.next =
                self.lanes[j].result_valid.val() & !self.int8_fan.q[j / 8].val();
        }
        // The weight RAMs read for the array during a run (from copies of the controller's
        // `busy` and `wt_addr`, each driving `LOADS_PER_COPY` RAMs: `j / 8`, as hdl_gen takes
        // no constants in an index), else for the host.
        for j in 0..self._wt_now_cols {
            self.weight_rams[j].read_address.next = self.rd_addr_weights.q[j / 8].val();
            if self.busy_fan.q[j / 8].val() {
                self.weight_rams[j].read_address.next = self.wt_addr_fan.q[j / 8].val();
            }
            self.array.code_in[j].next = self.weight_rams[j].read_data.val();
        }
        // Registered weight reads: each RAM reads a cycle ahead, from the start cycle on, and
        // the array takes its word from `wt_word`, at the cycle it took the RAM's read data
        // before.
        for j in 0..self._wt_word_cols {
            self.wt_word[j].clock.next = self.clock.val();
            self.wt_word[j].d.next = self.weight_rams[j].read_data.val();
            self.weight_rams[j].read_address.next = self.rd_addr_weights.q[j / 8].val();
            if self.wt_sel_fan.q[j / 8].val() {
                self.weight_rams[j].read_address.next = self.wt_read_fan.q[j / 8].val();
            }
            self.array.code_in[j].next = self.wt_word[j].q.val();
        }
        for j in 1..self._cols {
            self.lanes[j].tok_valid_in.next = self.lanes[j - 1].tok_valid_out.val();
            self.lanes[j].tok_first_in.next = self.lanes[j - 1].tok_first_out.val();
            self.lanes[j].tok_last_in.next = self.lanes[j - 1].tok_last_out.val();
            self.lanes[j].tok_row_in.next = self.lanes[j - 1].tok_row_out.val();
            self.lanes[j].tok_out_in.next = self.lanes[j - 1].tok_out_out.val();
        }
        // int8 results go to the activation bank of the same index (square arrays only),
        // from the lane's requantizer through a register: a bank writes a requantizer's byte
        // three cycles after the result RAM would have taken its int32, and the run's last
        // one lands at the end of its last cycle, `done` (the int32 results land three
        // cycles before it; docs/architecture.md, "Cycle count"). The host's writes (between runs) are blocked during a run by their
        // enable above, and yield to this one.
        for j in 0..self._square {
            self.requants[j].clock.next = self.clock.val();
            self.requants[j].in_valid.next = self.lanes[j].result_valid.val();
            self.requants[j].in_low.next = self.lanes[j].result.val().get_bits::<16>(0);
            self.requants[j].in_high.next = self.lanes[j].result_high.val();
            self.requants[j].in_carry.next = self.lanes[j].result_carry.val();
            self.requants[j].in_addr.next = self.lanes[j].result_addr.val();
            self.requants[j].mult.next = self.mult_fan.q[j / 8].val();
            self.requants[j].shift.next = self.shift_fan.q[j / 8].val();
            self.requants[j].relu.next = self.relu_fan.q[j / 8].val();
            self.int8_valid[j].clock.next = self.clock.val();
            self.int8_addr[j].clock.next = self.clock.val();
            self.int8_byte[j].clock.next = self.clock.val();
            self.int8_valid[j].d.next =
                self.requants[j].out_valid.val() & self.int8_fan.q[j / 8].val();
            self.int8_addr[j].d.next = self.requants[j].out_addr.val();
            self.int8_byte[j].d.next = self.requants[j].out_byte.val();
            if self.int8_valid[j].q.val() {
                self.act_banks[j].write_address.next = self.int8_addr[j].q.val();
                self.act_banks[j].write_data.next = self.int8_byte[j].q.val();
                self.act_banks[j].write_enable.next = true;
            }
        }
        // Host read: one byte of the word the memories read, registered on a load.
        self.read_select.weight_pos.next = self.host_rd_weight_pos.val();
        self.read_select.act_pos.next = self.host_rd_act_pos.val();
        for k in 0..4 {
            self.read_select.result_pos[k].next = self.host_rd_result_pos[k].val();
        }
        for j in 0..self._cols {
            self.read_select.codes[j].next = self.weight_rams[j].read_data.val();
        }
        for j in 0..self._tree_cols {
            self.read_select.results[j].next = self.result_rams[j].read_data.val();
        }
        for i in 0..self._rows {
            self.read_select.acts[i].next = self.act_banks[i].read_data.val();
        }
        // Registered host reads: the multiplexer and the result shifter start at flip-flops,
        // not at the RAMs' late read data (the link waits a cycle more for each word). Without
        // them the shifter is a single idle lane that nothing reads (synthesis drops it).
        self.result_shifter.words[0].next = bits::<ACC_BITS>(0);
        for j in 0..self._rd_cols {
            self.rd_codes[j].clock.next = self.clock.val();
            self.rd_results[j].clock.next = self.clock.val();
            self.rd_codes[j].d.next = self.weight_rams[j].read_data.val();
            self.rd_results[j].d.next = self.result_rams[j].read_data.val();
            self.read_select.codes[j].next = self.rd_codes[j].q.val();
            self.result_shifter.words[j].next = self.rd_results[j].q.val();
        }
        for i in 0..self._rd_rows {
            self.rd_acts[i].clock.next = self.clock.val();
            self.rd_acts[i].d.next = self.act_banks[i].read_data.val();
            self.read_select.acts[i].next = self.rd_acts[i].q.val();
        }
        self.rd_byte.clock.next = self.clock.val();
        self.rd_byte.d.next = self.rd_byte.q.val();
        if self.host_rd_load.val() {
            self.rd_byte.d.next = self.read_select.picked.val();
        }
        self.result_shifter.clock.next = self.clock.val();
        self.result_shifter.load.next = self.host_rd_load.val() & self.host_rd_results.val();
        self.result_shifter.first.next = self.host_rd_first.val();
        for _s in 0..self._result_shifters {
            if self.host_rd_load.val() & self.host_rd_results.val() {
                self.rd_byte.d.next = self.result_shifter.next_byte.val();
            }
        }
        self.host_rd_byte.next = self.rd_byte.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::{settle, tick};
    use crate::protocol::encode_weight;

    /// Stages `bytes` (one per lane of the word) and commits them at `addr`.
    fn host_write(core: &mut Core, acts: bool, addr: u64, bytes: &[u8]) {
        core.host_wr_acts.next = acts;
        core.host_wr_addr.next = addr.into();
        for (k, &b) in bytes.iter().enumerate() {
            core.host_stage.next = true;
            core.host_wr_sel.next = (1u64 << k).into();
            core.host_wr_byte.next = (b as u64).into();
            tick(core, |c| &mut c.clock);
        }
        core.host_stage.next = false;
        core.host_commit.next = true;
        tick(core, |c| &mut c.clock);
        core.host_commit.next = false;
    }

    #[test]
    fn every_result_is_in_memory_at_the_end_of_the_runs_last_cycle() {
        // A 4x4 layer of 6 rows, 2 K-tiles and 2 N-tiles, weights of every value: output
        // (m, n) is the dot product of row m's 8 activations with column n's weights. The int8 bytes reach activation bank j through the
        // requantizer and a register, after an int32 would reach the result RAM; both must be in memory
        // when the cycle that raises `done` (the run's last, `Config::run_cycles`) ends.
        for (int8, registered, staged) in [
            (false, false, false),
            (true, false, false),
            (false, true, false),
            (true, true, false),
            (false, true, true),
            (true, true, true),
        ] {
            let cfg = Config {
                act_depth: 64,
                weight_depth: 64,
                result_depth: 64,
                max_m: 16,
                registered_acc_reads: registered,
                registered_host_reads: registered,
                registered_act_reads: registered,
                registered_weight_reads: registered,
                registered_code_bus: staged,
                ..Config::new(4, 4).unwrap()
            };
            let (m, kt, nt) = (6usize, 2usize, 2usize);
            let mut core = Core::new(&cfg);
            core.connect_all();
            let act = |r: usize, k: usize| ((r * 8 + k) % 11) as i8 - 3;
            for r in 0..m {
                for t in 0..kt {
                    let word: Vec<u8> = (0..4).map(|i| act(r, t * 4 + i) as u8).collect();
                    host_write(&mut core, true, (r * kt + t) as u64, &word);
                }
            }
            // Weight word `w` (row `w % 4` of tile `w / 4`), lane `j`, at `wt_base + w` (not
            // 0, where the host's idle read address points).
            let wt_base = 5;
            let wt = |w: usize, j: usize| ((w + 2 * j + w / 4) % 3) as i8 - 1;
            for w in 0..kt * nt * 4 {
                let codes =
                    (0..4).fold(0u8, |b, j| b | encode_weight(wt(w, j)).unwrap() << (2 * j));
                host_write(&mut core, false, (wt_base + w) as u64, &[codes]);
            }
            let out_base = 32;
            core.m.next = (m as u64).into();
            core.k_tiles.next = (kt as u64).into();
            core.n_tiles.next = (nt as u64).into();
            core.act_base.next = 0.into();
            core.wt_base.next = (wt_base as u64).into();
            core.out_base.next = out_base.into();
            core.mult.next = 1.into();
            core.shift.next = 0.into();
            core.int8_out.next = int8;
            core.relu.next = false;
            // The layer two cycles before the start, as the host link sets it.
            tick(&mut core, |c| &mut c.clock);
            core.start_next2.next = true;
            settle(&mut core);
            tick(&mut core, |c| &mut c.clock);
            core.start_next2.next = false;
            core.start_next.next = true;
            settle(&mut core);
            tick(&mut core, |c| &mut c.clock);
            core.start_next.next = false;
            core.start.next = true;
            let mut cycles = 0u64;
            loop {
                settle(&mut core);
                let done = core.done.val();
                tick(&mut core, |c| &mut c.clock);
                core.start.next = false;
                cycles += 1;
                if done {
                    break;
                }
                assert!(cycles < 1000, "no done");
            }
            assert_eq!(
                cycles,
                cfg.run_cycles(m, kt, nt),
                "int8 {int8}, registered {registered}, staged {staged}"
            );
            for r in 0..m {
                for n in 0..nt {
                    let word = out_base as usize + r * nt + n;
                    for j in 0..4 {
                        let sum: i32 = (0..kt * 4)
                            .map(|k| act(r, k) as i32 * wt((n * kt + k / 4) * 4 + k % 4, j) as i32)
                            .sum();
                        if int8 {
                            let got = core.act_banks[j].word(word).index() as u8 as i8;
                            assert_eq!(
                                got as i32,
                                sum.clamp(-128, 127),
                                "row {r} n-tile {n} lane {j}"
                            );
                        } else {
                            let got = core.result_rams[j].word(word).index() as u32 as i32;
                            assert_eq!(
                                got, sum,
                                "row {r} n-tile {n} lane {j}, registered {registered}, staged {staged}"
                            );
                        }
                    }
                }
            }
        }
    }
}
