//! `Pe`: one processing element of the weight-stationary ternary array.
//!
//! The PE holds two 2-bit weight codes: the **active** one it computes with and a **shadow**
//! one the weight loader fills while the array still works on the previous tile. The first
//! activation of a tile arrives with `swap_in` high; from that activation on the PE uses the
//! shadow code. Each cycle it adds, subtracts or skips its activation into the partial sum
//! flowing down its column with a single adder: `psum + (a ^ {neg}) + neg`.
//!
//! Weight codes are two's complement: `00` = 0, `01` = +1, `11` = -1. Code `10` (not a ternary
//! value; the host link refuses to store it) has bit 0 clear and so also skips: no code computes
//! anything but `+a`, `-a` or 0.

use crate::config::PSUM_BITS;
use rust_hdl::prelude::*;

/// One processing element.
#[derive(LogicBlock, Default)]
pub struct Pe {
    /// Array clock.
    pub clock: Signal<In, Clock>,
    /// int8 activation from the left neighbour (or the row's feeder).
    pub act_in: Signal<In, Bits<8>>,
    /// High with the first activation of a tile: switch to the shadow weight from it on.
    pub swap_in: Signal<In, bool>,
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
}

impl Logic for Pe {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, active, shadow, act, swap, psum);
        // The weight in force this cycle.
        self.code.next = self.active.q.val();
        if self.swap_in.val() {
            self.code.next = self.shadow.q.val();
        }
        self.active.d.next = self.code.val();
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
        self.psum.d.next = self.psum_in.val() + self.operand.val() + self.carry.val();
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
