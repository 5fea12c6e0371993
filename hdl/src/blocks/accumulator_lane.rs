//! `AccumulatorLane`: the accumulator under one array column.
//!
//! A token (row index, first/last K-tile, output address) arrives one cycle before the
//! column's partial sum for that row, so the lane reads the running sum from its RAM in time
//! to add the partial sum the next cycle. The first K-tile starts from zero; the last one
//! sends the finished int32 on to the requantizer instead of writing it back. The token moves
//! on to the next lane one cycle later, matching the array's column skew.
//!
//! **Two halves, one cycle apart.** The running sum lives in two 16-bit RAMs. The cycle after
//! the token adds the partial sum to the low half, writes it back, and computes both possible
//! high halves (without and with the low half's carry) into registers; the cycle after that
//! picks one with the registered carry and writes the high RAM. No cycle holds a carry that
//! crosses from one RAM's adder to the other RAM's write port (the two block RAMs of a lane
//! can sit far apart on a full chip). The finished sum leaves on the same cycle as before:
//! its high half is that one select after registers. The high RAM's write lands two cycles
//! after the token, so the lane needs a row revisited at least [`MIN_REVISIT_CYCLES`] cycles
//! apart; the controller's schedule revisits a row once per tile period
//! `max(m, rows, cols)`, at least 4 cycles on every array of the menu.

use super::lane_ram::LaneRam;
use crate::config::{ACC_BITS, ARRAY_MENU, PSUM_BITS};
use rust_hdl::prelude::*;

// The sign-extension below names bit 15 of the partial sum.
const _: () = assert!(PSUM_BITS == 16);
// The two RAM halves.
const _: () = assert!(ACC_BITS == 32);

/// Fewest cycles between two tokens of the same row that the lane sums correctly.
pub const MIN_REVISIT_CYCLES: usize = 3;

// Every array of the menu revisits a row at least `min(rows, cols)` cycles apart.
const _: () = {
    let mut i = 0;
    while i < ARRAY_MENU.len() {
        assert!(ARRAY_MENU[i].0 >= MIN_REVISIT_CYCLES && ARRAY_MENU[i].1 >= MIN_REVISIT_CYCLES);
        i += 1;
    }
};

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
    /// A finished result is on `result` this cycle (two cycles after its token).
    pub result_valid: Signal<Out, bool>,
    /// The finished int32 sum.
    pub result: Signal<Out, Bits<ACC_BITS>>,
    /// Its output word address.
    pub result_addr: Signal<Out, Bits<16>>,
    ram_low: LaneRam<Bits<16>>,
    ram_high: LaneRam<Bits<16>>,
    q_valid: DFF<bool>,
    q_first: DFF<bool>,
    // q_first again for the high halves (a separate flip-flop halves q_first's fan-out; its
    // input differs only when no token is valid, so synthesis does not merge the two).
    q_first_high: DFF<bool>,
    q_last: DFF<bool>,
    q_row: DFF<Bits<16>>,
    q_out: DFF<Bits<16>>,
    // The high half's stage: both candidate sums, the low half's carry, where to write.
    h_sum: DFF<Bits<16>>,
    h_sum_carry: DFF<Bits<16>>,
    h_carry: DFF<bool>,
    h_row: DFF<Bits<16>>,
    h_write: DFF<bool>,
    o_valid: DFF<bool>,
    o_low: DFF<Bits<16>>,
    o_addr: DFF<Bits<16>>,
    acc_high: Signal<Local, Bits<16>>,
    high_ext: Signal<Local, Bits<16>>,
    low_sum: Signal<Local, Bits<17>>,
    low_out: Signal<Local, Bits<16>>,
    high_out: Signal<Local, Bits<16>>,
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
            ram_low: LaneRam::new(depth),
            ram_high: LaneRam::new(depth),
            q_valid: Default::default(),
            q_first: Default::default(),
            q_first_high: Default::default(),
            q_last: Default::default(),
            q_row: Default::default(),
            q_out: Default::default(),
            h_sum: Default::default(),
            h_sum_carry: Default::default(),
            h_carry: Default::default(),
            h_row: Default::default(),
            h_write: Default::default(),
            o_valid: Default::default(),
            o_low: Default::default(),
            o_addr: Default::default(),
            acc_high: Default::default(),
            high_ext: Default::default(),
            low_sum: Default::default(),
            low_out: Default::default(),
            high_out: Default::default(),
        }
    }
}

impl Logic for AccumulatorLane {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            q_valid,
            q_first,
            q_first_high,
            q_last,
            q_row,
            q_out,
            h_sum,
            h_sum_carry,
            h_carry,
            h_row,
            h_write,
            o_valid,
            o_low,
            o_addr
        );
        self.ram_low.clock.next = self.clock.val();
        self.ram_high.clock.next = self.clock.val();
        self.ram_low.read_address.next = self.tok_row_in.val();
        self.ram_high.read_address.next = self.tok_row_in.val();
        self.q_valid.d.next = self.tok_valid_in.val();
        self.q_first.d.next = self.tok_first_in.val();
        self.q_first_high.d.next = self.tok_first_in.val() & self.tok_valid_in.val();
        self.q_last.d.next = self.tok_last_in.val();
        self.q_row.d.next = self.tok_row_in.val();
        self.q_out.d.next = self.tok_out_in.val();
        // Low half: the RAM word goes straight into the carry chain; the first K-tile takes
        // the partial sum instead, with the carry masked off.
        self.low_sum.next = bit_cast::<17, 16>(self.ram_low.read_data.val())
            + bit_cast::<17, PSUM_BITS>(self.psum_in.val());
        self.low_out.next = self.low_sum.val().get_bits::<16>(0);
        if self.q_first.q.val() {
            self.low_out.next = self.psum_in.val();
        }
        self.ram_low.write_address.next = self.q_row.q.val();
        self.ram_low.write_data.next = self.low_out.val();
        self.ram_low.write_enable.next = self.q_valid.q.val() & !self.q_last.q.val();
        // High half, both ways: the word (zero on the first K-tile) plus the partial sum's
        // sign, without and with the low half's carry.
        self.acc_high.next = self.ram_high.read_data.val();
        if self.q_first_high.q.val() {
            self.acc_high.next = bits::<16>(0);
        }
        self.high_ext.next = bits::<16>(0);
        if self.psum_in.val().get_bit(15) {
            self.high_ext.next = bits::<16>(0xFFFF);
        }
        self.h_sum.d.next = self.acc_high.val() + self.high_ext.val();
        self.h_sum_carry.d.next = self.acc_high.val() + self.high_ext.val() + 1;
        self.h_carry.d.next = self.low_sum.val().get_bit(16) & !self.q_first.q.val();
        self.h_row.d.next = self.q_row.q.val();
        self.h_write.d.next = self.q_valid.q.val() & !self.q_last.q.val();
        self.o_valid.d.next = self.q_valid.q.val() & self.q_last.q.val();
        self.o_low.d.next = self.low_out.val();
        self.o_addr.d.next = self.q_out.q.val();
        // The next cycle: the carry picks the high half.
        self.high_out.next = self.h_sum.q.val();
        if self.h_carry.q.val() {
            self.high_out.next = self.h_sum_carry.q.val();
        }
        self.ram_high.write_address.next = self.h_row.q.val();
        self.ram_high.write_data.next = self.high_out.val();
        self.ram_high.write_enable.next = self.h_write.q.val();
        self.tok_valid_out.next = self.q_valid.q.val();
        self.tok_first_out.next = self.q_first.q.val();
        self.tok_last_out.next = self.q_last.q.val();
        self.tok_row_out.next = self.q_row.q.val();
        self.tok_out_out.next = self.q_out.q.val();
        self.result_valid.next = self.o_valid.q.val();
        self.result.next = (bit_cast::<ACC_BITS, 16>(self.high_out.val()) << 16)
            | bit_cast::<ACC_BITS, 16>(self.o_low.q.val());
        self.result_addr.next = self.o_addr.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::tick;
    use proptest::prelude::*;

    /// Rows per K-tile: each row comes back after exactly the fewest cycles the lane allows.
    const ROWS: usize = 3;
    const _: () = assert!(ROWS == MIN_REVISIT_CYCLES);

    /// A lane whose RAM starts all zero.
    fn fresh_lane() -> AccumulatorLane {
        let mut lane = AccumulatorLane::new(ROWS);
        lane.connect_all();
        lane
    }

    /// Runs `k_tiles` K-tiles of `ROWS` rows through a fresh lane.
    fn run(k_tiles: usize, psums: &[i16]) -> Vec<(u16, i32)> {
        run_on(&mut fresh_lane(), k_tiles, psums)
    }

    /// Runs `k_tiles` K-tiles of `ROWS` rows through `lane`, one token per cycle and each
    /// partial sum the cycle after its token, as the core drives it; returns the results in
    /// the order they leave.
    fn run_on(lane: &mut AccumulatorLane, k_tiles: usize, psums: &[i16]) -> Vec<(u16, i32)> {
        run_rows(lane, ROWS, k_tiles, psums)
    }

    /// [`run_on`] with `rows` rows per K-tile.
    fn run_rows(
        lane: &mut AccumulatorLane,
        rows: usize,
        k_tiles: usize,
        psums: &[i16],
    ) -> Vec<(u16, i32)> {
        let mut out = vec![];
        let steps = k_tiles * rows;
        for t in 0..steps + 2 {
            lane.tok_valid_in.next = t < steps;
            lane.tok_first_in.next = t < rows;
            lane.tok_last_in.next = t + rows >= steps;
            lane.tok_row_in.next = ((t % rows) as u64).into();
            lane.tok_out_in.next = ((100 + t % rows) as u64).into();
            let p = t
                .checked_sub(1)
                .and_then(|i| psums.get(i))
                .copied()
                .unwrap_or(0);
            lane.psum_in.next = (p as u16 as u64).into();
            tick(lane, |l| &mut l.clock);
            if lane.result_valid.val() {
                out.push((
                    lane.result_addr.val().index() as u16,
                    lane.result.val().index() as u32 as i32,
                ));
            }
        }
        out
    }

    fn expected(k_tiles: usize, psums: &[i16]) -> Vec<(u16, i32)> {
        (0..ROWS)
            .map(|r| {
                let sum =
                    (0..k_tiles).fold(0i32, |s, k| s.wrapping_add(psums[k * ROWS + r] as i32));
                (100 + r as u16, sum)
            })
            .collect()
    }

    fn psum() -> impl Strategy<Value = i16> {
        prop_oneof![
            Just(i16::MIN),
            Just(i16::MAX),
            Just(-1i16),
            Just(1i16),
            any::<i16>()
        ]
    }

    #[test]
    fn sums_cross_the_half_word_both_ways() {
        // 0x7FFF + 0x7FFF + 2 = 0x10000 carries out of the low half; adding -1 borrows back.
        let k = 4;
        let mut psums = vec![0i16; k * ROWS];
        for r in 0..ROWS {
            psums[r] = i16::MAX;
            psums[ROWS + r] = i16::MAX;
            psums[2 * ROWS + r] = 2;
            psums[3 * ROWS + r] = [-1, i16::MIN, 0][r];
        }
        assert_eq!(run(k, &psums), expected(k, &psums));
    }

    #[test]
    fn rows_back_after_the_fewest_cycles_never_read_a_word_being_written() {
        let mut lane = fresh_lane();
        let psums: Vec<i16> = (0..5 * ROWS)
            .map(|i| [i16::MAX, -3, i16::MIN][i % 3])
            .collect();
        assert_eq!(run_on(&mut lane, 5, &psums), expected(5, &psums));
        assert_eq!(
            (lane.ram_low.collisions(), lane.ram_high.collisions()),
            (0, 0)
        );
    }

    #[test]
    fn rows_back_a_cycle_sooner_would_read_a_word_being_written() {
        // The check above can fail: with a row back every MIN_REVISIT_CYCLES - 1 cycles, the
        // high half's write lands on the edge of the row's next read.
        let mut lane = fresh_lane();
        let rows = MIN_REVISIT_CYCLES - 1;
        run_rows(&mut lane, rows, 3, &vec![1i16; 3 * rows]);
        assert_eq!(lane.ram_low.collisions(), 0);
        assert!(lane.ram_high.collisions() > 0);
    }

    #[test]
    fn each_run_starts_from_zero_not_from_the_last() {
        // The second run's first K-tile must ignore the sums the first run left in the RAM,
        // including a left-over value whose low half would carry into the high half.
        let mut lane = fresh_lane();
        let first = vec![i16::MAX; 3 * ROWS];
        assert_eq!(run_on(&mut lane, 3, &first), expected(3, &first));
        for k in 1..4 {
            let second: Vec<i16> = (0..k * ROWS).map(|i| [-1, i16::MIN, 5][i % 3]).collect();
            assert_eq!(run_on(&mut lane, k, &second), expected(k, &second));
        }
    }

    proptest! {
        #[test]
        fn back_to_back_runs_accumulate_like_wrapping_i32(
            (k1, p1, k2, p2) in (1usize..5, 1usize..5).prop_flat_map(|(a, b)| {
                (
                    Just(a),
                    proptest::collection::vec(psum(), a * ROWS),
                    Just(b),
                    proptest::collection::vec(psum(), b * ROWS),
                )
            })
        ) {
            let mut lane = fresh_lane();
            prop_assert_eq!(run_on(&mut lane, k1, &p1), expected(k1, &p1));
            prop_assert_eq!(run_on(&mut lane, k2, &p2), expected(k2, &p2));
        }

        #[test]
        fn accumulates_like_wrapping_i32(
            (k_tiles, psums) in (1usize..8).prop_flat_map(|k| {
                (Just(k), proptest::collection::vec(psum(), k * ROWS))
            })
        ) {
            prop_assert_eq!(run(k_tiles, &psums), expected(k_tiles, &psums));
        }
    }
}
