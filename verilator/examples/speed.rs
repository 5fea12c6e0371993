//! Raw simulation speed of the verilated models: idle clock cycles per second for every
//! built size (`cargo run --release -p trimac-verilator --example speed`).

use std::time::Instant;
use trimac_hdl::Config;
use trimac_sim::stream::ByteStream;
use trimac_verilator::{built_sizes, VerilatorDevice, VerilatorOptions};

fn main() {
    for (rows, cols) in built_sizes() {
        let cfg = Config::new(rows, cols).expect("a built size is valid");
        let mut dev = match VerilatorDevice::new(&cfg, VerilatorOptions::default()) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{rows}x{cols}: {e}");
                std::process::exit(1);
            }
        };
        let cycles = 2_000_000u64;
        let t = Instant::now();
        // Nothing was sent, so the device stays silent and recv times out after `cycles`.
        let _ = dev.recv(1, cycles);
        let s = t.elapsed().as_secs_f64();
        println!(
            "{rows}x{cols}: {} idle cycles in {s:.3} s = {:.2} M cycles/s",
            cycles,
            cycles as f64 / s / 1e6
        );
    }
}
