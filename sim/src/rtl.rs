//! rust-hdl simulation backend (being written on the hdl branch).
use crate::stream::{ByteStream, LinkError};
use std::path::PathBuf;
use trimac_hdl::Config;

/// Options of the rust-hdl backend.
#[derive(Clone, Debug, Default)]
pub struct RtlOptions {
    /// Write a VCD waveform of the whole run to this file.
    pub vcd: Option<PathBuf>,
}

/// The whole top-level simulated cycle by cycle in rust-hdl.
pub struct RtlDevice {
    _cfg: Config,
}

impl RtlDevice {
    /// Builds the top-level for `cfg`.
    pub fn new(cfg: &Config, opts: RtlOptions) -> Result<RtlDevice, String> {
        let _ = opts;
        unimplemented!(
            "rtl backend for {} lands with the hdl branch",
            cfg.array_name()
        )
    }
}

impl ByteStream for RtlDevice {
    fn send(&mut self, _bytes: &[u8]) -> Result<(), LinkError> {
        unimplemented!()
    }
    fn recv(&mut self, _n: usize, _idle_cycles: u64) -> Result<Vec<u8>, LinkError> {
        unimplemented!()
    }
    fn cycles(&self) -> Option<u64> {
        unimplemented!()
    }
    fn backend(&self) -> &'static str {
        "sim"
    }
}
