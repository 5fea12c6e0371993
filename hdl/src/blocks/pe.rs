//! `Pe`: one processing element of the weight-stationary ternary array.
//!
//! The PE holds two 2-bit weight codes: the **active** one it computes with and a **shadow**
//! one the weight loader fills while the array still works on the previous tile. The first
//! activation of a tile arrives with `swap_in` high; from that activation on the PE uses the
//! shadow code. Each cycle it adds, subtracts or skips its activation into the partial sum
//! flowing down its column with a single adder: `psum + (a ^ {neg}) + neg`.
//!
//! Two options make the PE smaller without changing any result (the array uses them):
//!
//! * **Early swap** ([`Pe::new`] with `early`): the PE takes `swap_pre`, the tile-start flag one
//!   cycle *before* its first activation (its left neighbour's `swap_in`), and loads the
//!   shadow code into the active register at that edge. The code in force is then a register,
//!   not a multiplexer in front of every operand bit. Equivalent as long as the shadow is not
//!   written in the cycle before the swap, which the controller's schedule guarantees for every
//!   column but the first (weights are loaded a row at a time, `period >= cols` apart).
//! * **Partial-sum width** (`width`): row `i` of a column adds at most `i + 1` products of
//!   magnitude <= 128 (`-128 * -1 = +128`), which fit `9 + floor(log2(i + 1))` signed bits. The PE computes the sum
//!   and replaces the bits above `width` by copies of the sign bit; synthesis then drops the
//!   adder and register bits above `width` (identical flip-flops are merged).
//!
//! Weight codes are two's complement: `00` = 0, `01` = +1, `11` = -1. Code `10` (not a ternary
//! value; the host link refuses to store it) has bit 0 clear and so also skips: no code computes
//! anything but `+a`, `-a` or 0.

use crate::config::PSUM_BITS;
use rust_hdl::prelude::*;

/// One processing element.
#[derive(LogicBlock)]
pub struct Pe {
    /// Array clock.
    pub clock: Signal<In, Clock>,
    /// int8 activation from the left neighbour (or the row's feeder).
    pub act_in: Signal<In, Bits<8>>,
    /// High with the first activation of a tile: switch to the shadow weight from it on.
    pub swap_in: Signal<In, bool>,
    /// Early swap only: `swap_in` one cycle ahead (the left neighbour's `swap_in`).
    pub swap_pre: Signal<In, bool>,
    /// Partial sum from the PE above (zero for the top row).
    pub psum_in: Signal<In, Bits<PSUM_BITS>>,
    /// Write `code_in` into the shadow weight at this rising edge.
    pub load: Signal<In, bool>,
    /// Weight code for the shadow register.
    pub code_in: Signal<In, Bits<2>>,
    /// Activation passed to the right neighbour, one cycle later.
    pub act_out: Signal<Out, Bits<8>>,
    /// `swap_in` passed to the right neighbour, one cycle later.
    pub swap_out: Signal<Out, bool>,
    /// `psum_in + w * act_in`, registered, to the PE below.
    pub psum_out: Signal<Out, Bits<PSUM_BITS>>,
    active: DFF<Bits<2>>,
    shadow: DFF<Bits<2>>,
    act: DFF<Bits<8>>,
    swap: DFF<bool>,
    psum: DFF<Bits<PSUM_BITS>>,
    code: Signal<Local, Bits<2>>,
    extended: Signal<Local, Bits<PSUM_BITS>>,
    operand: Signal<Local, Bits<PSUM_BITS>>,
    carry: Signal<Local, Bits<PSUM_BITS>>,
    sum: Signal<Local, Bits<PSUM_BITS>>,
    sign: Signal<Local, Bits<PSUM_BITS>>,
    early: Constant<bool>,
    k_low: Constant<Bits<PSUM_BITS>>,
    k_high: Constant<Bits<PSUM_BITS>>,
    k_sign: Constant<Bits<PSUM_BITS>>,
}

impl Default for Pe {
    /// A full-width PE that swaps with `swap_in`.
    fn default() -> Self {
        Pe::new(PSUM_BITS, false)
    }
}

impl Pe {
    /// A PE whose partial sums need `width` bits (8..=16), swapping early (`swap_pre`) or with
    /// its activation (`swap_in`).
    pub fn new(width: usize, early: bool) -> Self {
        assert!(
            (8..=PSUM_BITS).contains(&width),
            "partial-sum width {width} outside 8..={PSUM_BITS}"
        );
        let low = (1u64 << width) - 1;
        let all = (1u64 << PSUM_BITS) - 1;
        Self {
            clock: Default::default(),
            act_in: Default::default(),
            swap_in: Default::default(),
            swap_pre: Default::default(),
            psum_in: Default::default(),
            load: Default::default(),
            code_in: Default::default(),
            act_out: Default::default(),
            swap_out: Default::default(),
            psum_out: Default::default(),
            active: Default::default(),
            shadow: Default::default(),
            act: Default::default(),
            swap: Default::default(),
            psum: Default::default(),
            code: Default::default(),
            extended: Default::default(),
            operand: Default::default(),
            carry: Default::default(),
            sum: Default::default(),
            sign: Default::default(),
            early: Constant::new(early),
            k_low: Constant::new(low.into()),
            k_high: Constant::new((all & !low).into()),
            k_sign: Constant::new((1u64 << (width - 1)).into()),
        }
    }

    /// Signed bits the partial sums of array row `row` (counting from 0) need.
    pub fn width_for_row(row: usize) -> usize {
        (9 + (row + 1).ilog2() as usize).min(PSUM_BITS)
    }
}

impl Logic for Pe {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, active, shadow, act, swap, psum);
        // The weight in force this cycle.
        self.code.next = self.active.q.val();
        if self.swap_in.val() & !self.early.val() {
            self.code.next = self.shadow.q.val();
        }
        self.active.d.next = self.code.val();
        if self.swap_pre.val() & self.early.val() {
            self.active.d.next = self.shadow.q.val();
        }
        if self.load.val() {
            self.shadow.d.next = self.code_in.val();
        }
        // Sign-extend the activation.
        self.extended.next = bit_cast::<PSUM_BITS, 8>(self.act_in.val());
        if self.act_in.val().get_bit(7) {
            self.extended.next =
                bit_cast::<PSUM_BITS, 8>(self.act_in.val()) | bits::<PSUM_BITS>(0xFF00);
        }
        // Zero, +a, or ~a + 1 (= -a) through one adder.
        self.operand.next = bits::<PSUM_BITS>(0);
        self.carry.next = bits::<PSUM_BITS>(0);
        if self.code.val().get_bit(0) {
            self.operand.next = self.extended.val();
            if self.code.val().get_bit(1) {
                self.operand.next = !self.extended.val();
                self.carry.next = bits::<PSUM_BITS>(1);
            }
        }
        self.sum.next = self.psum_in.val() + self.operand.val() + self.carry.val();
        // Bits above the width are copies of its sign bit.
        self.sign.next = self.sum.val() & self.k_sign.val();
        self.psum.d.next = self.sum.val() & self.k_low.val();
        if self.sign.val().any() {
            self.psum.d.next = self.sum.val() | self.k_high.val();
        }
        self.act.d.next = self.act_in.val();
        self.swap.d.next = self.swap_in.val();
        self.act_out.next = self.act.q.val();
        self.swap_out.next = self.swap.q.val();
        self.psum_out.next = self.psum.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::tick;

    fn step(pe: &mut Pe, act: i8, psum: i16, swap: bool, load: Option<u8>) -> i16 {
        pe.act_in.next = (act as u8 as u64).into();
        pe.psum_in.next = (psum as u16 as u64).into();
        pe.swap_in.next = swap;
        pe.load.next = load.is_some();
        pe.code_in.next = (load.unwrap_or(0) as u64).into();
        tick(pe, |p| &mut p.clock);
        pe.psum_out.val().index() as u16 as i16
    }

    #[test]
    fn adds_subtracts_or_skips_by_code() {
        let mut pe = Pe::default();
        pe.connect_all();
        for (code, w) in [(0b01u8, 1i16), (0b11, -1), (0b00, 0), (0b10, 0)] {
            step(&mut pe, 0, 0, false, Some(code));
            for (a, p) in [(-128i8, 100i16), (127, -5), (0, 7), (-1, -32768 + 200)] {
                // Swap in the loaded code with this activation; it stays in force after.
                assert_eq!(
                    step(&mut pe, a, p, true, None),
                    p.wrapping_add(w * a as i16)
                );
                assert_eq!(
                    step(&mut pe, a, p, false, None),
                    p.wrapping_add(w * a as i16)
                );
            }
        }
    }

    #[test]
    fn row_widths_hold_the_largest_sums() {
        for row in 0..32 {
            let w = Pe::width_for_row(row);
            // Products are -127..=128 (-128 * -1 = +128).
            let lo = -127i64 * (row as i64 + 1);
            let hi = 128i64 * (row as i64 + 1);
            assert!(
                lo >= -(1i64 << (w - 1)) && hi < (1i64 << (w - 1)),
                "row {row}"
            );
            assert!(
                hi >= (1i64 << (w - 2)),
                "row {row}: {w} bits is more than needed"
            );
        }
        assert_eq!(Pe::width_for_row(0), 9);
        assert_eq!(Pe::width_for_row(31), 14);
    }

    #[test]
    fn narrow_early_pe_equals_the_full_one_within_its_range() {
        // Row 1 (9 bits): psum_in within one product, as the row above delivers.
        let mut full = Pe::default();
        let mut narrow = Pe::new(Pe::width_for_row(1), true);
        full.connect_all();
        narrow.connect_all();
        let mut swap_next = false;
        for t in 0..200i32 {
            let a = ((t * 97) % 256 - 128) as i8;
            let p = ((t * 31) % 256 - 128) as i16;
            let load = (t % 7 == 0).then_some([0b01u8, 0b11, 0b00][(t / 7 % 3) as usize]);
            // Swaps come at least two cycles after a load (the array's schedule).
            let swap = t % 7 == 2;
            let pre = t % 7 == 1;
            assert_eq!(swap, swap_next);
            swap_next = pre;
            narrow.swap_pre.next = pre;
            let f = step(&mut full, a, p, swap, load);
            let n = step(&mut narrow, a, p, swap, load);
            assert_eq!(f, n, "cycle {t}");
        }
    }

    #[test]
    #[should_panic(expected = "width")]
    fn too_narrow_width_is_refused() {
        let _ = Pe::new(7, false);
    }

    #[test]
    fn shadow_load_does_not_disturb_active_weight() {
        let mut pe = Pe::default();
        pe.connect_all();
        step(&mut pe, 0, 0, false, Some(0b01));
        step(&mut pe, 0, 0, true, None);
        // Load -1 into the shadow while computing with +1.
        assert_eq!(step(&mut pe, 10, 1, false, Some(0b11)), 11);
        assert_eq!(step(&mut pe, 10, 1, false, None), 11);
        assert_eq!(step(&mut pe, 10, 1, true, None), -9);
        // Activation and swap flag travel right one cycle later.
        assert_eq!(pe.act_out.val(), Bits::<8>::from(10));
        assert!(pe.swap_out.val());
    }
}
