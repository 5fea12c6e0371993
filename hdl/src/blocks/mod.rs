//! Hardware blocks, one concern each.

pub mod accumulator_lane;
pub mod controller;
pub mod core;
pub mod host_link;
pub mod lane_ram;
pub mod pe;
pub mod read_select;
pub mod requantizer;
pub mod ternary_array;
pub mod top;
pub mod uart;

#[cfg(test)]
pub(crate) mod testing;
