//! Verilog emission of the whole top-level.

use crate::blocks::top::Top;
use crate::Config;
use rust_hdl::prelude::*;

/// Emits the complete top-level for `cfg` as Verilog. The top module is `top` with the plain
/// ports `clock, reset, in_data, in_valid, in_ready, out_data, out_valid, out_ready`.
pub fn emit_top(cfg: &Config) -> String {
    let mut top = Top::new(cfg);
    top.connect_all();
    generate_verilog(&top)
}
