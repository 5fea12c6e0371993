//! The rust-hdl backend: the whole top-level simulated cycle by cycle.
//!
//! Each cycle the host side presents at most one input byte (`in_valid`) and is always ready
//! for an output byte (`out_ready`); the handshakes are sampled before the rising edge, as a
//! synchronous receiver would. [`RtlDevice::cycles`] counts every simulated clock cycle, and
//! with [`RtlOptions::vcd`] every cycle is written to a VCD waveform.

use crate::stream::{ByteStream, LinkError};
use rust_hdl::core::vcd_probe::{write_vcd_change, write_vcd_header, VCDProbe};
use rust_hdl::prelude::*;
use std::collections::VecDeque;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use trimac_hdl::blocks::top::Top;
use trimac_hdl::Config;

/// Options of the rust-hdl backend.
#[derive(Clone, Debug, Default)]
pub struct RtlOptions {
    /// Write a VCD waveform of the whole session to this file.
    pub vcd: Option<PathBuf>,
}

/// Combinational settling iterations allowed per half cycle before the design is declared
/// oscillating.
const SETTLE_LIMIT: usize = 1_000;

/// The whole top-level simulated cycle by cycle in rust-hdl.
pub struct RtlDevice {
    top: Top,
    cycles: u64,
    received: VecDeque<u8>,
    accept_limit: u64,
    vcd: Option<VCDProbe<BufWriter<File>>>,
}

impl RtlDevice {
    /// Builds and resets the top-level for `cfg`.
    pub fn new(cfg: &Config, opts: RtlOptions) -> Result<RtlDevice, String> {
        cfg.validate().map_err(|e| e.to_string())?;
        let mut top = Top::new(cfg);
        top.connect_all();
        let vcd = match &opts.vcd {
            Some(path) => {
                let file = File::create(path)
                    .map_err(|e| format!("cannot create VCD file {}: {e}", path.display()))?;
                Some(write_vcd_header(BufWriter::new(file), &top))
            }
            None => None,
        };
        let mut dev = RtlDevice {
            top,
            cycles: 0,
            received: VecDeque::new(),
            accept_limit: 16 * cfg.frame_timeout_cycles as u64 + 100_000,
            vcd,
        };
        dev.top.reset.next = true;
        dev.step(None)?;
        dev.top.reset.next = false;
        Ok(dev)
    }

    /// One clock cycle with `input` offered on the input stream. Returns whether the byte was
    /// taken; an output byte, if any, is queued.
    fn step(&mut self, input: Option<u8>) -> Result<bool, String> {
        let top = &mut self.top;
        top.in_valid.next = input.is_some();
        top.in_data.next = (input.unwrap_or(0) as u64).into();
        top.out_ready.next = true;
        top.clock.next = false.into();
        if !simulate(top, SETTLE_LIMIT) {
            return Err("design did not settle (combinational loop)".into());
        }
        let taken = input.is_some() && top.in_ready.val();
        if top.out_valid.val() {
            self.received.push_back(top.out_data.val().to_u64() as u8);
        }
        if let Some(vcd) = self.vcd.take() {
            self.vcd = Some(self.dump(vcd, 2 * self.cycles));
        }
        let top = &mut self.top;
        top.clock.next = true.into();
        if !simulate(top, SETTLE_LIMIT) {
            return Err("design did not settle (combinational loop)".into());
        }
        self.cycles += 1;
        if let Some(vcd) = self.vcd.take() {
            self.vcd = Some(self.dump(vcd, 2 * self.cycles - 1));
        }
        Ok(taken)
    }

    fn dump(
        &self,
        mut vcd: VCDProbe<BufWriter<File>>,
        half_cycle: u64,
    ) -> VCDProbe<BufWriter<File>> {
        // A timestamp failure (disk full) must not stop the simulation; the file is then short.
        let _ = vcd.timestamp(half_cycle * 10);
        write_vcd_change(vcd, &self.top)
    }
}

impl ByteStream for RtlDevice {
    fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        for (i, &b) in bytes.iter().enumerate() {
            let mut waited = 0;
            while !self.step(Some(b)).map_err(LinkError::Io)? {
                waited += 1;
                if waited > self.accept_limit {
                    return Err(LinkError::NotAccepting {
                        pending: bytes.len() - i,
                    });
                }
            }
        }
        Ok(())
    }

    fn recv(&mut self, n: usize, idle_cycles: u64) -> Result<Vec<u8>, LinkError> {
        let mut idle = 0;
        while self.received.len() < n {
            let before = self.received.len();
            self.step(None).map_err(LinkError::Io)?;
            if self.received.len() > before {
                idle = 0;
            } else {
                idle += 1;
                if idle > idle_cycles {
                    return Err(LinkError::Timeout {
                        missing: n - self.received.len(),
                        waited: format!("{idle_cycles} cycles"),
                    });
                }
            }
        }
        Ok(self.received.drain(..n).collect())
    }

    fn cycles(&self) -> Option<u64> {
        Some(self.cycles)
    }

    fn backend(&self) -> &'static str {
        "sim"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trimac_hdl::protocol::{self, Opcode, Status, REPLY_SYNC, REQUEST_SYNC};

    fn exchange(dev: &mut RtlDevice, op: u8, payload: &[u8]) -> (u8, Vec<u8>) {
        dev.send(&protocol::frame(REQUEST_SYNC, op, payload))
            .unwrap();
        let head = dev.recv(4, 100_000).unwrap();
        assert_eq!(head[0], REPLY_SYNC);
        let len = u16::from_le_bytes([head[2], head[3]]) as usize;
        let rest = dev.recv(len + 2, 1000).unwrap();
        let mut body = head[1..].to_vec();
        body.extend_from_slice(&rest[..len]);
        assert_eq!(
            protocol::crc16(&body),
            u16::from_le_bytes([rest[len], rest[len + 1]])
        );
        (head[1], rest[..len].to_vec())
    }

    #[test]
    fn info_reports_the_configuration() {
        let cfg = Config::new(4, 8).unwrap();
        let mut dev = RtlDevice::new(&cfg, RtlOptions::default()).unwrap();
        let (status, p) = exchange(&mut dev, Opcode::Info as u8, &[]);
        assert_eq!(status, Status::Ok as u8);
        assert_eq!(p.len(), protocol::INFO_LEN);
        assert_eq!(&p[..4], &[protocol::PROTOCOL_VERSION, 4, 8, 16]);
        assert_eq!(
            u32::from_le_bytes(p[4..8].try_into().unwrap()),
            cfg.weight_depth as u32
        );
        assert_eq!(
            u32::from_le_bytes(p[24..28].try_into().unwrap()),
            cfg.frame_timeout_cycles
        );
    }

    #[test]
    fn write_then_read_activations_and_weights() {
        let cfg = Config::new(4, 8).unwrap();
        let mut dev = RtlDevice::new(&cfg, RtlOptions::default()).unwrap();
        let mut w = vec![protocol::Memory::Activations as u8, 5, 0];
        w.extend_from_slice(&[1, 2, 3, 4, 0x80, 0x7f, 0xff, 9]);
        assert_eq!(
            exchange(&mut dev, Opcode::Write as u8, &w).0,
            Status::Ok as u8
        );
        let (s, data) = exchange(&mut dev, Opcode::Read as u8, &[1, 5, 0, 2, 0]);
        assert_eq!(s, Status::Ok as u8);
        assert_eq!(data, vec![1, 2, 3, 4, 0x80, 0x7f, 0xff, 9]);
        let w = [0u8, 2, 0, 0b0111_0001, 0b1100_1101];
        assert_eq!(
            exchange(&mut dev, Opcode::Write as u8, &w).0,
            Status::Ok as u8
        );
        assert_eq!(
            exchange(&mut dev, Opcode::Read as u8, &[0, 2, 0, 1, 0]).1,
            vec![0b0111_0001, 0b1100_1101]
        );
        // Code 0b10 is refused and not stored.
        let bad = [0u8, 2, 0, 0b0000_0010, 0];
        assert_eq!(
            exchange(&mut dev, Opcode::Write as u8, &bad).0,
            Status::BadValue as u8
        );
        assert_eq!(
            exchange(&mut dev, Opcode::Read as u8, &[0, 2, 0, 1, 0]).1,
            vec![0b0111_0001, 0b1100_1101]
        );
    }
}
