//! The command-level view of a device ([`Device`]), the layer descriptor, and [`open`], which
//! picks a backend by name.
//!
//! Everything above this module (GEMM tiling, MLP inference, the CLI) talks to a
//! `dyn Device`; a new backend (Verilator, a board's serial port) only needs a
//! [`ByteStream`] and a line in [`open`].

use crate::client::{Accelerator, DeviceInfo, DeviceStatus, Stats};
use crate::error::DriverError;
use std::path::PathBuf;
use trimac_hdl::protocol::{Memory, CONFIGURE_LEN, FLAG_INT8_OUT, FLAG_RELU, MAX_SHIFT};
use trimac_hdl::Config;
use trimac_sim::reference::ReferenceDevice;
use trimac_sim::rtl::{RtlDevice, RtlOptions};
use trimac_sim::stream::ByteStream;
use trimac_verilator::{VerilatorDevice, VerilatorOptions};

/// Backend names [`open`] knows.
pub const BACKENDS: [&str; 4] = ["cpu", "sim", "verilator", "serial"];

/// The operations of the command protocol, as the rest of the driver uses them.
pub trait Device {
    /// The device's configuration as read at connection (no traffic).
    fn info(&self) -> &DeviceInfo;
    /// Sends INFO again and returns what the device reports now.
    fn query_info(&mut self) -> Result<DeviceInfo, DriverError>;
    /// Sends RESET (forget the configured layer; memories keep their contents).
    fn reset(&mut self) -> Result<(), DriverError>;
    /// Sends STATUS.
    fn status(&mut self) -> Result<DeviceStatus, DriverError>;
    /// Writes whole words (`bytes` in link format) at word address `addr` of `mem`.
    fn write(&mut self, mem: Memory, addr: usize, bytes: &[u8]) -> Result<(), DriverError>;
    /// Reads `words` words from word address `addr` of `mem`, in link format.
    fn read(&mut self, mem: Memory, addr: usize, words: usize) -> Result<Vec<u8>, DriverError>;
    /// Configures the layer the next RUN computes.
    fn configure(&mut self, layer: &LayerDescriptor) -> Result<(), DriverError>;
    /// Runs the configured layer; returns the cycles the device reports.
    fn run(&mut self) -> Result<u64, DriverError>;
    /// Statistics since connection.
    fn stats(&self) -> Stats;
    /// Backend name (`cpu`, `sim`, ...).
    fn backend(&self) -> &'static str;
    /// The device's configuration (shorthand for `info().config`).
    fn config(&self) -> &Config {
        &self.info().config
    }
}

impl<S: ByteStream> Device for Accelerator<S> {
    fn info(&self) -> &DeviceInfo {
        Accelerator::info(self)
    }
    fn query_info(&mut self) -> Result<DeviceInfo, DriverError> {
        Accelerator::query_info(self)
    }
    fn reset(&mut self) -> Result<(), DriverError> {
        Accelerator::reset(self)
    }
    fn status(&mut self) -> Result<DeviceStatus, DriverError> {
        Accelerator::status(self)
    }
    fn write(&mut self, mem: Memory, addr: usize, bytes: &[u8]) -> Result<(), DriverError> {
        Accelerator::write(self, mem, addr, bytes)
    }
    fn read(&mut self, mem: Memory, addr: usize, words: usize) -> Result<Vec<u8>, DriverError> {
        Accelerator::read(self, mem, addr, words)
    }
    fn configure(&mut self, layer: &LayerDescriptor) -> Result<(), DriverError> {
        Accelerator::configure(self, layer)
    }
    fn run(&mut self) -> Result<u64, DriverError> {
        Accelerator::run(self)
    }
    fn stats(&self) -> Stats {
        Accelerator::stats(self)
    }
    fn backend(&self) -> &'static str {
        self.stream().backend()
    }
}

/// One layer as CONFIGURE describes it (docs/protocol.md, "the layer descriptor").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerDescriptor {
    /// Activation rows, `1 ..= max_m`.
    pub m: u16,
    /// K / rows, rounded up.
    pub k_tiles: u16,
    /// N / cols, rounded up.
    pub n_tiles: u16,
    /// First activation word read.
    pub act_base: u16,
    /// First weight word read.
    pub wt_base: u16,
    /// First output word written (result memory, or activation memory with `int8_out`).
    pub out_base: u16,
    /// Requantization multiplier.
    pub mult: u16,
    /// Requantization shift, `0 ..= 31`.
    pub shift: u8,
    /// Write requantized int8 outputs into activation memory instead of int32 results.
    pub int8_out: bool,
    /// Clamp requantized outputs at 0 (only with `int8_out`).
    pub relu: bool,
}

impl LayerDescriptor {
    /// The flags byte.
    pub fn flags(&self) -> u8 {
        let mut f = 0;
        if self.int8_out {
            f |= FLAG_INT8_OUT;
        }
        if self.relu {
            f |= FLAG_RELU;
        }
        f
    }

    /// The 16-byte CONFIGURE payload.
    pub fn encode(&self) -> [u8; CONFIGURE_LEN] {
        let mut p = [0u8; CONFIGURE_LEN];
        let halves = [
            self.m,
            self.k_tiles,
            self.n_tiles,
            self.act_base,
            self.wt_base,
            self.out_base,
            self.mult,
        ];
        for (i, h) in halves.iter().enumerate() {
            p[2 * i..2 * i + 2].copy_from_slice(&h.to_le_bytes());
        }
        p[14] = self.shift;
        p[15] = self.flags();
        p
    }

    /// Decodes a CONFIGURE payload (flags other than INT8_OUT and RELU are dropped).
    pub fn decode(p: &[u8; CONFIGURE_LEN]) -> LayerDescriptor {
        let h = |i: usize| u16::from_le_bytes([p[2 * i], p[2 * i + 1]]);
        LayerDescriptor {
            m: h(0),
            k_tiles: h(1),
            n_tiles: h(2),
            act_base: h(3),
            wt_base: h(4),
            out_base: h(5),
            mult: h(6),
            shift: p[14],
            int8_out: p[15] & FLAG_INT8_OUT != 0,
            relu: p[15] & FLAG_RELU != 0,
        }
    }

    /// Checks the descriptor against the device's limits exactly as the device does, with a
    /// message that says which limit is exceeded.
    pub fn check(&self, cfg: &Config) -> Result<(), DriverError> {
        self.limits(cfg).map_err(|why| {
            DriverError::Capacity(format!(
                "layer (m {}, k_tiles {}, n_tiles {}) does not fit the {} device: {why}",
                self.m,
                self.k_tiles,
                self.n_tiles,
                cfg.array_name()
            ))
        })
    }

    fn limits(&self, cfg: &Config) -> Result<(), String> {
        let (m, kt, nt) = (
            self.m as usize,
            self.k_tiles as usize,
            self.n_tiles as usize,
        );
        let (act, wt) = (self.act_base as usize, self.wt_base as usize);
        if m == 0 || m > cfg.max_m {
            return Err(format!("m = {m} is outside 1..={}", cfg.max_m));
        }
        if kt == 0 || nt == 0 {
            return Err("k_tiles and n_tiles must be at least 1".into());
        }
        if act + m * kt > cfg.act_depth {
            return Err(format!(
                "inputs need activation words {act}..{}, the memory has {}",
                act + m * kt,
                cfg.act_depth
            ));
        }
        if wt + nt * kt * cfg.rows > cfg.weight_depth {
            return Err(format!(
                "weights need words {wt}..{}, the memory has {}",
                wt + nt * kt * cfg.rows,
                cfg.weight_depth
            ));
        }
        if self.shift > MAX_SHIFT {
            return Err(format!("shift {} is above {MAX_SHIFT}", self.shift));
        }
        if self.relu && !self.int8_out {
            return Err("RELU needs INT8_OUT".into());
        }
        self.check_output(cfg)
    }

    fn check_output(&self, cfg: &Config) -> Result<(), String> {
        let (m, kt, nt) = (
            self.m as usize,
            self.k_tiles as usize,
            self.n_tiles as usize,
        );
        let (act, out) = (self.act_base as usize, self.out_base as usize);
        let end = out + m * nt;
        if !self.int8_out {
            if end > cfg.result_depth {
                return Err(format!(
                    "outputs need result words {out}..{end}, the memory has {}",
                    cfg.result_depth
                ));
            }
            return Ok(());
        }
        if cfg.rows != cfg.cols {
            return Err(format!(
                "INT8_OUT needs a square array, this one is {}",
                cfg.array_name()
            ));
        }
        if end > cfg.act_depth {
            return Err(format!(
                "int8 outputs need activation words {out}..{end}, the memory has {}",
                cfg.act_depth
            ));
        }
        if out < act + m * kt && act < end {
            return Err(format!(
                "int8 outputs {out}..{end} overlap the inputs {act}..{}",
                act + m * kt
            ));
        }
        Ok(())
    }
}

/// Options of [`open`] that only some backends use.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Write a VCD waveform of the whole session (`sim` and `verilator` backends).
    pub vcd: Option<PathBuf>,
}

/// Opens the backend called `backend` (one of [`BACKENDS`]) for a device of configuration
/// `cfg`, connects, and checks that the device is the one asked for.
pub fn open(
    backend: &str,
    cfg: &Config,
    opts: &OpenOptions,
) -> Result<Box<dyn Device>, DriverError> {
    cfg.validate()?;
    match backend {
        "cpu" => {
            if let Some(path) = &opts.vcd {
                return Err(DriverError::Backend(format!(
                    "a waveform ({}) needs the `sim` backend; the `cpu` backend has no signals",
                    path.display()
                )));
            }
            connect(ReferenceDevice::new(cfg), cfg)
        }
        "sim" => {
            let rtl = RtlDevice::new(
                cfg,
                RtlOptions {
                    vcd: opts.vcd.clone(),
                },
            )
            .map_err(|e| DriverError::Backend(format!("cannot build the RTL simulation: {e}")))?;
            connect(rtl, cfg)
        }
        "verilator" => {
            let trace = opts.vcd.clone();
            let vl = VerilatorDevice::new(cfg, VerilatorOptions { trace })
                .map_err(|e| DriverError::Backend(format!("verilator backend: {e}")))?;
            connect(vl, cfg)
        }
        "serial" => Err(DriverError::Backend(
            "the serial backend needs a port: pass --port PATH (a board's serial port, or the \
             path `trimac serve --pty` prints); from Rust use trimac_driver::serial::open"
                .into(),
        )),
        other => Err(DriverError::Backend(format!(
            "unknown backend `{other}`; known backends: {}",
            BACKENDS.join(", ")
        ))),
    }
}

/// Connects to a device behind any byte stream and checks its shape against `cfg`.
pub fn connect<S: ByteStream + 'static>(
    stream: S,
    cfg: &Config,
) -> Result<Box<dyn Device>, DriverError> {
    Ok(Box::new(Accelerator::connect(stream, Some(cfg))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> LayerDescriptor {
        LayerDescriptor {
            m: 3,
            k_tiles: 2,
            n_tiles: 4,
            act_base: 0,
            wt_base: 0,
            out_base: 6,
            mult: 0x1234,
            shift: 7,
            int8_out: true,
            relu: true,
        }
    }

    #[test]
    fn encode_layout_matches_protocol() {
        let p = layer().encode();
        assert_eq!(&p[..6], &[3, 0, 2, 0, 4, 0]);
        assert_eq!(&p[10..14], &[6, 0, 0x34, 0x12]);
        assert_eq!(p[14], 7);
        assert_eq!(p[15], FLAG_INT8_OUT | FLAG_RELU);
        assert_eq!(LayerDescriptor::decode(&p), layer());
    }

    #[test]
    fn check_mirrors_device_limits() {
        let cfg = Config::new(8, 8).unwrap();
        assert!(layer().check(&cfg).is_ok());
        let overlap = LayerDescriptor {
            out_base: 5,
            ..layer()
        };
        assert!(overlap
            .check(&cfg)
            .unwrap_err()
            .to_string()
            .contains("overlap"));
        let relu_only = LayerDescriptor {
            int8_out: false,
            ..layer()
        };
        assert!(relu_only.check(&cfg).is_err());
        let rect = Config::new(8, 4).unwrap();
        assert!(layer()
            .check(&rect)
            .unwrap_err()
            .to_string()
            .contains("square"));
        let big_m = LayerDescriptor { m: 513, ..layer() };
        assert!(big_m.check(&cfg).is_err());
        let no_tiles = LayerDescriptor {
            k_tiles: 0,
            ..layer()
        };
        assert!(no_tiles.check(&cfg).is_err());
    }

    #[test]
    fn unknown_backend_lists_known_ones() {
        let err = open("fpga9000", &Config::default(), &OpenOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("fpga9000") && err.contains("cpu") && err.contains("sim"));
    }
}
