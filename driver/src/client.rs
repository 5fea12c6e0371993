//! The protocol client: stop-and-wait requests and replies over any [`ByteStream`], with
//! CRC checks, bounded retries, transfer splitting and statistics.
//!
//! [`Accelerator`] speaks docs/protocol.md and nothing else: it knows no backend. Every command
//! is idempotent, so a request whose reply was lost or damaged is simply sent again (at most
//! [`MAX_ATTEMPTS`] times in all); a device that stays silent ends in a timeout error after a
//! bounded wait, never in a hang.

use crate::device::LayerDescriptor;
use crate::error::{opcode_name, status_name, DriverError};
use std::fmt;
use std::time::Instant;
use trimac_hdl::protocol::{
    crc16, frame, Memory, Opcode, Status, INFO_LEN, PROTOCOL_VERSION, READ_LEN, REPLY_SYNC,
    REQUEST_SYNC, RUN_REPLY_LEN, STATUS_LEN,
};
use trimac_hdl::Config;
use trimac_sim::stream::{ByteStream, LinkError};

/// Attempts per command, the first included: a command is resent at most `MAX_ATTEMPTS - 1`
/// times after a damaged or missing reply, `BAD_CRC` or `TRUNCATED`.
pub const MAX_ATTEMPTS: usize = 4;

/// Largest payload of one WRITE frame and of one READ reply, in bytes; longer transfers are
/// split into several frames.
pub const MAX_FRAME_PAYLOAD: usize = 4096;

/// Largest number of stray bytes skipped while looking for a reply's sync byte.
const MAX_SYNC_SKIP: usize = 1 << 16;

/// Largest number of bytes drained (and thrown away) after a bad reply.
const MAX_DRAIN: usize = 1 << 17;

/// Largest INFO payload accepted before looking at the version byte (a newer protocol may
/// send a longer INFO; the driver must still be able to say which version it met).
const MAX_INFO_LEN: usize = 255;

/// The device's configuration as it reports it with INFO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Protocol version the device speaks.
    pub protocol_version: u8,
    /// Width of the partial sums inside the array, in bits.
    pub psum_bits: u8,
    /// Array shape, memory depths, clock and frame timeout.
    pub config: Config,
}

impl DeviceInfo {
    /// Decodes an INFO reply payload. Refuses a protocol version other than
    /// [`PROTOCOL_VERSION`] and configurations that are not valid.
    pub fn parse(payload: &[u8]) -> Result<DeviceInfo, DriverError> {
        let version = *payload
            .first()
            .ok_or_else(|| info_error("empty INFO reply"))?;
        if version != PROTOCOL_VERSION {
            return Err(DriverError::ConfigMismatch(format!(
                "device speaks protocol v{version}, this driver speaks v{PROTOCOL_VERSION}: \
                 use a driver and a bitstream of the same release"
            )));
        }
        if payload.len() != INFO_LEN {
            return Err(info_error(&format!(
                "INFO reply has {} bytes, protocol v{PROTOCOL_VERSION} has {INFO_LEN}",
                payload.len()
            )));
        }
        let word = |at: usize| u32_le(&payload[at..at + 4]);
        let config = Config {
            rows: payload[1] as usize,
            cols: payload[2] as usize,
            weight_depth: word(4) as usize,
            act_depth: word(8) as usize,
            result_depth: word(12) as usize,
            max_m: word(16) as usize,
            clock_hz: word(20),
            frame_timeout_cycles: word(24),
            // Not on the link: they change neither results nor run cycles.
            registered_acc_reads: false,
            registered_host_reads: false,
            registered_act_reads: false,
            registered_weight_reads: false,
            registered_code_bus: false,
            lut_range_checks: false,
            registered_read_strobe: false,
        };
        config
            .validate()
            .map_err(|e| info_error(&format!("device reports an invalid configuration: {e}")))?;
        Ok(DeviceInfo {
            protocol_version: version,
            psum_bits: payload[3],
            config,
        })
    }

    /// Encodes the INFO payload this information came from (the inverse of [`DeviceInfo::parse`]).
    pub fn encode(&self) -> Vec<u8> {
        let c = &self.config;
        let mut p = vec![
            self.protocol_version,
            c.rows as u8,
            c.cols as u8,
            self.psum_bits,
        ];
        for v in [
            c.weight_depth as u32,
            c.act_depth as u32,
            c.result_depth as u32,
            c.max_m as u32,
            c.clock_hz,
            c.frame_timeout_cycles,
        ] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p
    }

    /// Refuses a device whose array shape differs from `expected`, naming both.
    pub fn check_shape(&self, expected: &Config) -> Result<(), DriverError> {
        let c = &self.config;
        if c.rows == expected.rows && c.cols == expected.cols {
            return Ok(());
        }
        Err(DriverError::ConfigMismatch(format!(
            "device is {} protocol v{}, you asked for {}: pass --array {} or flash a {} bitstream",
            c.array_name(),
            self.protocol_version,
            expected.array_name(),
            c.array_name(),
            expected.array_name()
        )))
    }
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "array            {} ({} MAC lanes)",
            c.array_name(),
            c.lanes()
        )?;
        writeln!(f, "protocol         v{}", self.protocol_version)?;
        writeln!(f, "partial sums     {} bits", self.psum_bits)?;
        writeln!(
            f,
            "weight memory    {} words ({} B)",
            c.weight_depth,
            c.weight_depth * c.weight_word_bytes()
        )?;
        writeln!(
            f,
            "activation mem.  {} words ({} B)",
            c.act_depth,
            c.act_depth * c.act_word_bytes()
        )?;
        writeln!(
            f,
            "result memory    {} words ({} B)",
            c.result_depth,
            c.result_depth * c.result_word_bytes()
        )?;
        writeln!(f, "largest M        {}", c.max_m)?;
        writeln!(f, "largest K        {}", crate::gemm::max_k(c))?;
        writeln!(f, "clock            {:.3} MHz", c.clock_hz as f64 / 1e6)?;
        write!(f, "frame timeout    {} cycles", c.frame_timeout_cycles)
    }
}

/// The STATUS block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    /// A valid layer is configured.
    pub configured: bool,
    /// Free-running cycle counter (wraps at 2^32).
    pub cycle_counter: u32,
    /// Cycles of the last RUN (0 after RESET).
    pub last_run_cycles: u32,
}

impl DeviceStatus {
    /// Decodes a STATUS reply payload.
    pub fn parse(p: &[u8]) -> Result<DeviceStatus, DriverError> {
        if p.len() != STATUS_LEN || p[0] > 1 || p[1..4] != [0, 0, 0] {
            return Err(DriverError::Protocol {
                command: "STATUS",
                detail: format!("malformed STATUS block {p:02x?}"),
            });
        }
        Ok(DeviceStatus {
            configured: p[0] == 1,
            cycle_counter: u32_le(&p[4..8]),
            last_run_cycles: u32_le(&p[8..12]),
        })
    }
}

/// What the driver spent, summed over all commands since the client connected.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Link time of WRITE and READ exchanges (requests, replies, retries), in device cycles;
    /// for a backend without a cycle counter, the bytes moved (a link carries at most one
    /// byte per cycle, so this is a lower bound).
    pub transfer_cycles: u64,
    /// Bytes moved by WRITE and READ exchanges, both directions, retries included.
    pub transfer_bytes: u64,
    /// Sum of the cycle counts the device reported for its RUNs.
    pub run_cycles: u64,
    /// Successful RUNs.
    pub runs: u64,
    /// Commands completed successfully.
    pub commands: u64,
    /// Requests sent again after a damaged or missing reply, `BAD_CRC` or `TRUNCATED`: the
    /// number of failed attempts recovered from. A failed attempt may have been a WRITE whose
    /// damaged header stored words at the wrong place (the device stores words before it checks
    /// the CRC), so callers that keep data in device memory rewrite it when this count moves
    /// (as [`run_gemm`](crate::gemm::run_gemm) and [`run_mlp`](crate::mlp::run_mlp) do).
    pub retries: u64,
    /// Wall-clock time spent inside commands, in seconds.
    pub wall_seconds: f64,
}

impl Stats {
    /// What was spent since the `earlier` snapshot of the same client.
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            transfer_cycles: self.transfer_cycles - earlier.transfer_cycles,
            transfer_bytes: self.transfer_bytes - earlier.transfer_bytes,
            run_cycles: self.run_cycles - earlier.run_cycles,
            runs: self.runs - earlier.runs,
            commands: self.commands - earlier.commands,
            retries: self.retries - earlier.retries,
            wall_seconds: self.wall_seconds - earlier.wall_seconds,
        }
    }
}

/// How long a reply's payload may be when its status is OK.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Exactly this many bytes.
    Exact(usize),
    /// Any length up to this many bytes.
    AtMost(usize),
}

impl Expect {
    fn accepts(self, len: usize) -> bool {
        match self {
            Expect::Exact(n) => len == n,
            Expect::AtMost(n) => len <= n,
        }
    }

    fn max(self) -> usize {
        match self {
            Expect::Exact(n) | Expect::AtMost(n) => n,
        }
    }
}

/// Why one attempt at a command failed.
enum Failure {
    /// Worth sending the request again; the text says what happened.
    Retry(Retryable),
    /// Resending cannot help.
    Fatal(DriverError),
}

/// A failure that a resend may cure.
enum Retryable {
    Link(LinkError),
    BadReply(String),
    Status(Status),
}

impl From<LinkError> for Failure {
    fn from(e: LinkError) -> Failure {
        match e {
            LinkError::Io(_) => Failure::Fatal(DriverError::Link {
                command: "link",
                attempts: 1,
                source: e,
            }),
            _ => Failure::Retry(Retryable::Link(e)),
        }
    }
}

/// A trimac device reached through a [`ByteStream`], spoken to with the command protocol.
pub struct Accelerator<S: ByteStream> {
    stream: S,
    info: DeviceInfo,
    stats: Stats,
    bytes_moved: u64,
    /// `(m, k_tiles, n_tiles)` of the layer configured last, for the RUN timeout.
    layer: Option<(usize, usize, usize)>,
}

impl<S: ByteStream> Accelerator<S> {
    /// Connects: reads INFO, refuses an unknown protocol version, and, when `expected` is given,
    /// a device whose array shape differs from it. Memory depths, clock and timeouts are taken
    /// from the device's report.
    pub fn connect(stream: S, expected: Option<&Config>) -> Result<Accelerator<S>, DriverError> {
        let bootstrap = expected.cloned().unwrap_or_default();
        let mut acc = Accelerator {
            stream,
            info: DeviceInfo {
                protocol_version: PROTOCOL_VERSION,
                psum_bits: 0,
                config: bootstrap,
            },
            stats: Stats::default(),
            bytes_moved: 0,
            layer: None,
        };
        let info = acc.query_info()?;
        if let Some(cfg) = expected {
            info.check_shape(cfg)?;
        }
        acc.info = info;
        Ok(acc)
    }

    /// The device information read at connection.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The device configuration read at connection.
    pub fn config(&self) -> &Config {
        &self.info.config
    }

    /// Statistics since connection.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// The underlying stream.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The underlying stream, mutably (e.g. to schedule faults in tests).
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Gives the stream back.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Sends INFO and decodes the reply (without checking the shape).
    pub fn query_info(&mut self) -> Result<DeviceInfo, DriverError> {
        let p = self.command(Opcode::Info, &[], Expect::AtMost(MAX_INFO_LEN))?;
        DeviceInfo::parse(&p)
    }

    /// Sends RESET: the device forgets the configured layer; memories keep their contents.
    pub fn reset(&mut self) -> Result<(), DriverError> {
        self.command(Opcode::Reset, &[], Expect::Exact(0))?;
        self.layer = None;
        Ok(())
    }

    /// Sends STATUS.
    pub fn status(&mut self) -> Result<DeviceStatus, DriverError> {
        let p = self.command(Opcode::Status, &[], Expect::Exact(STATUS_LEN))?;
        DeviceStatus::parse(&p)
    }

    /// Writes whole words starting at word address `addr`, split into frames of at most
    /// [`MAX_FRAME_PAYLOAD`] bytes. Checks memory id, word size and range before sending.
    pub fn write(&mut self, mem: Memory, addr: usize, bytes: &[u8]) -> Result<(), DriverError> {
        if mem == Memory::Results {
            return Err(DriverError::Shape(
                "the result memory is read-only: WRITE takes weights or activations".into(),
            ));
        }
        let wb = self.word_bytes(mem);
        if !bytes.len().is_multiple_of(wb) {
            return Err(DriverError::Shape(format!(
                "WRITE of {} bytes to {} memory is not a whole number of {wb}-byte words",
                bytes.len(),
                mem_name(mem)
            )));
        }
        self.check_range(mem, addr, bytes.len() / wb)?;
        let per_frame = (MAX_FRAME_PAYLOAD / wb).max(1);
        for (i, chunk) in bytes.chunks(per_frame * wb).enumerate() {
            let a = addr + i * per_frame;
            let mut p = Vec::with_capacity(3 + chunk.len());
            p.push(mem as u8);
            p.extend_from_slice(&(a as u16).to_le_bytes());
            p.extend_from_slice(chunk);
            self.command(Opcode::Write, &p, Expect::Exact(0))?;
        }
        Ok(())
    }

    /// Reads `words` words starting at word address `addr`, split into frames whose replies
    /// carry at most [`MAX_FRAME_PAYLOAD`] bytes. Returns the words' bytes in address order.
    pub fn read(&mut self, mem: Memory, addr: usize, words: usize) -> Result<Vec<u8>, DriverError> {
        self.check_range(mem, addr, words)?;
        let wb = self.word_bytes(mem);
        let per_frame = (MAX_FRAME_PAYLOAD / wb).max(1);
        let mut out = Vec::with_capacity(words * wb);
        let mut done = 0;
        while done < words {
            let count = per_frame.min(words - done);
            let a = addr + done;
            let mut p = Vec::with_capacity(READ_LEN);
            p.push(mem as u8);
            p.extend_from_slice(&(a as u16).to_le_bytes());
            p.extend_from_slice(&(count as u16).to_le_bytes());
            out.extend(self.command(Opcode::Read, &p, Expect::Exact(count * wb))?);
            done += count;
        }
        Ok(out)
    }

    /// Checks `layer` against the device's limits, then sends CONFIGURE.
    pub fn configure(&mut self, layer: &LayerDescriptor) -> Result<(), DriverError> {
        layer.check(self.config())?;
        self.layer = None;
        self.command(Opcode::Configure, &layer.encode(), Expect::Exact(0))?;
        self.layer = Some((
            layer.m as usize,
            layer.k_tiles as usize,
            layer.n_tiles as usize,
        ));
        Ok(())
    }

    /// Sends RUN and returns the cycles the device reports for the run.
    pub fn run(&mut self) -> Result<u64, DriverError> {
        let p = self.command(Opcode::Run, &[], Expect::Exact(RUN_REPLY_LEN))?;
        let cycles = u32_le(&p) as u64;
        self.stats.run_cycles += cycles;
        self.stats.runs += 1;
        Ok(cycles)
    }

    fn word_bytes(&self, mem: Memory) -> usize {
        let c = self.config();
        match mem {
            Memory::Weights => c.weight_word_bytes(),
            Memory::Activations => c.act_word_bytes(),
            Memory::Results => c.result_word_bytes(),
        }
    }

    fn check_range(&self, mem: Memory, addr: usize, words: usize) -> Result<(), DriverError> {
        let c = self.config();
        let depth = match mem {
            Memory::Weights => c.weight_depth,
            Memory::Activations => c.act_depth,
            Memory::Results => c.result_depth,
        };
        if addr + words > depth {
            return Err(DriverError::Capacity(format!(
                "words {addr}..{} are outside the {} memory ({depth} words)",
                addr + words,
                mem_name(mem)
            )));
        }
        Ok(())
    }

    /// Idle wait for a command's reply, in device cycles.
    fn idle_cycles(&self, op: Opcode, payload_len: usize, reply_len: usize) -> u64 {
        let c = self.config();
        let base = 4 * c.frame_timeout_cycles as u64 + (payload_len + reply_len) as u64 + 64;
        match (op, self.layer) {
            (Opcode::Run, Some((m, kt, nt))) => 2 * c.run_cycles(m, kt, nt) + base,
            _ => base,
        }
    }

    /// One command with retries; returns the OK reply's payload. Updates the statistics.
    fn command(
        &mut self,
        op: Opcode,
        payload: &[u8],
        expect: Expect,
    ) -> Result<Vec<u8>, DriverError> {
        let start = Instant::now();
        let cycles0 = self.stream.cycles();
        let bytes0 = self.bytes_moved;
        let result = self.with_retries(op, payload, expect);
        self.stats.wall_seconds += start.elapsed().as_secs_f64();
        if matches!(op, Opcode::Write | Opcode::Read) {
            let moved = self.bytes_moved - bytes0;
            self.stats.transfer_bytes += moved;
            self.stats.transfer_cycles += match (cycles0, self.stream.cycles()) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => moved,
            };
        }
        if result.is_ok() {
            self.stats.commands += 1;
        }
        result
    }

    fn with_retries(
        &mut self,
        op: Opcode,
        payload: &[u8],
        expect: Expect,
    ) -> Result<Vec<u8>, DriverError> {
        let request = frame(REQUEST_SYNC, op as u8, payload);
        let idle = self.idle_cycles(op, payload.len(), expect.max());
        let command = opcode_name(op);
        let mut last = None;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                self.stats.retries += 1;
                self.drain(command)?;
            }
            match self.exchange(&request, expect, idle) {
                Ok(p) => return Ok(p),
                Err(Failure::Fatal(e)) => return Err(with_command(e, command)),
                Err(Failure::Retry(r)) => last = Some(r),
            }
        }
        Err(give_up(command, last))
    }

    /// Sends the request once and reads one reply.
    fn exchange(&mut self, request: &[u8], expect: Expect, idle: u64) -> Result<Vec<u8>, Failure> {
        self.stream.send(request)?;
        self.bytes_moved += request.len() as u64;
        let (status, payload) = self.read_reply(expect, idle)?;
        match Status::from_u8(status) {
            Some(Status::Ok) => Ok(payload),
            Some(s @ (Status::BadCrc | Status::Truncated)) => {
                Err(Failure::Retry(Retryable::Status(s)))
            }
            Some(s) => Err(Failure::Fatal(DriverError::Status {
                command: "",
                status: s,
            })),
            None => Err(Failure::Fatal(DriverError::Protocol {
                command: "",
                detail: format!("reply carries unknown status 0x{status:02x}"),
            })),
        }
    }

    /// Receives exactly `n` bytes (a backend that hands out another count is an I/O error).
    fn recv(&mut self, n: usize, idle: u64) -> Result<Vec<u8>, LinkError> {
        let b = self.stream.recv(n, idle)?;
        self.bytes_moved += b.len() as u64;
        if b.len() != n {
            return Err(LinkError::Io(format!(
                "the `{}` backend returned {} byte(s) when asked for {n}",
                self.stream.backend(),
                b.len()
            )));
        }
        Ok(b)
    }

    /// Reads one reply: skips bytes up to the sync byte, then header, payload and CRC.
    /// Returns the status byte and the payload once the CRC matches.
    fn read_reply(&mut self, expect: Expect, idle: u64) -> Result<(u8, Vec<u8>), Failure> {
        let mut skipped = 0;
        while self.recv(1, idle)?[0] != REPLY_SYNC {
            skipped += 1;
            if skipped > MAX_SYNC_SKIP {
                return Err(bad_reply(format!(
                    "no reply sync byte 0x{REPLY_SYNC:02x} within {MAX_SYNC_SKIP} bytes"
                )));
            }
        }
        let header = self.recv(3, idle)?;
        let status = header[0];
        let len = u16::from_le_bytes([header[1], header[2]]) as usize;
        let plausible = if status == Status::Ok as u8 {
            expect.accepts(len)
        } else {
            len == 0
        };
        if !plausible {
            return Err(bad_reply(format!(
                "reply with status 0x{status:02x} announces {len} payload bytes"
            )));
        }
        let rest = self.recv(len + 2, idle)?;
        let (payload, crc) = rest.split_at(len);
        let mut covered = header;
        covered.extend_from_slice(payload);
        if crc16(&covered) != u16::from_le_bytes([crc[0], crc[1]]) {
            return Err(bad_reply("reply CRC mismatch".into()));
        }
        Ok((status, payload.to_vec()))
    }

    /// Throws away whatever the device still sends, until it has been silent for longer than
    /// its own frame timeout (so it is also back to waiting for a sync byte).
    fn drain(&mut self, command: &'static str) -> Result<(), DriverError> {
        let quiet = 2 * self.config().frame_timeout_cycles as u64 + 64;
        for _ in 0..MAX_DRAIN {
            match self.recv(1, quiet) {
                Ok(_) => {}
                Err(LinkError::Io(e)) => {
                    return Err(DriverError::Link {
                        command,
                        attempts: 1,
                        source: LinkError::Io(e),
                    })
                }
                Err(_) => return Ok(()),
            }
        }
        Err(DriverError::Protocol {
            command,
            detail: format!("device kept sending: drained {MAX_DRAIN} stray bytes"),
        })
    }
}

fn bad_reply(detail: String) -> Failure {
    Failure::Retry(Retryable::BadReply(detail))
}

/// Fills in the command name of an error built without it.
fn with_command(e: DriverError, command: &'static str) -> DriverError {
    match e {
        DriverError::Status { status, .. } => DriverError::Status { command, status },
        DriverError::Protocol { detail, .. } => DriverError::Protocol { command, detail },
        DriverError::Link {
            attempts, source, ..
        } => DriverError::Link {
            command,
            attempts,
            source,
        },
        other => other,
    }
}

/// The error after every attempt failed.
fn give_up(command: &'static str, last: Option<Retryable>) -> DriverError {
    match last {
        Some(Retryable::Link(source)) => DriverError::Link {
            command,
            attempts: MAX_ATTEMPTS,
            source,
        },
        Some(Retryable::Status(s)) => DriverError::Protocol {
            command,
            detail: format!(
                "device replied {} ({}) to all {MAX_ATTEMPTS} attempts: the link is too noisy",
                status_name(s),
                s.describe()
            ),
        },
        Some(Retryable::BadReply(d)) => DriverError::Protocol {
            command,
            detail: format!("{d} (after {MAX_ATTEMPTS} attempts)"),
        },
        None => DriverError::Protocol {
            command,
            detail: "no attempt was made".into(),
        },
    }
}

fn info_error(detail: &str) -> DriverError {
    DriverError::Protocol {
        command: "INFO",
        detail: detail.into(),
    }
}

/// Human name of a memory, for messages.
pub fn mem_name(mem: Memory) -> &'static str {
    match mem {
        Memory::Weights => "weight",
        Memory::Activations => "activation",
        Memory::Results => "result",
    }
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "device" that answers nothing but an endless stream of `byte`.
    struct Babbler {
        byte: u8,
    }

    impl ByteStream for Babbler {
        fn send(&mut self, _bytes: &[u8]) -> Result<(), LinkError> {
            Ok(())
        }
        fn recv(&mut self, n: usize, _idle: u64) -> Result<Vec<u8>, LinkError> {
            Ok(vec![self.byte; n])
        }
        fn cycles(&self) -> Option<u64> {
            None
        }
        fn backend(&self) -> &'static str {
            "babbler"
        }
    }

    fn info() -> DeviceInfo {
        DeviceInfo {
            protocol_version: PROTOCOL_VERSION,
            psum_bits: 16,
            config: Config::new(8, 8).unwrap(),
        }
    }

    #[test]
    fn info_round_trips_and_is_validated() {
        let i = info();
        assert_eq!(i.encode().len(), INFO_LEN);
        assert_eq!(DeviceInfo::parse(&i.encode()).unwrap(), i);
        let mut bad = i.encode();
        bad[2] = 6; // 6 columns: not a multiple of 4
        assert!(DeviceInfo::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("invalid configuration"));
        assert!(DeviceInfo::parse(&i.encode()[..27]).is_err());
        assert!(DeviceInfo::parse(&[]).is_err());
    }

    #[test]
    fn a_babbling_device_is_refused_in_bounded_time() {
        for byte in [0x00, REPLY_SYNC] {
            let err = Accelerator::connect(Babbler { byte }, None).err().unwrap();
            assert!(
                matches!(
                    err,
                    DriverError::Protocol {
                        command: "INFO",
                        ..
                    }
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn stats_since_subtracts() {
        let a = Stats {
            transfer_cycles: 10,
            runs: 2,
            wall_seconds: 1.5,
            ..Stats::default()
        };
        let b = Stats {
            transfer_cycles: 25,
            runs: 3,
            wall_seconds: 2.0,
            ..Stats::default()
        };
        let d = b.since(&a);
        assert_eq!((d.transfer_cycles, d.runs, d.wall_seconds), (15, 1, 0.5));
    }

    #[test]
    fn status_block_is_checked() {
        let mut p = vec![1, 0, 0, 0];
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(&9u32.to_le_bytes());
        let s = DeviceStatus::parse(&p).unwrap();
        assert!(s.configured && s.cycle_counter == 7 && s.last_run_cycles == 9);
        p[1] = 1;
        assert!(DeviceStatus::parse(&p).is_err());
    }
}
