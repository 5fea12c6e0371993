//! trimac hardware: the ternary add/subtract systolic array and everything around it,
//! described in rust-hdl, plus the configuration and protocol definitions every other crate
//! shares.
#![forbid(unsafe_code)]

pub mod blocks;
pub mod config;
pub mod protocol;

pub use config::Config;
pub mod verilog;
