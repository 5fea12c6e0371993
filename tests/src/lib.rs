//! Shared helpers of the differential test suite: every backend in [`BACKENDS`] runs the same
//! work and must give the golden model's integers and the documented cycle counts.
//!
//! A backend that cannot be opened fails the tests that use it; none is skipped.
#![forbid(unsafe_code)]

use trimac_driver::device::{open, Device, OpenOptions};
use trimac_hdl::Config;
use trimac_sim::reference::ReferenceDevice;
use trimac_sim::rtl::{RtlDevice, RtlOptions};
use trimac_sim::ByteStream;

/// Every backend the suite runs on. `cpu` is the golden reference device.
pub const BACKENDS: &[&str] = &["cpu", "sim", "verilator"];

/// Backends that simulate the RTL cycle by cycle (their cycle counts must agree).
pub const RTL_BACKENDS: &[&str] = &["sim", "verilator"];

/// Opens `backend` through the driver, panicking with the backend's own message if it cannot.
pub fn device(backend: &str, cfg: &Config) -> Box<dyn Device> {
    open(backend, cfg, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("backend `{backend}` cannot run: {e}"))
}

/// The raw byte stream of `backend`, for protocol-level tests.
pub fn stream(backend: &str, cfg: &Config) -> Box<dyn ByteStream> {
    match backend {
        "cpu" => Box::new(ReferenceDevice::new(cfg)),
        "sim" => Box::new(
            RtlDevice::new(cfg, RtlOptions::default())
                .unwrap_or_else(|e| panic!("backend `sim` cannot run: {e}")),
        ),
        "verilator" => Box::new(
            trimac_verilator::VerilatorDevice::new(cfg, Default::default())
                .unwrap_or_else(|e| panic!("backend `verilator` cannot run: {e}")),
        ),
        other => panic!("no raw stream for backend `{other}`"),
    }
}

/// A device with small memories and a short frame timeout, so protocol sessions (including
/// truncated frames and whole-memory reads) stay fast in simulation.
pub fn small_config(rows: usize, cols: usize) -> Config {
    Config {
        weight_depth: 64,
        act_depth: 64,
        result_depth: 32,
        max_m: 16,
        frame_timeout_cycles: 64,
        ..Config::new(rows, cols).expect("valid array")
    }
}

/// Deterministic pseudo-random values (SplitMix64), for fixed test data.
pub fn random_values(seed: u64, len: usize) -> Vec<u64> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
        .collect()
}

/// Random int8 values.
pub fn random_int8(seed: u64, len: usize) -> Vec<i8> {
    random_values(seed, len)
        .iter()
        .map(|v| *v as u8 as i8)
        .collect()
}

/// Random ternary values.
pub fn random_ternary(seed: u64, len: usize) -> Vec<i8> {
    random_values(seed, len)
        .iter()
        .map(|v| (v % 3) as i8 - 1)
        .collect()
}

/// Everything the device sends back: waits up to `first_idle` cycles for the first byte (a
/// RUN may take long), then until the device has been silent for `frame_timeout + 16`
/// cycles, long enough for a partly received frame to be answered `TRUNCATED`.
pub fn drain(stream: &mut dyn ByteStream, first_idle: u64, frame_timeout: u32) -> Vec<u8> {
    let mut out = vec![];
    let mut idle = first_idle;
    while let Ok(b) = stream.recv(1, idle) {
        out.extend_from_slice(&b);
        idle = frame_timeout as u64 + 16;
    }
    out
}
