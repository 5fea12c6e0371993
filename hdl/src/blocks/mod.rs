//! Hardware blocks, one concern each.

pub mod accumulator_lane;
pub mod controller;
pub mod core;
pub mod fanout;
pub mod host_link;
pub mod lane_ram;
pub mod pe;
pub mod read_select;
pub mod requantizer;
pub mod result_shifter;
pub mod ternary_array;
pub mod top;
pub mod uart;

#[cfg(test)]
pub(crate) mod testing;

use rust_hdl::prelude::{Synth, DFF};

/// `n` flip-flops (a register per lane, row or stage).
pub(crate) fn dffs<T: Synth>(n: usize) -> Vec<DFF<T>> {
    (0..n).map(|_| DFF::default()).collect()
}
