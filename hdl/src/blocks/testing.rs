//! Helpers for stepping blocks by hand in unit tests.
use rust_hdl::prelude::*;

/// Settles the combinational logic of `uut` (panics if it oscillates).
pub fn settle<B: Block>(uut: &mut B) {
    assert!(simulate(uut, 10_000), "logic did not settle");
}

/// One full clock cycle: rising edge (registers update) then falling edge.
pub fn tick<B: Block>(uut: &mut B, clock: impl Fn(&mut B) -> &mut Signal<In, Clock>) {
    clock(uut).next = true.into();
    settle(uut);
    clock(uut).next = false.into();
    settle(uut);
}
