//! `ReadSelect`: one byte of a memory word, for the host link's READ replies.
//!
//! The word is what every lane RAM of one memory reads at the same address: a weight row (one
//! 2-bit code per column, four codes to a byte), an activation word (one int8 per row) or a
//! result word (one int32 per column). `sel` is one-hot over the word's bytes for weights and
//! activations, and over the lanes for results, where `shift` (0, 8, 16, 24) picks the byte of
//! the lane (a select with several bits set would give the OR of their bytes). Purely
//! combinational: the core registers what it selects.

use crate::config::ACC_BITS;
use rust_hdl::prelude::*;

/// Memory selector on `mem`: packed weights.
pub const MEM_WEIGHTS: u64 = 0;
/// Memory selector on `mem`: activations.
pub const MEM_ACTS: u64 = 1;
/// Memory selector on `mem`: int32 results.
pub const MEM_RESULTS: u64 = 2;

/// The byte multiplexer of host reads.
#[derive(LogicBlock)]
pub struct ReadSelect {
    /// Weight codes of the word, one per column.
    pub codes: Vec<Signal<In, Bits<2>>>,
    /// Activations of the word, one per row.
    pub acts: Vec<Signal<In, Bits<8>>>,
    /// Results of the word, one per column.
    pub results: Vec<Signal<In, Bits<ACC_BITS>>>,
    /// The memory: [`MEM_WEIGHTS`], [`MEM_ACTS`] or [`MEM_RESULTS`].
    pub mem: Signal<In, Bits<2>>,
    /// One-hot byte (weights, activations) or lane (results) select.
    pub sel: Signal<In, Bits<32>>,
    /// Bit offset of the byte within a result lane.
    pub shift: Signal<In, Bits<5>>,
    /// The selected byte (zero when `sel` selects nothing; not `byte`, a SystemVerilog keyword).
    pub picked: Signal<Out, Bits<8>>,
    k_mem_weights: Constant<Bits<2>>,
    k_mem_acts: Constant<Bits<2>>,
    code0: Signal<Local, Bits<2>>,
    code1: Signal<Local, Bits<2>>,
    code2: Signal<Local, Bits<2>>,
    code3: Signal<Local, Bits<2>>,
    weight_byte: Signal<Local, Bits<8>>,
    act: Signal<Local, Bits<8>>,
    result: Signal<Local, Bits<32>>,
    word: Signal<Local, Bits<32>>,
    _rows: usize,
    _cols: usize,
    _weight_bytes: usize,
}

impl ReadSelect {
    /// The selector for an array of `rows x cols` (at most 32 x 32, `cols` a multiple of 4:
    /// the one-hot select is 32 bits wide and a weight byte holds four columns).
    pub fn new(rows: usize, cols: usize) -> Self {
        assert!((1..=32).contains(&rows), "rows = {rows}");
        assert!(
            (4..=32).contains(&cols) && cols.is_multiple_of(4),
            "cols = {cols} must be a multiple of 4 in 4..=32"
        );
        Self {
            codes: (0..cols).map(|_| Default::default()).collect(),
            acts: (0..rows).map(|_| Default::default()).collect(),
            results: (0..cols).map(|_| Default::default()).collect(),
            mem: Default::default(),
            sel: Default::default(),
            shift: Default::default(),
            picked: Default::default(),
            k_mem_weights: Constant::new(MEM_WEIGHTS.into()),
            k_mem_acts: Constant::new(MEM_ACTS.into()),
            code0: Default::default(),
            code1: Default::default(),
            code2: Default::default(),
            code3: Default::default(),
            weight_byte: Default::default(),
            act: Default::default(),
            result: Default::default(),
            word: Default::default(),
            _rows: rows,
            _cols: cols,
            _weight_bytes: cols / 4,
        }
    }
}

impl Logic for ReadSelect {
    #[hdl_gen]
    fn update(&mut self) {
        // `sel` is one-hot, so each memory's byte is the OR of the selected inputs: a balanced
        // OR tree in synthesis, where a chain of `if`s would be a priority multiplexer as deep
        // as the word. Calls cannot take loop-indexed arguments, hence the code locals.
        self.code0.next = bits::<2>(0);
        self.code1.next = bits::<2>(0);
        self.code2.next = bits::<2>(0);
        self.code3.next = bits::<2>(0);
        self.weight_byte.next = bits::<8>(0);
        for b in 0..self._weight_bytes {
            if self.sel.val().get_bit(b) {
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
        self.act.next = bits::<8>(0);
        for i in 0..self._rows {
            if self.sel.val().get_bit(i) {
                self.act.next = self.act.val() | self.acts[i].val();
            }
        }
        self.result.next = bits::<32>(0);
        for j in 0..self._cols {
            if self.sel.val().get_bit(j) {
                self.result.next = self.result.val() | self.results[j].val();
            }
        }
        self.word.next = self.result.val();
        if self.mem.val() == self.k_mem_weights.val() {
            self.word.next = bit_cast::<32, 8>(self.weight_byte.val());
        }
        if self.mem.val() == self.k_mem_acts.val() {
            self.word.next = bit_cast::<32, 8>(self.act.val());
        }
        self.picked.next = bit_cast::<8, 32>(self.word.val() >> self.shift.val());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::settle;

    fn selector() -> ReadSelect {
        let mut s = ReadSelect::new(4, 8);
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

    fn pick(s: &mut ReadSelect, mem: u64, sel: u64, shift: u64) -> u64 {
        s.mem.next = mem.into();
        s.sel.next = sel.into();
        s.shift.next = shift.into();
        settle(s);
        s.picked.val().to_u64()
    }

    #[test]
    fn picks_weight_bytes_activations_and_result_bytes() {
        let mut s = selector();
        // Weight byte b holds columns 4b..4b+3, column 4b + q in bits 2q..2q+1.
        assert_eq!(pick(&mut s, MEM_WEIGHTS, 0b01, 0), 0b11_10_01_00);
        assert_eq!(pick(&mut s, MEM_WEIGHTS, 0b10, 0), 0b00_11_10_01);
        assert_eq!(pick(&mut s, MEM_ACTS, 1 << 3, 0), 0x13);
        // Lane 2 holds 0x0C090603: bytes 0x03, 0x06, 0x09, 0x0C.
        assert_eq!(pick(&mut s, MEM_RESULTS, 1 << 2, 0), 0x03);
        assert_eq!(pick(&mut s, MEM_RESULTS, 1 << 2, 16), 0x09);
        assert_eq!(pick(&mut s, MEM_RESULTS, 1 << 2, 24), 0x0C);
        // Nothing selected (a select past the word): zero.
        assert_eq!(pick(&mut s, MEM_ACTS, 1 << 4, 0), 0);
        assert_eq!(pick(&mut s, MEM_RESULTS, 1 << 8, 0), 0);
    }
}
