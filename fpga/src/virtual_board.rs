//! A virtual board: a simulated device behind a pseudo-terminal that behaves like a flashed
//! board's serial port.
//!
//! [`VirtualBoard::start`] opens a PTY pair, builds the device (any [`ByteStream`]: the
//! rust-hdl simulation, the Verilator model, the reference model) on a thread of its own, and
//! from then on moves bytes between the PTY and the device: what the host writes to the PTY's
//! path goes into the device's input stream, what the device sends comes out of the PTY. The
//! driver's `serial` backend talks to the path exactly as to a board.
//!
//! The simulated clock runs while the device may have work to do: from a request's sync byte
//! until its reply has been sent, and for a while after any byte. When it is idle the board
//! sleeps on the PTY instead of burning the host's CPU (its free-running cycle counter then
//! stands still, which no command can tell from a slower clock).
//!
//! A virtual board reports the clock its simulation can keep up with (see [`calibrate`]), so
//! the driver's waits, converted from cycles with that clock, are long enough.

use serialport::{SerialPort, TTYPort};
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use trimac_hdl::protocol::{REPLY_SYNC, REQUEST_SYNC};
use trimac_hdl::Config;
use trimac_sim::stream::{ByteStream, LinkError};

/// Cycles simulated per step while the device is busy.
const STEP_CYCLES: u64 = 256;

/// How long the idle board sleeps on the PTY before looking at its stop flag again.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// Cycles the clock keeps running after the last byte, either way.
const GRACE_FRAMES: u64 = 2;

/// Counters of a virtual board's traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Bytes from the host into the device.
    pub bytes_in: u64,
    /// Bytes from the device to the host.
    pub bytes_out: u64,
    /// Complete replies sent.
    pub replies: u64,
    /// Host bytes the device did not take in time (dropped, like a UART overrun).
    pub dropped: u64,
    /// Simulated clock cycles.
    pub cycles: u64,
}

/// Follows the device's replies byte by byte: sync, status, length, payload, CRC.
#[derive(Clone, Copy, Debug, Default)]
struct ReplyTracker {
    /// Bytes of the current reply still expected (0 = waiting for a sync byte).
    left: usize,
    /// Header bytes seen (status, length low, length high).
    header: usize,
    len: usize,
}

impl ReplyTracker {
    /// Feeds one device byte; true when it completes a reply.
    fn feed(&mut self, b: u8) -> bool {
        if self.header == 0 && self.left == 0 {
            if b == REPLY_SYNC {
                self.header = 1;
            }
            return false;
        }
        if self.header > 0 && self.header < 4 {
            match self.header {
                2 => self.len = b as usize,
                3 => {
                    self.len |= (b as usize) << 8;
                    self.left = self.len + 2;
                    self.header = 0;
                    return false;
                }
                _ => {}
            }
            self.header += 1;
            return false;
        }
        self.left -= 1;
        self.left == 0
    }
}

/// What the serving loop is told from outside.
struct Control {
    stop: AtomicBool,
    mute: AtomicBool,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// A running virtual board.
pub struct VirtualBoard {
    path: String,
    config: Config,
    control: Arc<Control>,
    thread: Option<JoinHandle<Result<ServeStats, String>>>,
}

impl VirtualBoard {
    /// Opens a PTY and starts serving the device `make` builds for `config` (on the serving
    /// thread, so the device need not be `Send`). Returns once the device is built.
    pub fn start<S, F>(config: Config, make: F) -> Result<VirtualBoard, String>
    where
        S: ByteStream,
        F: FnOnce(&Config) -> Result<S, String> + Send + 'static,
    {
        config.validate().map_err(|e| e.to_string())?;
        let control = Arc::new(Control {
            stop: AtomicBool::new(false),
            mute: AtomicBool::new(false),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel::<Result<String, String>>();
        let ctl = control.clone();
        let cfg = config.clone();
        let thread = std::thread::spawn(move || {
            let pty = TTYPort::pair()
                .map_err(|e| format!("cannot open a pseudo-terminal: {e}"))
                .and_then(|(master, slave)| {
                    let path = slave
                        .name()
                        .ok_or_else(|| "the pseudo-terminal has no path".to_string())?;
                    Ok((master, slave, path))
                });
            let (master, slave, path) = match pty {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            let device = match make(&cfg) {
                Ok(d) => d,
                Err(e) => {
                    let e = format!("cannot build the device: {e}");
                    let _ = tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            let _ = tx.send(Ok(path));
            // The slave stays open here so the PTY outlives every client.
            let result = serve(master, device, &cfg, &ctl);
            drop(slave);
            result
        });
        match rx.recv() {
            Ok(Ok(path)) => Ok(VirtualBoard {
                path,
                config,
                control,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(match thread.join() {
                Ok(Err(e)) => e,
                _ => "the virtual board stopped while starting".into(),
            }),
        }
    }

    /// The PTY's path: open it as a serial port.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The configuration the device reports.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Makes the board stop answering (`true`) or answer again (`false`): a board that hangs.
    /// While muted, bytes from the host are thrown away and the clock stands still.
    pub fn mute(&self, on: bool) {
        self.control.mute.store(on, Ordering::SeqCst);
    }

    /// Bytes moved so far: (host to device, device to host).
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.control.bytes_in.load(Ordering::SeqCst),
            self.control.bytes_out.load(Ordering::SeqCst),
        )
    }

    /// Whether the serving loop has ended (an I/O error or a device failure).
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops serving and closes the PTY; returns the traffic counters or the error that
    /// ended the loop.
    pub fn stop(mut self) -> Result<ServeStats, String> {
        self.shutdown()
    }

    /// Serves until the loop ends by itself (an error) or `stop` becomes true.
    pub fn wait(mut self, stop: &AtomicBool) -> Result<ServeStats, String> {
        while !self.finished() && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<ServeStats, String> {
        self.control.stop.store(true, Ordering::SeqCst);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err("the virtual board's thread panicked".into())),
            None => Ok(ServeStats::default()),
        }
    }
}

impl Drop for VirtualBoard {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The serving loop.
fn serve<S: ByteStream>(
    mut master: TTYPort,
    mut device: S,
    cfg: &Config,
    ctl: &Control,
) -> Result<ServeStats, String> {
    let mut stats = ServeStats::default();
    let mut replies = ReplyTracker::default();
    // A request may be in flight: a sync byte went in and its reply has not been sent.
    let mut owed = false;
    // Cycles to keep the clock running after the last byte.
    let grace_len = GRACE_FRAMES * cfg.frame_timeout_cycles as u64 + STEP_CYCLES;
    let mut grace = 0u64;
    let mut buf = vec![0u8; 4096];
    let cycles0 = device.cycles().unwrap_or(0);
    while !ctl.stop.load(Ordering::SeqCst) {
        let busy = owed || grace > 0;
        let wait = if busy {
            Duration::from_millis(0)
        } else {
            IDLE_POLL
        };
        let got = read_some(&mut master, &mut buf, wait)?;
        if ctl.mute.load(Ordering::SeqCst) {
            if !got.is_empty() {
                stats.dropped += got.len() as u64;
            } else if !busy {
                std::thread::sleep(Duration::from_millis(1));
            }
            continue;
        }
        if !got.is_empty() {
            owed |= got.contains(&REQUEST_SYNC);
            grace = grace_len;
            stats.bytes_in += got.len() as u64;
            ctl.bytes_in.fetch_add(got.len() as u64, Ordering::SeqCst);
            match device.send(&got) {
                Ok(()) => {}
                Err(LinkError::NotAccepting { pending }) => stats.dropped += pending as u64,
                Err(e) => return Err(format!("device: {e}")),
            }
        }
        if !(owed || grace > 0) {
            continue;
        }
        // Run the clock for a while and pass on what the device sends.
        let mut out = Vec::new();
        match device.recv(1, STEP_CYCLES) {
            Ok(b) => out.extend(b),
            Err(LinkError::Timeout { .. }) => grace = grace.saturating_sub(STEP_CYCLES),
            Err(e) => return Err(format!("device: {e}")),
        }
        if !out.is_empty() {
            // Whatever else is ready, without waiting.
            while let Ok(b) = device.recv(1, 0) {
                out.extend(b);
            }
            grace = grace_len;
            for &b in &out {
                if replies.feed(b) {
                    stats.replies += 1;
                    owed = false;
                }
            }
            stats.bytes_out += out.len() as u64;
            ctl.bytes_out.fetch_add(out.len() as u64, Ordering::SeqCst);
            write_all(&mut master, &out)?;
        }
    }
    stats.cycles = device.cycles().unwrap_or(0).saturating_sub(cycles0);
    Ok(stats)
}

/// Reads what the host has written, waiting at most `wait` for the first byte.
fn read_some(master: &mut TTYPort, buf: &mut [u8], wait: Duration) -> Result<Vec<u8>, String> {
    let available = master
        .bytes_to_read()
        .map_err(|e| format!("pseudo-terminal: {e}"))?;
    if available == 0 && wait.is_zero() {
        return Ok(Vec::new());
    }
    master
        .set_timeout(wait.max(Duration::from_millis(1)))
        .map_err(|e| format!("pseudo-terminal: {e}"))?;
    match master.read(buf) {
        Ok(n) => Ok(buf[..n].to_vec()),
        Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Interrupted) => {
            Ok(Vec::new())
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(Vec::new()),
        Err(e) => Err(format!("pseudo-terminal: {e}")),
    }
}

fn write_all(master: &mut TTYPort, bytes: &[u8]) -> Result<(), String> {
    master
        .set_timeout(Duration::from_secs(5))
        .map_err(|e| format!("pseudo-terminal: {e}"))?;
    master
        .write_all(bytes)
        .and_then(|_| master.flush())
        .map_err(|e| format!("pseudo-terminal: {e}"))
}

/// Cycles per second a device built by `make` simulates (measured over `cycles` idle cycles).
pub fn measure_speed<S: ByteStream>(device: &mut S, cycles: u64) -> f64 {
    let start = Instant::now();
    let c0 = device.cycles().unwrap_or(0);
    let _ = device.recv(1, cycles);
    let done = device.cycles().unwrap_or(0).saturating_sub(c0).max(1);
    done as f64 / start.elapsed().as_secs_f64().max(1e-6)
}

/// The clock a virtual board should report for a simulation running at `cycles_per_second`:
/// a quarter of it (so a busy host slowing the simulation down does not make the driver's
/// waits too short), in whole hundreds of Hz, at least 100 Hz.
pub fn calibrate(cycles_per_second: f64) -> u32 {
    let hz = (cycles_per_second / 4.0).clamp(100.0, 4.0e9) as u32;
    (hz / 100).max(1) * 100
}

/// The configuration of a virtual board: `base` with the clock it reports and a frame timeout
/// of about 50 ms at that clock (as on the boards), at least 64 cycles.
pub fn virtual_config(base: &Config, clock_hz: u32) -> Config {
    Config {
        clock_hz,
        frame_timeout_cycles: (clock_hz / 20).max(64),
        ..base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trimac_hdl::protocol::{self, Opcode, Status};

    #[test]
    fn tracker_counts_whole_replies() {
        let mut t = ReplyTracker::default();
        let reply = protocol::frame(REPLY_SYNC, Status::Ok as u8, &[1, 2, 3]);
        let mut done = 0;
        for b in [0x00u8, 0x13]
            .iter()
            .chain(reply.iter())
            .chain(reply.iter())
        {
            done += t.feed(*b) as usize;
        }
        assert_eq!(done, 2);
        let empty = protocol::frame(REPLY_SYNC, Status::BadCrc as u8, &[]);
        assert_eq!(empty.iter().filter(|b| t.feed(**b)).count(), 1);
    }

    #[test]
    fn calibration_is_conservative() {
        assert_eq!(calibrate(20_000.0), 5000);
        assert_eq!(calibrate(10.0), 100);
        let c = virtual_config(&Config::new(4, 4).unwrap(), 5000);
        assert_eq!((c.clock_hz, c.frame_timeout_cycles), (5000, 250));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn serves_info_over_the_pty() {
        use trimac_sim::reference::ReferenceDevice;
        let cfg = Config::new(4, 4).unwrap();
        let vb =
            VirtualBoard::start(cfg.clone(), |c: &Config| Ok(ReferenceDevice::new(c))).unwrap();
        let mut port = serialport::new(vb.path(), 3_000_000)
            .timeout(Duration::from_secs(5))
            .open()
            .unwrap();
        port.write_all(&protocol::frame(REQUEST_SYNC, Opcode::Info as u8, &[]))
            .unwrap();
        let mut reply = vec![0u8; 6 + protocol::INFO_LEN];
        port.read_exact(&mut reply).unwrap();
        assert_eq!(reply[0], REPLY_SYNC);
        assert_eq!(reply[1], Status::Ok as u8);
        assert_eq!(&reply[4..7], &[protocol::PROTOCOL_VERSION, 4, 4]);
        let stats = vb.stop().unwrap();
        assert_eq!(stats.replies, 1);
        assert_eq!(stats.bytes_out, reply.len() as u64);
    }
}
