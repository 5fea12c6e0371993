//! The byte-stream view of a device: what every backend (reference model, rust-hdl
//! simulation, Verilator, a board's serial port) offers the host driver.

use std::fmt;

/// A failure of the link itself (not a status the device replied with).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The device produced no byte within the allowed wait.
    Timeout {
        /// Bytes still expected.
        missing: usize,
        /// What the wait was, in words (e.g. "20000 cycles", "250 ms").
        waited: String,
    },
    /// The device did not take the bytes sent to it within the allowed wait.
    NotAccepting {
        /// Bytes not taken.
        pending: usize,
    },
    /// An I/O error of the underlying transport (serial port, process).
    Io(String),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Timeout { missing, waited } => {
                write!(
                    f,
                    "device did not answer: {missing} byte(s) missing after waiting {waited}"
                )
            }
            LinkError::NotAccepting { pending } => {
                write!(
                    f,
                    "device stopped accepting input with {pending} byte(s) unsent"
                )
            }
            LinkError::Io(e) => write!(f, "link I/O error: {e}"),
        }
    }
}

impl std::error::Error for LinkError {}

/// A device reached through its host byte stream.
///
/// Backends implement only this; the protocol (frames, CRC, retries, tiling) lives in the
/// driver and is the same for all of them.
pub trait ByteStream {
    /// Sends bytes to the device, in order. Simulated backends advance their clock until the
    /// device has taken every byte.
    fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError>;

    /// Receives exactly `n` bytes. Fails with [`LinkError::Timeout`] when the device stays
    /// silent for longer than `idle_cycles` device clock cycles (backends without a cycle clock
    /// convert it to time with the device clock).
    fn recv(&mut self, n: usize, idle_cycles: u64) -> Result<Vec<u8>, LinkError>;

    /// Device clock cycles elapsed since the backend was created, where the backend can count
    /// them (simulators); `None` for hardware.
    fn cycles(&self) -> Option<u64>;

    /// Backend name as used on the command line (`cpu`, `sim`, ...).
    fn backend(&self) -> &'static str;
}
