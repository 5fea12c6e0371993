//! `ReadSelect`: one byte of a memory word, for the host link's READ replies.
//!
//! The word is what every lane RAM of one memory reads at the same address: a weight row (one
//! 2-bit code per column, four codes to a byte), an activation word (one int8 per row) or a
//! result word (one int32 per column). The byte is named by one-hot positions, one vector per
//! memory, of which only the READ's memory has a bit set: a bit per byte of a weight or
//! activation word, and for results a bit per lane in each of four vectors (one per byte of a
//! lane). The byte is then the OR of `position & input` over every input byte, a balanced
//! AND-OR tree: three LUT4 levels for the iCEBreaker's 25 input bytes, where decoding a
//! memory number, a lane select and a byte offset took six. (Several bits set would give
//! the OR of their bytes.) Purely combinational: the core registers what it selects.

use crate::config::ACC_BITS;
use rust_hdl::prelude::*;

/// Memory id of packed weights in READ and WRITE requests.
pub const MEM_WEIGHTS: u64 = 0;
/// Memory id of activations.
pub const MEM_ACTS: u64 = 1;
/// Memory id of int32 results.
pub const MEM_RESULTS: u64 = 2;

/// The byte multiplexer of host reads.
#[derive(LogicBlock)]
pub struct ReadSelect {
    /// Weight codes of the word, one per column.
    pub codes: Vec<Signal<In, Bits<2>>>,
    /// Activations of the word, one per row.
    pub acts: Vec<Signal<In, Bits<8>>>,
    /// Results of the word, one per column (none when a [`ResultShifter`] sends them).
    ///
    /// [`ResultShifter`]: super::result_shifter::ResultShifter
    pub results: Vec<Signal<In, Bits<ACC_BITS>>>,
    /// One-hot byte of the weight word (bit `b`: columns `4b..4b+3`).
    pub weight_pos: Signal<In, Bits<32>>,
    /// One-hot byte of the activation word (bit `i`: row `i`).
    pub act_pos: Signal<In, Bits<32>>,
    /// One-hot lane of the result word, one vector per byte of a lane (entry `k`, bit `j`:
    /// byte `k` of lane `j`).
    pub result_pos: Vec<Signal<In, Bits<32>>>,
    /// The selected byte (zero when nothing is selected; not `byte`, a SystemVerilog keyword).
    pub picked: Signal<Out, Bits<8>>,
    code0: Signal<Local, Bits<2>>,
    code1: Signal<Local, Bits<2>>,
    code2: Signal<Local, Bits<2>>,
    code3: Signal<Local, Bits<2>>,
    weight_byte: Signal<Local, Bits<8>>,
    act_byte: Signal<Local, Bits<8>>,
    result_byte0: Signal<Local, Bits<8>>,
    result_byte1: Signal<Local, Bits<8>>,
    result_byte2: Signal<Local, Bits<8>>,
    result_byte3: Signal<Local, Bits<8>>,
    _rows: usize,
    _result_lanes: usize,
    _weight_bytes: usize,
}

impl ReadSelect {
    /// The selector for an array of `rows x cols` (at most 32 x 32, `cols` a multiple of 4:
    /// the position vectors are 32 bits wide and a weight byte holds four columns), with
    /// `results` lane inputs: `cols`, or 0 where a result shifter sends result bytes.
    pub fn new(rows: usize, cols: usize, results: usize) -> Self {
        assert!((1..=32).contains(&rows), "rows = {rows}");
        assert!(
            (4..=32).contains(&cols) && cols.is_multiple_of(4),
            "cols = {cols} must be a multiple of 4 in 4..=32"
        );
        assert!(
            results == cols || results == 0,
            "results = {results} must be cols ({cols}) or 0"
        );
        Self {
            codes: (0..cols).map(|_| Default::default()).collect(),
            acts: (0..rows).map(|_| Default::default()).collect(),
            results: (0..results).map(|_| Default::default()).collect(),
            weight_pos: Default::default(),
            act_pos: Default::default(),
            result_pos: (0..4).map(|_| Default::default()).collect(),
            picked: Default::default(),
            code0: Default::default(),
            code1: Default::default(),
            code2: Default::default(),
            code3: Default::default(),
            weight_byte: Default::default(),
            act_byte: Default::default(),
            result_byte0: Default::default(),
            result_byte1: Default::default(),
            result_byte2: Default::default(),
            result_byte3: Default::default(),
            _rows: rows,
            _result_lanes: results,
            _weight_bytes: cols / 4,
        }
    }
}

impl Logic for ReadSelect {
    #[hdl_gen]
    fn update(&mut self) {
        // Calls cannot take loop-indexed arguments, hence the locals.
        self.weight_byte.next = bits::<8>(0);
        self.code0.next = bits::<2>(0);
        self.code1.next = bits::<2>(0);
        self.code2.next = bits::<2>(0);
        self.code3.next = bits::<2>(0);
        for b in 0..self._weight_bytes {
            if self.weight_pos.val().get_bit(b) {
                self.code0.next = self.codes[b * 4].val();
                self.code1.next = self.codes[b * 4 + 1].val();
                self.code2.next = self.codes[b * 4 + 2].val();
                self.code3.next = self.codes[b * 4 + 3].val();
                self.weight_byte.next = self.weight_byte.val()
                    | bit_cast::<8, 2>(self.code0.val())
                    | (bit_cast::<8, 2>(self.code1.val()) << 2)
                    | (bit_cast::<8, 2>(self.code2.val()) << 4)
                    | (bit_cast::<8, 2>(self.code3.val()) << 6);
            }
        }
        self.act_byte.next = bits::<8>(0);
        for i in 0..self._rows {
            if self.act_pos.val().get_bit(i) {
                self.act_byte.next = self.act_byte.val() | self.acts[i].val();
            }
        }
        // One OR per byte of a lane, then the six partial bytes: the OR chains yosys sees stay
        // as long as the longest vector (32), not the sum of all inputs (168 at 32x32, a
        // chain deep enough to exhaust abc9's recursion in the WebAssembly yosys).
        self.result_byte0.next = bits::<8>(0);
        self.result_byte1.next = bits::<8>(0);
        self.result_byte2.next = bits::<8>(0);
        self.result_byte3.next = bits::<8>(0);
        for j in 0..self._result_lanes {
            if self.result_pos[0].val().get_bit(j) {
                self.result_byte0.next =
                    self.result_byte0.val() | self.results[j].val().get_bits::<8>(0);
            }
            if self.result_pos[1].val().get_bit(j) {
                self.result_byte1.next =
                    self.result_byte1.val() | self.results[j].val().get_bits::<8>(8);
            }
            if self.result_pos[2].val().get_bit(j) {
                self.result_byte2.next =
                    self.result_byte2.val() | self.results[j].val().get_bits::<8>(16);
            }
            if self.result_pos[3].val().get_bit(j) {
                self.result_byte3.next =
                    self.result_byte3.val() | self.results[j].val().get_bits::<8>(24);
            }
        }
        self.picked.next = self.weight_byte.val()
            | self.act_byte.val()
            | self.result_byte0.val()
            | self.result_byte1.val()
            | self.result_byte2.val()
            | self.result_byte3.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::settle;

    fn selector() -> ReadSelect {
        let mut s = ReadSelect::new(4, 8, 8);
        s.connect_all();
        for (j, c) in s.codes.iter_mut().enumerate() {
            c.next = (((j + j / 4) % 4) as u64).into();
        }
        for (i, a) in s.acts.iter_mut().enumerate() {
            a.next = (0x10 + i as u64).into();
        }
        for (j, r) in s.results.iter_mut().enumerate() {
            r.next = (0x0403_0201 * (j as u64 + 1)).into();
        }
        s
    }

    /// The byte at position `pos` of memory `mem` (`MEM_*`); for results `pos` is
    /// `4 * lane + byte`.
    fn pick(s: &mut ReadSelect, mem: u64, pos: usize) -> u64 {
        s.weight_pos.next = 0.into();
        s.act_pos.next = 0.into();
        for v in s.result_pos.iter_mut() {
            v.next = 0.into();
        }
        match mem {
            MEM_WEIGHTS => s.weight_pos.next = (1u64 << pos).into(),
            MEM_ACTS => s.act_pos.next = (1u64 << pos).into(),
            _ => s.result_pos[pos % 4].next = (1u64 << (pos / 4)).into(),
        }
        settle(s);
        s.picked.val().to_u64()
    }

    #[test]
    fn picks_weight_bytes_activations_and_result_bytes() {
        let mut s = selector();
        // Weight byte b holds columns 4b..4b+3, column 4b + q in bits 2q..2q+1.
        assert_eq!(pick(&mut s, MEM_WEIGHTS, 0), 0b11_10_01_00);
        assert_eq!(pick(&mut s, MEM_WEIGHTS, 1), 0b00_11_10_01);
        assert_eq!(pick(&mut s, MEM_ACTS, 3), 0x13);
        // Lane 2 holds 0x0C090603: bytes 0x03, 0x06, 0x09, 0x0C.
        assert_eq!(pick(&mut s, MEM_RESULTS, 8), 0x03);
        assert_eq!(pick(&mut s, MEM_RESULTS, 9), 0x06);
        assert_eq!(pick(&mut s, MEM_RESULTS, 10), 0x09);
        assert_eq!(pick(&mut s, MEM_RESULTS, 11), 0x0C);
        // Lane 7 holds 0x201C1814.
        assert_eq!(pick(&mut s, MEM_RESULTS, 31), 0x20);
        // Nothing selected (a position past the word): zero.
        assert_eq!(pick(&mut s, MEM_ACTS, 4), 0);
        assert_eq!(pick(&mut s, MEM_RESULTS, 32), 0);
        assert_eq!(pick(&mut s, MEM_WEIGHTS, 2), 0);
    }

    #[test]
    fn without_result_inputs_picks_weights_and_activations_and_no_result_byte() {
        let mut s = ReadSelect::new(4, 8, 0);
        s.connect_all();
        for c in s.codes.iter_mut() {
            c.next = 3.into();
        }
        for a in s.acts.iter_mut() {
            a.next = 0x5A.into();
        }
        assert_eq!(pick(&mut s, MEM_WEIGHTS, 1), 0xFF);
        assert_eq!(pick(&mut s, MEM_ACTS, 2), 0x5A);
        assert_eq!(pick(&mut s, MEM_RESULTS, 5), 0);
    }

    #[test]
    #[should_panic(expected = "must be cols")]
    fn refuses_a_partial_result_tree() {
        let _ = ReadSelect::new(4, 8, 4);
    }
}
