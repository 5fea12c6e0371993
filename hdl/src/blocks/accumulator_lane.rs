//! `AccumulatorLane`: the accumulator under one array column.
//!
//! A token (row index, first/last K-tile, output address) arrives one cycle before the
//! column's partial sum for that row, so the lane reads the running sum from its RAM in time
//! to add the partial sum the next cycle. The first K-tile starts from zero; the last one
//! sends the finished int32 on to the requantizer instead of writing it back. The token moves
//! on to the next lane one cycle later, matching the array's column skew.

use super::lane_ram::LaneRam;
use crate::config::{ACC_BITS, PSUM_BITS};
use rust_hdl::prelude::*;

// The sign-extension below names bit 15 of the partial sum.
const _: () = assert!(PSUM_BITS == 16);

/// One column's accumulator.
#[derive(LogicBlock)]
pub struct AccumulatorLane {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Token valid.
    pub tok_valid_in: Signal<In, bool>,
    /// Token: first K-tile (start from zero).
    pub tok_first_in: Signal<In, bool>,
    /// Token: last K-tile (emit the result).
    pub tok_last_in: Signal<In, bool>,
    /// Token: activation row (accumulator address).
    pub tok_row_in: Signal<In, Bits<16>>,
    /// Token: output word address.
    pub tok_out_in: Signal<In, Bits<16>>,
    /// Partial sum from the bottom of the column, one cycle after its token.
    pub psum_in: Signal<In, Bits<PSUM_BITS>>,
    /// Token passed to the next lane (one cycle later).
    pub tok_valid_out: Signal<Out, bool>,
    /// See `tok_first_in`.
    pub tok_first_out: Signal<Out, bool>,
    /// See `tok_last_in`.
    pub tok_last_out: Signal<Out, bool>,
    /// See `tok_row_in`.
    pub tok_row_out: Signal<Out, Bits<16>>,
    /// See `tok_out_in`.
    pub tok_out_out: Signal<Out, Bits<16>>,
    /// A finished result is on `result` this cycle.
    pub result_valid: Signal<Out, bool>,
    /// The finished int32 sum.
    pub result: Signal<Out, Bits<ACC_BITS>>,
    /// Its output word address.
    pub result_addr: Signal<Out, Bits<16>>,
    ram: LaneRam<Bits<ACC_BITS>>,
    q_valid: DFF<bool>,
    q_first: DFF<bool>,
    q_last: DFF<bool>,
    q_row: DFF<Bits<16>>,
    q_out: DFF<Bits<16>>,
    o_valid: DFF<bool>,
    o_value: DFF<Bits<ACC_BITS>>,
    o_addr: DFF<Bits<16>>,
    extended: Signal<Local, Bits<ACC_BITS>>,
    sum: Signal<Local, Bits<ACC_BITS>>,
}

impl AccumulatorLane {
    /// A lane holding `depth` running sums (the largest M of a run).
    pub fn new(depth: usize) -> Self {
        Self {
            clock: Default::default(),
            tok_valid_in: Default::default(),
            tok_first_in: Default::default(),
            tok_last_in: Default::default(),
            tok_row_in: Default::default(),
            tok_out_in: Default::default(),
            psum_in: Default::default(),
            tok_valid_out: Default::default(),
            tok_first_out: Default::default(),
            tok_last_out: Default::default(),
            tok_row_out: Default::default(),
            tok_out_out: Default::default(),
            result_valid: Default::default(),
            result: Default::default(),
            result_addr: Default::default(),
            ram: LaneRam::new(depth),
            q_valid: Default::default(),
            q_first: Default::default(),
            q_last: Default::default(),
            q_row: Default::default(),
            q_out: Default::default(),
            o_valid: Default::default(),
            o_value: Default::default(),
            o_addr: Default::default(),
            extended: Default::default(),
            sum: Default::default(),
        }
    }
}

impl Logic for AccumulatorLane {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, q_valid, q_first, q_last, q_row, q_out, o_valid, o_value, o_addr);
        self.ram.clock.next = self.clock.val();
        self.ram.read_address.next = self.tok_row_in.val();
        self.q_valid.d.next = self.tok_valid_in.val();
        self.q_first.d.next = self.tok_first_in.val();
        self.q_last.d.next = self.tok_last_in.val();
        self.q_row.d.next = self.tok_row_in.val();
        self.q_out.d.next = self.tok_out_in.val();
        self.extended.next = bit_cast::<ACC_BITS, PSUM_BITS>(self.psum_in.val());
        if self.psum_in.val().get_bit(15) {
            self.extended.next = bit_cast::<ACC_BITS, PSUM_BITS>(self.psum_in.val())
                | bits::<ACC_BITS>(0xFFFF0000u64);
        }
        self.sum.next = self.ram.read_data.val() + self.extended.val();
        if self.q_first.q.val() {
            self.sum.next = self.extended.val();
        }
        self.ram.write_address.next = self.q_row.q.val();
        self.ram.write_data.next = self.sum.val();
        self.ram.write_enable.next = self.q_valid.q.val() & !self.q_last.q.val();
        self.o_valid.d.next = self.q_valid.q.val() & self.q_last.q.val();
        self.o_value.d.next = self.sum.val();
        self.o_addr.d.next = self.q_out.q.val();
        self.tok_valid_out.next = self.q_valid.q.val();
        self.tok_first_out.next = self.q_first.q.val();
        self.tok_last_out.next = self.q_last.q.val();
        self.tok_row_out.next = self.q_row.q.val();
        self.tok_out_out.next = self.q_out.q.val();
        self.result_valid.next = self.o_valid.q.val();
        self.result.next = self.o_value.q.val();
        self.result_addr.next = self.o_addr.q.val();
    }
}
