//! The `serial` backend: a board (or a virtual board on a pseudo-terminal) reached through a
//! serial port, with the same protocol as every other backend.
//!
//! [`SerialStream`] is a [`ByteStream`] over the [`serialport`] crate. The protocol client
//! states its waits in device clock cycles; a serial link has no cycle counter, so the stream
//! turns them into time with the device clock the board reports in INFO, doubled, plus a floor
//! for USB-serial latency ([`MIN_WAIT`]). Before INFO has been read it assumes
//! [`BOOTSTRAP_CLOCK_HZ`]. A wait is an *idle* wait: it restarts with every byte received, so
//! a long reply at a low baud rate is not cut short.

use crate::client::Accelerator;
use crate::device::Device;
use crate::error::DriverError;
use serialport::{ClearBuffer, SerialPort};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};
use trimac_hdl::Config;
use trimac_sim::stream::{ByteStream, LinkError};

/// Default baud rate of the serial backend (what the board builds use).
pub const DEFAULT_BAUD: u32 = 3_000_000;

/// Shortest idle wait, whatever the cycle count: USB-serial adapters hold bytes back for up to
/// 16 ms, and the host may be busy.
pub const MIN_WAIT: Duration = Duration::from_millis(250);

/// Factor on the converted wait: a device is never faster than its clock, but the host's timer
/// and the link add their own delays.
pub const WAIT_MARGIN: f64 = 2.0;

/// Clock assumed until the device has reported its own (1 MHz: slow enough for any board and
/// for a virtual board that reports a few kHz only after its INFO).
pub const BOOTSTRAP_CLOCK_HZ: u32 = 1_000_000;

/// Longest single wait, whatever the cycle count (a device never needs more for one byte).
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// A serial port as a [`ByteStream`].
pub struct SerialStream {
    port: Box<dyn SerialPort>,
    name: String,
    clock_hz: u32,
    pending: VecDeque<u8>,
}

impl SerialStream {
    /// Opens `path` at `baud`, 8 data bits, no parity, 1 stop bit, no flow control, and throws
    /// away whatever was waiting in its buffers.
    pub fn open(path: &str, baud: u32) -> Result<SerialStream, DriverError> {
        if baud == 0 {
            return Err(DriverError::Backend("--baud must be positive".into()));
        }
        let port = serialport::new(path, baud)
            .data_bits(serialport::DataBits::Eight)
            .parity(serialport::Parity::None)
            .stop_bits(serialport::StopBits::One)
            .flow_control(serialport::FlowControl::None)
            .timeout(Duration::from_millis(50))
            .open()
            .map_err(|e| {
                DriverError::Backend(format!(
                    "cannot open serial port {path}: {e} (is the board plugged in, or \
                     `trimac serve --pty` running? pass its path with --port)"
                ))
            })?;
        let _ = port.clear(ClearBuffer::All);
        Ok(SerialStream {
            port,
            name: path.to_string(),
            clock_hz: BOOTSTRAP_CLOCK_HZ,
            pending: VecDeque::new(),
        })
    }

    /// Sets the device clock used to turn cycle counts into time (from INFO).
    pub fn set_clock_hz(&mut self, hz: u32) {
        self.clock_hz = hz.max(1);
    }

    /// The device clock in use, Hz.
    pub fn clock_hz(&self) -> u32 {
        self.clock_hz
    }

    /// The port's path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long `cycles` idle device cycles may last on this link.
    pub fn idle_time(&self, cycles: u64) -> Duration {
        let secs = cycles as f64 / self.clock_hz as f64 * WAIT_MARGIN;
        (MIN_WAIT + Duration::from_secs_f64(secs.min(MAX_WAIT.as_secs_f64()))).min(MAX_WAIT)
    }

    fn io(&self, what: &str, e: std::io::Error) -> LinkError {
        LinkError::Io(format!("{what} serial port {}: {e}", self.name))
    }
}

impl ByteStream for SerialStream {
    fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        match self.port.write_all(bytes).and_then(|_| self.port.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::TimedOut => Err(LinkError::NotAccepting {
                pending: bytes.len(),
            }),
            Err(e) => Err(self.io("writing to", e)),
        }
    }

    fn recv(&mut self, n: usize, idle_cycles: u64) -> Result<Vec<u8>, LinkError> {
        let wait = self.idle_time(idle_cycles);
        let mut last = Instant::now();
        let mut chunk = [0u8; 4096];
        while self.pending.len() < n {
            let left = wait.saturating_sub(last.elapsed());
            if left.is_zero() {
                return Err(LinkError::Timeout {
                    missing: n - self.pending.len(),
                    waited: format!("{} ms", wait.as_millis()),
                });
            }
            let slice = left.min(Duration::from_millis(100));
            self.port
                .set_timeout(slice)
                .map_err(|e| LinkError::Io(format!("serial port {}: {e}", self.name)))?;
            match self.port.read(&mut chunk) {
                Ok(0) => {
                    return Err(LinkError::Io(format!(
                        "serial port {} was closed by the other end",
                        self.name
                    )))
                }
                Ok(k) => {
                    self.pending.extend(&chunk[..k]);
                    last = Instant::now();
                }
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(self.io("reading from", e)),
            }
        }
        Ok(self.pending.drain(..n).collect())
    }

    fn cycles(&self) -> Option<u64> {
        None
    }

    fn backend(&self) -> &'static str {
        "serial"
    }
}

/// Connects to the device on serial port `path` at `baud`, checks that its array is `cfg`'s,
/// and from then on converts waits with the clock it reports.
pub fn connect(
    path: &str,
    baud: u32,
    cfg: &Config,
) -> Result<Accelerator<SerialStream>, DriverError> {
    cfg.validate()?;
    let stream = SerialStream::open(path, baud)?;
    let mut acc = Accelerator::connect(stream, Some(cfg))?;
    let hz = acc.info().config.clock_hz;
    acc.stream_mut().set_clock_hz(hz);
    Ok(acc)
}

/// [`connect`] as a boxed [`Device`], for the CLI's `--backend serial --port PATH`.
pub fn open(path: &str, baud: u32, cfg: &Config) -> Result<Box<dyn Device>, DriverError> {
    Ok(Box::new(connect(path, baud, cfg)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serialport::TTYPort;

    #[test]
    fn waits_scale_with_the_reported_clock_and_have_a_floor() {
        let (_master, slave) = TTYPort::pair().unwrap();
        let mut s = SerialStream::open(slave.name().as_deref().unwrap(), 115_200).unwrap();
        assert_eq!(s.clock_hz(), BOOTSTRAP_CLOCK_HZ);
        assert_eq!(s.idle_time(0), MIN_WAIT);
        s.set_clock_hz(1000);
        assert_eq!(s.idle_time(1000), MIN_WAIT + Duration::from_secs(2));
        s.set_clock_hz(0);
        assert!(s.idle_time(u64::MAX) <= MAX_WAIT);
    }

    #[test]
    fn bytes_cross_a_pty_both_ways_and_silence_times_out() {
        let (mut master, slave) = TTYPort::pair().unwrap();
        let mut s = SerialStream::open(slave.name().as_deref().unwrap(), 3_000_000).unwrap();
        s.send(&[1, 2, 3]).unwrap();
        let mut got = [0u8; 3];
        master.read_exact(&mut got).unwrap();
        assert_eq!(got, [1, 2, 3]);
        master.write_all(&[9, 8, 7, 6]).unwrap();
        assert_eq!(s.recv(3, 100).unwrap(), vec![9, 8, 7]);
        assert_eq!(s.recv(1, 100).unwrap(), vec![6]);
        let t = Instant::now();
        match s.recv(2, 0) {
            Err(LinkError::Timeout { missing: 2, .. }) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(t.elapsed() >= MIN_WAIT && t.elapsed() < MIN_WAIT * 4);
    }

    #[test]
    fn a_missing_port_names_it() {
        let e = SerialStream::open("/dev/trimac-no-such-port", 115_200)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("/dev/trimac-no-such-port") && e.contains("--port"),
            "{e}"
        );
    }
}
