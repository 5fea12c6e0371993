//! trimac on FPGA boards: one definition per board ([`board`]), the board top-level around
//! the accelerator ([`top`]: PLL, reset synchroniser, UART, status LEDs), constraint files
//! ([`constraints`]), bitstream builds with utilization and timing reports ([`flow`]), and
//! flashing ([`flash`]).
//!
//! The open toolchain (yosys, nextpnr, icepack/ecppack, openFPGALoader) is found through
//! `trimac-toolchain`; nothing here looks for tools itself.
#![forbid(unsafe_code)]

pub mod board;
pub mod constraints;
pub mod flash;
pub mod flow;
pub mod output_registers;
pub mod pll;
pub mod top;
pub mod virtual_board;
