//! Fault injection: a [`ByteStream`] wrapper that drops or corrupts bytes in either direction,
//! or makes the device go silent, on a schedule. Used to test the client's recovery against
//! the simulated devices, and reusable on a real serial link.

use trimac_sim::stream::{ByteStream, LinkError};

/// Which way a byte travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Host to device (requests).
    ToDevice,
    /// Device to host (replies).
    FromDevice,
}

/// What happens to the byte a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The byte is lost.
    Drop,
    /// The byte is XORed with this (nonzero) mask.
    Corrupt(u8),
    /// The byte is lost and so is every byte after it, both ways: the device is gone.
    Silent,
}

/// One scheduled fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Direction of the byte hit.
    pub direction: Direction,
    /// Index of the byte hit, counted in `direction` from the moment the fault is added
    /// (0 = the next byte).
    pub at: u64,
    /// What happens to it.
    pub kind: FaultKind,
}

impl Fault {
    /// Drops the `at`-th next byte going `direction`.
    pub fn drop(direction: Direction, at: u64) -> Fault {
        Fault {
            direction,
            at,
            kind: FaultKind::Drop,
        }
    }

    /// XORs the `at`-th next byte going `direction` with `mask`.
    pub fn corrupt(direction: Direction, at: u64, mask: u8) -> Fault {
        Fault {
            direction,
            at,
            kind: FaultKind::Corrupt(mask),
        }
    }

    /// Goes silent at the `at`-th next byte going `direction`.
    pub fn silent(direction: Direction, at: u64) -> Fault {
        Fault {
            direction,
            at,
            kind: FaultKind::Silent,
        }
    }
}

/// A [`ByteStream`] that applies scheduled [`Fault`]s to the bytes of the stream it wraps.
pub struct FaultyStream<S> {
    inner: S,
    /// Pending faults, with absolute byte indices.
    pending: Vec<Fault>,
    sent: u64,
    received: u64,
    injected: usize,
    silent: bool,
    /// Cycles spent waiting on a silent device, added to the inner stream's count.
    silent_cycles: u64,
}

impl<S: ByteStream> FaultyStream<S> {
    /// Wraps `inner` with no faults scheduled.
    pub fn new(inner: S) -> FaultyStream<S> {
        FaultyStream {
            inner,
            pending: Vec::new(),
            sent: 0,
            received: 0,
            injected: 0,
            silent: false,
            silent_cycles: 0,
        }
    }

    /// Schedules `fault`, its index counted from now.
    pub fn add(&mut self, fault: Fault) {
        let base = match fault.direction {
            Direction::ToDevice => self.sent,
            Direction::FromDevice => self.received,
        };
        self.pending.push(Fault {
            at: base + fault.at,
            ..fault
        });
    }

    /// Faults applied so far.
    pub fn injected(&self) -> usize {
        self.injected
    }

    /// Faults scheduled but not reached yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes that went to the device so far (before faults).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Bytes that came from the device so far (before faults).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The wrapped stream.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Applies the fault scheduled for byte `index` going `direction`, if any: `None` when the
    /// byte is lost.
    fn filter(&mut self, direction: Direction, index: u64, byte: u8) -> Option<u8> {
        if self.silent {
            return None;
        }
        let Some(hit) = self
            .pending
            .iter()
            .position(|f| f.direction == direction && f.at == index)
        else {
            return Some(byte);
        };
        let fault = self.pending.swap_remove(hit);
        self.injected += 1;
        match fault.kind {
            FaultKind::Drop => None,
            FaultKind::Corrupt(mask) => Some(byte ^ mask),
            FaultKind::Silent => {
                self.silent = true;
                None
            }
        }
    }

    fn silence(&mut self, missing: usize, idle_cycles: u64) -> LinkError {
        self.silent_cycles += idle_cycles;
        LinkError::Timeout {
            missing,
            waited: format!("{idle_cycles} cycles"),
        }
    }
}

impl<S: ByteStream> ByteStream for FaultyStream<S> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            let index = self.sent;
            self.sent += 1;
            out.extend(self.filter(Direction::ToDevice, index, b));
        }
        if self.silent {
            return Ok(());
        }
        self.inner.send(&out)
    }

    fn recv(&mut self, n: usize, idle_cycles: u64) -> Result<Vec<u8>, LinkError> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.silent {
                return Err(self.silence(n - out.len(), idle_cycles));
            }
            let got = self
                .inner
                .recv(n - out.len(), idle_cycles)
                .map_err(|e| match e {
                    LinkError::Timeout { waited, .. } => LinkError::Timeout {
                        missing: n - out.len(),
                        waited,
                    },
                    other => other,
                })?;
            for b in got {
                let index = self.received;
                self.received += 1;
                out.extend(self.filter(Direction::FromDevice, index, b));
            }
        }
        Ok(out)
    }

    fn cycles(&self) -> Option<u64> {
        self.inner.cycles().map(|c| c + self.silent_cycles)
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}
