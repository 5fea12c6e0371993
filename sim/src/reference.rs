//! The reference device: the golden model of the whole device behind its real byte protocol.
//!
//! [`ReferenceDevice`] follows `docs/protocol.md` to the letter (framing, CRC, every command,
//! every error path and its check order) and computes layers with the exact integer semantics
//! of [`crate::golden`]. It is the executable specification the RTL is differentially tested
//! against, so it never panics, whatever bytes it is fed.
//!
//! Time is modelled by a cycle counter: one cycle per byte received, one per byte sent, the
//! modelled duration ([`Config::run_cycles`]) of every RUN, and `frame_timeout_cycles` for every
//! frame abandoned because it stopped arriving.

use crate::golden::Requant;
use crate::stream::{ByteStream, LinkError};
use std::collections::VecDeque;
use trimac_hdl::config::PSUM_BITS;
use trimac_hdl::protocol::{
    self, code, Memory, Opcode, Status, CONFIGURE_LEN, FLAG_INT8_OUT, FLAG_RELU, MAX_SHIFT,
    PROTOCOL_VERSION, READ_LEN, REPLY_SYNC, REQUEST_SYNC, WRITE_HEADER_LEN,
};
use trimac_hdl::Config;

/// Where the receive state machine is within a request frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Outside a frame: waiting for the sync byte.
    Idle,
    /// Sync seen; the opcode byte is next.
    Opcode,
    /// The low length byte is next.
    LenLo,
    /// The high length byte is next.
    LenHi,
    /// Payload bytes are arriving.
    Payload,
    /// The low CRC byte is next.
    CrcLo,
    /// The high CRC byte is next; it completes the frame.
    CrcHi,
}

/// Progress of a WRITE whose data is stored while it arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteProgress {
    /// The 3 header bytes have not all arrived yet.
    Pending,
    /// The header failed its checks: nothing is stored and the reply is this status.
    Rejected(Status),
    /// The header passed: each complete data word is stored at `addr + index`.
    Accepted {
        /// Target memory (weights or activations).
        mem: Memory,
        /// Word address of the first data word.
        addr: usize,
        /// At least one weight word held the invalid code and was not stored.
        bad_value: bool,
    },
}

/// The frame being received.
#[derive(Debug)]
struct Receiver {
    phase: Phase,
    opcode: u8,
    len: usize,
    payload: Vec<u8>,
    crc: u16,
    crc_lo: u8,
    write: WriteProgress,
}

impl Receiver {
    fn new() -> Receiver {
        Receiver {
            phase: Phase::Idle,
            opcode: 0,
            len: 0,
            payload: Vec::new(),
            crc: protocol::CRC_INIT,
            crc_lo: 0,
            write: WriteProgress::Pending,
        }
    }

    /// Starts a new frame after its sync byte.
    fn start(&mut self) {
        self.phase = Phase::Opcode;
        self.opcode = 0;
        self.len = 0;
        self.payload.clear();
        self.crc = protocol::CRC_INIT;
        self.crc_lo = 0;
        self.write = WriteProgress::Pending;
    }

    /// True between a sync byte and the last CRC byte.
    fn in_frame(&self) -> bool {
        self.phase != Phase::Idle
    }

    fn is_write(&self) -> bool {
        self.opcode == Opcode::Write as u8
    }
}

/// A validated layer descriptor (all addresses in words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layer {
    m: usize,
    k_tiles: usize,
    n_tiles: usize,
    act_base: usize,
    wt_base: usize,
    out_base: usize,
    requant: Requant,
    int8_out: bool,
}

impl Layer {
    /// Decodes and checks a CONFIGURE payload exactly as docs/protocol.md lists.
    fn parse(cfg: &Config, p: &[u8]) -> Result<Layer, Status> {
        if p.len() != CONFIGURE_LEN {
            return Err(Status::BadLength);
        }
        let u16_at = |i: usize| u16::from_le_bytes([p[i], p[i + 1]]) as u64;
        let (m, k_tiles, n_tiles) = (u16_at(0), u16_at(2), u16_at(4));
        let (act_base, wt_base, out_base) = (u16_at(6), u16_at(8), u16_at(10));
        let (mult, shift, flags) = (u16_at(12) as u16, p[14], p[15]);
        let int8_out = flags & FLAG_INT8_OUT != 0;
        let relu = flags & FLAG_RELU != 0;
        let act_end = act_base + m * k_tiles;
        let out_end = out_base + m * n_tiles;
        let out_depth = if int8_out {
            cfg.act_depth
        } else {
            cfg.result_depth
        };
        let rejected = m == 0
            || m > cfg.max_m as u64
            || k_tiles == 0
            || n_tiles == 0
            || act_end > cfg.act_depth as u64
            || wt_base + n_tiles * k_tiles * cfg.rows as u64 > cfg.weight_depth as u64
            || shift > MAX_SHIFT
            || flags & !(FLAG_INT8_OUT | FLAG_RELU) != 0
            || (relu && !int8_out)
            || (int8_out && cfg.rows != cfg.cols)
            || out_end > out_depth as u64
            || (int8_out && out_base < act_end && act_base < out_end);
        if rejected {
            return Err(Status::OutOfRange);
        }
        Ok(Layer {
            m: m as usize,
            k_tiles: k_tiles as usize,
            n_tiles: n_tiles as usize,
            act_base: act_base as usize,
            wt_base: wt_base as usize,
            out_base: out_base as usize,
            requant: Requant { mult, shift, relu },
            int8_out,
        })
    }
}

/// The golden model of the whole device behind its byte protocol (backend name `cpu`).
///
/// Bytes sent to it go through the same receive state machine as the hardware's; every
/// completed frame queues exactly one reply, which [`ByteStream::recv`] hands out.
#[derive(Debug)]
pub struct ReferenceDevice {
    cfg: Config,
    /// `weight_depth * cols` decoded weights in {-1, 0, 1}, word-major.
    weights: Vec<i8>,
    /// `act_depth * rows` activations, word-major.
    acts: Vec<i8>,
    /// `result_depth * cols` results, word-major.
    results: Vec<i32>,
    layer: Option<Layer>,
    last_run_cycles: u32,
    cycles: u64,
    rx: Receiver,
    tx: VecDeque<u8>,
}

impl ReferenceDevice {
    /// A device with configuration `cfg`, all memories zero and no layer configured.
    ///
    /// # Panics
    /// If `cfg.validate()` fails.
    pub fn new(cfg: &Config) -> ReferenceDevice {
        if let Err(e) = cfg.validate() {
            panic!("invalid trimac configuration: {e}");
        }
        ReferenceDevice {
            cfg: cfg.clone(),
            weights: vec![0; cfg.weight_depth * cfg.cols],
            acts: vec![0; cfg.act_depth * cfg.rows],
            results: vec![0; cfg.result_depth * cfg.cols],
            layer: None,
            last_run_cycles: 0,
            cycles: 0,
            rx: Receiver::new(),
            tx: VecDeque::new(),
        }
    }

    /// Depth in words and link bytes per word of a memory.
    fn geometry(&self, mem: Memory) -> (usize, usize) {
        match mem {
            Memory::Weights => (self.cfg.weight_depth, self.cfg.weight_word_bytes()),
            Memory::Activations => (self.cfg.act_depth, self.cfg.act_word_bytes()),
            Memory::Results => (self.cfg.result_depth, self.cfg.result_word_bytes()),
        }
    }

    /// Queues one reply frame for the host.
    fn queue_reply(&mut self, status: Status, payload: &[u8]) {
        self.tx
            .extend(protocol::frame(REPLY_SYNC, status as u8, payload));
    }

    // ----- receive state machine -------------------------------------------------------------

    /// Takes one byte from the host.
    fn receive(&mut self, b: u8) {
        self.cycles = self.cycles.wrapping_add(1);
        let rx = &mut self.rx;
        // The CRC covers opcode, length and payload.
        if matches!(
            rx.phase,
            Phase::Opcode | Phase::LenLo | Phase::LenHi | Phase::Payload
        ) {
            rx.crc = protocol::crc16_update(rx.crc, b);
        }
        match rx.phase {
            Phase::Idle => {
                if b == REQUEST_SYNC {
                    rx.start();
                }
            }
            Phase::Opcode => {
                rx.opcode = b;
                rx.phase = Phase::LenLo;
            }
            Phase::LenLo => {
                rx.len = b as usize;
                rx.phase = Phase::LenHi;
            }
            Phase::LenHi => {
                rx.len |= (b as usize) << 8;
                rx.phase = if rx.len == 0 {
                    Phase::CrcLo
                } else {
                    Phase::Payload
                };
            }
            Phase::Payload => {
                rx.payload.push(b);
                if rx.payload.len() == rx.len {
                    rx.phase = Phase::CrcLo;
                }
                if rx.is_write() {
                    self.write_progress();
                }
            }
            Phase::CrcLo => {
                rx.crc_lo = b;
                rx.phase = Phase::CrcHi;
            }
            Phase::CrcHi => {
                rx.phase = Phase::Idle;
                let crc_ok = u16::from_le_bytes([rx.crc_lo, b]) == rx.crc;
                self.complete_frame(crc_ok);
            }
        }
    }

    /// Abandons a partially received frame after `frame_timeout_cycles` without bytes.
    fn truncate(&mut self) {
        self.cycles = self
            .cycles
            .wrapping_add(u64::from(self.cfg.frame_timeout_cycles));
        self.rx.phase = Phase::Idle;
        self.queue_reply(Status::Truncated, &[]);
    }

    /// Advances a WRITE after one more payload byte: decides the header once it is complete,
    /// then stores every data word as soon as its last byte has arrived.
    fn write_progress(&mut self) {
        let got = self.rx.payload.len();
        if got == WRITE_HEADER_LEN {
            self.rx.write = self.check_write_header();
            return;
        }
        let WriteProgress::Accepted {
            mem,
            addr,
            bad_value,
        } = self.rx.write
        else {
            return;
        };
        let (_, wb) = self.geometry(mem);
        let data = got.saturating_sub(WRITE_HEADER_LEN);
        if data == 0 || !data.is_multiple_of(wb) {
            return;
        }
        let word = addr + data / wb - 1;
        let stored = self.store_word(mem, word, got - wb);
        self.rx.write = WriteProgress::Accepted {
            mem,
            addr,
            bad_value: bad_value || !stored,
        };
    }

    /// The WRITE header checks, in spec order, from the header and the frame's length.
    fn check_write_header(&self) -> WriteProgress {
        let p = &self.rx.payload;
        let mem = match Memory::from_u8(p[0]) {
            Some(m @ (Memory::Weights | Memory::Activations)) => m,
            _ => return WriteProgress::Rejected(Status::OutOfRange),
        };
        let addr = u16::from_le_bytes([p[1], p[2]]) as usize;
        let (depth, wb) = self.geometry(mem);
        let data = self.rx.len - WRITE_HEADER_LEN;
        if !data.is_multiple_of(wb) {
            return WriteProgress::Rejected(Status::BadLength);
        }
        if addr + data / wb > depth {
            return WriteProgress::Rejected(Status::OutOfRange);
        }
        WriteProgress::Accepted {
            mem,
            addr,
            bad_value: false,
        }
    }

    /// Stores the word whose link bytes start at payload offset `at`; returns false (storing
    /// nothing) for a weight word holding the invalid code.
    fn store_word(&mut self, mem: Memory, word: usize, at: usize) -> bool {
        match mem {
            Memory::Weights => {
                let cols = self.cfg.cols;
                let bytes = &self.rx.payload[at..at + self.cfg.weight_word_bytes()];
                let codes = || {
                    bytes
                        .iter()
                        .flat_map(|&b| (0..4).map(move |q| (b >> (2 * q)) & 3))
                };
                if codes().any(|c| c == code::INVALID) {
                    return false;
                }
                let dst = &mut self.weights[word * cols..(word + 1) * cols];
                for (w, c) in dst.iter_mut().zip(codes()) {
                    *w = protocol::decode_weight(c).unwrap_or(0);
                }
            }
            Memory::Activations => {
                let rows = self.cfg.rows;
                let src = &self.rx.payload[at..at + rows];
                let dst = &mut self.acts[word * rows..(word + 1) * rows];
                for (a, &b) in dst.iter_mut().zip(src) {
                    *a = b as i8;
                }
            }
            Memory::Results => return false,
        }
        true
    }

    // ----- command executor ------------------------------------------------------------------

    /// Checks a complete frame in spec order (CRC, opcode, command) and queues its reply.
    fn complete_frame(&mut self, crc_ok: bool) {
        let reply = if !crc_ok {
            Err(Status::BadCrc)
        } else {
            match Opcode::from_u8(self.rx.opcode) {
                None => Err(Status::UnknownOpcode),
                Some(op) => self.execute(op),
            }
        };
        match reply {
            Ok(payload) => self.queue_reply(Status::Ok, &payload),
            Err(status) => self.queue_reply(status, &[]),
        }
    }

    /// Carries out a command whose frame passed the CRC and opcode checks.
    fn execute(&mut self, op: Opcode) -> Result<Vec<u8>, Status> {
        let empty = self.rx.payload.is_empty();
        match op {
            Opcode::Info if empty => Ok(self.info()),
            Opcode::Reset if empty => {
                self.layer = None;
                self.last_run_cycles = 0;
                Ok(Vec::new())
            }
            Opcode::Status if empty => Ok(self.status()),
            Opcode::Run if empty => self.run(),
            Opcode::Info | Opcode::Reset | Opcode::Status | Opcode::Run => Err(Status::BadLength),
            Opcode::Write => self.finish_write(),
            Opcode::Read => self.read(),
            Opcode::Configure => {
                // A rejected CONFIGURE leaves no layer configured.
                let parsed = Layer::parse(&self.cfg, &self.rx.payload);
                self.layer = parsed.ok();
                parsed.map(|_| Vec::new())
            }
        }
    }

    fn info(&self) -> Vec<u8> {
        let c = &self.cfg;
        let mut p = vec![
            PROTOCOL_VERSION,
            c.rows as u8,
            c.cols as u8,
            PSUM_BITS as u8,
        ];
        for v in [c.weight_depth, c.act_depth, c.result_depth, c.max_m] {
            p.extend_from_slice(&(v as u32).to_le_bytes());
        }
        p.extend_from_slice(&c.clock_hz.to_le_bytes());
        p.extend_from_slice(&c.frame_timeout_cycles.to_le_bytes());
        p
    }

    fn status(&self) -> Vec<u8> {
        let mut p = vec![u8::from(self.layer.is_some()), 0, 0, 0];
        p.extend_from_slice(&(self.cycles as u32).to_le_bytes());
        p.extend_from_slice(&self.last_run_cycles.to_le_bytes());
        p
    }

    /// The status of a WRITE whose data words have all been handled while arriving.
    fn finish_write(&self) -> Result<Vec<u8>, Status> {
        if self.rx.payload.len() < WRITE_HEADER_LEN {
            return Err(Status::BadLength);
        }
        match self.rx.write {
            WriteProgress::Accepted {
                bad_value: false, ..
            } => Ok(Vec::new()),
            WriteProgress::Accepted {
                bad_value: true, ..
            } => Err(Status::BadValue),
            WriteProgress::Rejected(s) => Err(s),
            // Unreachable: the header is decided when its last byte arrives.
            WriteProgress::Pending => Err(Status::BadLength),
        }
    }

    fn read(&self) -> Result<Vec<u8>, Status> {
        let p = &self.rx.payload;
        if p.len() != READ_LEN {
            return Err(Status::BadLength);
        }
        let mem = Memory::from_u8(p[0]).ok_or(Status::OutOfRange)?;
        let addr = u16::from_le_bytes([p[1], p[2]]) as usize;
        let count = u16::from_le_bytes([p[3], p[4]]) as usize;
        let (depth, wb) = self.geometry(mem);
        if addr + count > depth || count * wb > u16::MAX as usize {
            return Err(Status::OutOfRange);
        }
        let mut out = Vec::with_capacity(count * wb);
        for word in addr..addr + count {
            self.encode_word(mem, word, &mut out);
        }
        Ok(out)
    }

    /// Appends the link bytes of one memory word.
    fn encode_word(&self, mem: Memory, word: usize, out: &mut Vec<u8>) {
        match mem {
            Memory::Weights => {
                let cols = self.cfg.cols;
                for quad in self.weights[word * cols..(word + 1) * cols].chunks(4) {
                    let byte = quad.iter().enumerate().fold(0u8, |acc, (q, &w)| {
                        acc | (protocol::encode_weight(w).unwrap_or(code::ZERO) << (2 * q))
                    });
                    out.push(byte);
                }
            }
            Memory::Activations => {
                let rows = self.cfg.rows;
                out.extend(
                    self.acts[word * rows..(word + 1) * rows]
                        .iter()
                        .map(|&a| a as u8),
                );
            }
            Memory::Results => {
                let cols = self.cfg.cols;
                for r in &self.results[word * cols..(word + 1) * cols] {
                    out.extend_from_slice(&r.to_le_bytes());
                }
            }
        }
    }

    fn run(&mut self) -> Result<Vec<u8>, Status> {
        let layer = self.layer.ok_or(Status::NotConfigured)?;
        self.compute(&layer);
        let cycles = self.cfg.run_cycles(layer.m, layer.k_tiles, layer.n_tiles);
        self.cycles = self.cycles.wrapping_add(cycles);
        self.last_run_cycles = cycles as u32;
        Ok(self.last_run_cycles.to_le_bytes().to_vec())
    }

    // ----- layer computer --------------------------------------------------------------------

    /// Computes a validated layer into result memory (int32) or activation memory (int8).
    fn compute(&mut self, l: &Layer) {
        let (rows, cols) = (self.cfg.rows, self.cfg.cols);
        let mut acc = vec![0i32; cols];
        for m in 0..l.m {
            for nt in 0..l.n_tiles {
                acc.fill(0);
                for kt in 0..l.k_tiles {
                    let a_word = l.act_base + m * l.k_tiles + kt;
                    let acts = &self.acts[a_word * rows..(a_word + 1) * rows];
                    let w_word0 = l.wt_base + (nt * l.k_tiles + kt) * rows;
                    for (i, &a) in acts.iter().enumerate() {
                        let w_word = w_word0 + i;
                        let ws = &self.weights[w_word * cols..(w_word + 1) * cols];
                        for (s, &w) in acc.iter_mut().zip(ws) {
                            *s = s.wrapping_add(i32::from(a) * i32::from(w));
                        }
                    }
                }
                self.store_outputs(l, l.out_base + m * l.n_tiles + nt, &acc);
            }
        }
    }

    /// Writes one output word's lanes.
    fn store_outputs(&mut self, l: &Layer, word: usize, acc: &[i32]) {
        let cols = self.cfg.cols;
        if l.int8_out {
            // INT8_OUT is only accepted on square arrays, so an activation word has `cols` lanes.
            let dst = &mut self.acts[word * cols..(word + 1) * cols];
            for (d, &s) in dst.iter_mut().zip(acc) {
                *d = l.requant.apply(s);
            }
        } else {
            self.results[word * cols..(word + 1) * cols].copy_from_slice(acc);
        }
    }
}

impl ByteStream for ReferenceDevice {
    /// Feeds every byte through the receive state machine; never fails.
    fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        for &b in bytes {
            self.receive(b);
        }
        Ok(())
    }

    /// Hands out `n` queued reply bytes. With too few queued and a frame half received, the
    /// device first times that frame out (queuing `TRUNCATED`); if still too few, nothing is
    /// consumed and the result is [`LinkError::Timeout`].
    fn recv(&mut self, n: usize, idle_cycles: u64) -> Result<Vec<u8>, LinkError> {
        if self.tx.len() < n && self.rx.in_frame() {
            self.truncate();
        }
        if self.tx.len() < n {
            return Err(LinkError::Timeout {
                missing: n - self.tx.len(),
                waited: format!("{idle_cycles} cycles"),
            });
        }
        self.cycles = self.cycles.wrapping_add(n as u64);
        Ok(self.tx.drain(..n).collect())
    }

    fn cycles(&self) -> Option<u64> {
        Some(self.cycles)
    }

    fn backend(&self) -> &'static str {
        "cpu"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::gemm;
    use proptest::prelude::*;

    const IDLE: u64 = 100_000;

    /// A 4x4 array with small memories, so range checks are cheap to reach.
    fn small() -> Config {
        Config {
            weight_depth: 64,
            act_depth: 32,
            result_depth: 16,
            max_m: 8,
            ..Config::new(4, 4).unwrap()
        }
    }

    /// Receives one reply frame and checks its framing; returns (status, payload).
    fn reply(dev: &mut ReferenceDevice) -> (u8, Vec<u8>) {
        let head = dev.recv(4, IDLE).expect("reply header");
        assert_eq!(head[0], REPLY_SYNC);
        let len = u16::from_le_bytes([head[2], head[3]]) as usize;
        let rest = dev.recv(len + 2, IDLE).expect("reply body");
        let mut whole = head.clone();
        whole.extend_from_slice(&rest[..len]);
        assert_eq!(protocol::frame(REPLY_SYNC, head[1], &rest[..len]), {
            let mut f = whole;
            f.extend_from_slice(&rest[len..]);
            f
        });
        (head[1], rest[..len].to_vec())
    }

    fn call(dev: &mut ReferenceDevice, op: u8, payload: &[u8]) -> (u8, Vec<u8>) {
        dev.send(&protocol::frame(REQUEST_SYNC, op, payload))
            .unwrap();
        reply(dev)
    }

    /// Sends a command and expects exactly this status with an empty payload.
    fn expect(dev: &mut ReferenceDevice, op: u8, payload: &[u8], status: Status) {
        let (s, p) = call(dev, op, payload);
        assert_eq!(s, status as u8, "opcode {op:#x} payload {payload:?}");
        if status != Status::Ok {
            assert!(p.is_empty());
        }
    }

    fn write_payload(mem: u8, addr: u16, data: &[u8]) -> Vec<u8> {
        let mut p = vec![mem];
        p.extend_from_slice(&addr.to_le_bytes());
        p.extend_from_slice(data);
        p
    }

    fn write(dev: &mut ReferenceDevice, mem: u8, addr: u16, data: &[u8]) -> u8 {
        call(dev, Opcode::Write as u8, &write_payload(mem, addr, data)).0
    }

    fn read_payload(mem: u8, addr: u16, count: u16) -> Vec<u8> {
        let mut p = vec![mem];
        p.extend_from_slice(&addr.to_le_bytes());
        p.extend_from_slice(&count.to_le_bytes());
        p
    }

    fn read(dev: &mut ReferenceDevice, mem: u8, addr: u16, count: u16) -> Vec<u8> {
        let (s, p) = call(dev, Opcode::Read as u8, &read_payload(mem, addr, count));
        assert_eq!(s, Status::Ok as u8);
        p
    }

    #[allow(clippy::too_many_arguments)]
    fn descriptor(
        m: u16,
        kt: u16,
        nt: u16,
        act: u16,
        wt: u16,
        out: u16,
        mult: u16,
        shift: u8,
        flags: u8,
    ) -> Vec<u8> {
        let mut d = Vec::new();
        for v in [m, kt, nt, act, wt, out, mult] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.extend_from_slice(&[shift, flags]);
        d
    }

    fn info_of(cfg: &Config) -> Vec<u8> {
        let mut p = vec![1, cfg.rows as u8, cfg.cols as u8, 16];
        for v in [
            cfg.weight_depth as u32,
            cfg.act_depth as u32,
            cfg.result_depth as u32,
            cfg.max_m as u32,
            cfg.clock_hz,
            cfg.frame_timeout_cycles,
        ] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p
    }

    fn assert_alive(dev: &mut ReferenceDevice, cfg: &Config) {
        assert_eq!(
            call(dev, Opcode::Info as u8, &[]),
            (Status::Ok as u8, info_of(cfg))
        );
    }

    /// Host-side layout: weight words for `w` (`[k, n]` row-major), zero padded to whole tiles.
    fn pack_weights(cfg: &Config, w: &[i8], k: usize, n: usize) -> Vec<u8> {
        let (kt, nt) = (k.div_ceil(cfg.rows), n.div_ceil(cfg.cols));
        let mut out = Vec::new();
        for t in 0..nt {
            for s in 0..kt {
                for i in 0..cfg.rows {
                    let mut word = vec![0u8; cfg.cols / 4];
                    for j in 0..cfg.cols {
                        let (kk, nn) = (s * cfg.rows + i, t * cfg.cols + j);
                        let v = if kk < k && nn < n { w[kk * n + nn] } else { 0 };
                        word[j / 4] |= protocol::encode_weight(v).unwrap() << (2 * (j % 4));
                    }
                    out.extend(word);
                }
            }
        }
        out
    }

    /// Host-side layout: activation words for `x` (`[m, k]` row-major), zero padded.
    fn pack_acts(cfg: &Config, x: &[i8], m: usize, k: usize) -> Vec<u8> {
        let kt = k.div_ceil(cfg.rows);
        let mut out = Vec::new();
        for r in 0..m {
            for s in 0..kt {
                for i in 0..cfg.rows {
                    let kk = s * cfg.rows + i;
                    out.push(if kk < k { x[r * k + kk] as u8 } else { 0 });
                }
            }
        }
        out
    }

    /// Unpacks result words (`n_tiles` per row) into `[m, n]` row-major int32.
    fn unpack_results(cfg: &Config, bytes: &[u8], m: usize, n: usize) -> Vec<i32> {
        let nt = n.div_ceil(cfg.cols);
        let lanes: Vec<i32> = bytes
            .chunks(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut y = Vec::new();
        for r in 0..m {
            for nn in 0..n {
                y.push(lanes[(r * nt + nn / cfg.cols) * cfg.cols + nn % cfg.cols]);
            }
        }
        y
    }

    fn status_block(dev: &mut ReferenceDevice) -> (u8, u32, u32) {
        let (s, p) = call(dev, Opcode::Status as u8, &[]);
        assert_eq!((s, p.len()), (Status::Ok as u8, protocol::STATUS_LEN));
        assert_eq!(&p[1..4], &[0, 0, 0]);
        let u32_at = |i: usize| u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
        (p[0], u32_at(4), u32_at(8))
    }

    #[test]
    fn info_reports_the_configuration() {
        for cfg in [small(), Config::new(8, 16).unwrap()] {
            let mut dev = ReferenceDevice::new(&cfg);
            assert_eq!(dev.backend(), "cpu");
            let (s, p) = call(&mut dev, Opcode::Info as u8, &[]);
            assert_eq!(s, Status::Ok as u8);
            assert_eq!(p.len(), protocol::INFO_LEN);
            assert_eq!(p, info_of(&cfg));
        }
    }

    #[test]
    #[should_panic(expected = "invalid trimac configuration")]
    fn new_rejects_an_invalid_config() {
        let cfg = Config { cols: 6, ..small() };
        ReferenceDevice::new(&cfg);
    }

    #[test]
    fn bytes_outside_a_frame_are_discarded() {
        let cfg = small();
        let mut dev = ReferenceDevice::new(&cfg);
        dev.send(&[0x00, REPLY_SYNC, 0xFF, 0x01]).unwrap();
        assert!(dev.recv(1, IDLE).is_err());
        assert_alive(&mut dev, &cfg);
    }

    #[test]
    fn memories_start_zero_and_round_trip() {
        let cfg = Config::new(4, 8).unwrap();
        let mut dev = ReferenceDevice::new(&cfg);
        assert_eq!(read(&mut dev, 0, 0, 3), vec![0; 6]);
        assert_eq!(read(&mut dev, 1, 0, 3), vec![0; 12]);
        assert_eq!(read(&mut dev, 2, 4094, 2), vec![0; 64]);
        // Every valid code in every position (0b10 never appears: bytes from {0,1,3} codes).
        let wts: Vec<u8> = (0..40u32)
            .map(|i| {
                (0..4).fold(0u8, |b, q| {
                    b | ([0u8, 1, 3][((i * 7 + q * 5) % 3) as usize] << (2 * q))
                })
            })
            .collect();
        assert_eq!(write(&mut dev, 0, 100, &wts), Status::Ok as u8);
        assert_eq!(read(&mut dev, 0, 100, 20), wts);
        let acts: Vec<u8> = (0..=255u8).collect();
        assert_eq!(write(&mut dev, 1, 4032, &acts), Status::Ok as u8);
        assert_eq!(read(&mut dev, 1, 4032, 64), acts);
        assert_eq!(read(&mut dev, 1, 4031, 1), vec![0; 4]);
        // An empty WRITE and READ are fine.
        assert_eq!(write(&mut dev, 1, 4096, &[]), Status::Ok as u8);
        assert_eq!(read(&mut dev, 2, 4096, 0), Vec::<u8>::new());
    }

    #[test]
    fn weight_packing_selects_the_column() {
        // Byte b, column 4b+q in bits [2q+1:2q]: a single +1 (code 01) in byte 1 bits [3:2]
        // is column 5, and a -1 (code 11) in byte 0 bits [7:6] is column 3.
        let cfg = Config::new(4, 8).unwrap();
        let mut dev = ReferenceDevice::new(&cfg);
        let mut w = vec![0u8; 8];
        w[2 * 2 + 1] = 0b01 << 2; // row 2: column 5 = +1
        w[2 * 2] = 0b11 << 6; // row 2: column 3 = -1
        assert_eq!(write(&mut dev, 0, 0, &w), Status::Ok as u8);
        assert_eq!(write(&mut dev, 1, 0, &[0, 0, 9, 0]), Status::Ok as u8);
        let d = descriptor(1, 1, 1, 0, 0, 0, 0, 0, 0);
        expect(&mut dev, Opcode::Configure as u8, &d, Status::Ok);
        expect(&mut dev, Opcode::Run as u8, &[], Status::Ok);
        let y = unpack_results(&cfg, &read(&mut dev, 2, 0, 1), 1, 8);
        assert_eq!(y, vec![0, 0, 0, -9, 0, 9, 0, 0]);
    }

    #[test]
    fn gemm_int32_matches_golden_with_padding() {
        let cfg = Config::new(4, 4).unwrap();
        let (m, k, n) = (3, 6, 7);
        let mut dev = ReferenceDevice::new(&cfg);
        // Extreme activations against all -1 weights, plus a mixed second case.
        let x: Vec<i8> = (0..m * k)
            .map(|i| if i % 2 == 0 { -128 } else { 127 })
            .collect();
        let x2: Vec<i8> = (0..m * k)
            .map(|i| (i as i32 * 37 % 256 - 128) as i8)
            .collect();
        let w2: Vec<i8> = (0..k * n).map(|i| (i as i32 * 5 % 3 - 1) as i8).collect();
        for (x, w) in [(x.clone(), vec![-1i8; k * n]), (x2, w2)] {
            assert_eq!(write(&mut dev, 0, 10, &pack_weights(&cfg, &w, k, n)), 0);
            assert_eq!(write(&mut dev, 1, 20, &pack_acts(&cfg, &x, m, k)), 0);
            let d = descriptor(m as u16, 2, 2, 20, 10, 5, 0, 0, 0);
            expect(&mut dev, Opcode::Configure as u8, &d, Status::Ok);
            let (s, p) = call(&mut dev, Opcode::Run as u8, &[]);
            assert_eq!(s, Status::Ok as u8);
            assert_eq!(p, (cfg.run_cycles(m, 2, 2) as u32).to_le_bytes());
            let y = unpack_results(&cfg, &read(&mut dev, 2, 5, (m * 2) as u16), m, n);
            assert_eq!(y, gemm(&x, &w, m, k, n));
            // Row 0, N-tile 1, lane 3 is n = 7 (padding): zero.
            let raw = read(&mut dev, 2, 5, (m * 2) as u16);
            assert_eq!(&raw[(2 * 4 - 1) * 4..2 * 4 * 4], &[0, 0, 0, 0]);
        }
        // All -1 weights: y = -(sum of the row) = -(3*-128 + 3*127) = 3.
        assert!(gemm(&x, &vec![-1; k * n], m, k, n).iter().all(|&v| v == 3));
    }

    #[test]
    fn int8_out_requantizes_and_chains() {
        let cfg = Config::new(4, 4).unwrap();
        let (m, k, n) = (2, 8, 5);
        let x: Vec<i8> = (0..m * k)
            .map(|i| (i as i32 * 53 % 256 - 128) as i8)
            .collect();
        let w: Vec<i8> = (0..k * n).map(|i| (i as i32 * 7 % 3 - 1) as i8).collect();
        for (mult, shift, relu) in [(3u16, 2u8, false), (1, 0, true), (40_000, 16, false)] {
            let mut dev = ReferenceDevice::new(&cfg);
            assert_eq!(write(&mut dev, 0, 0, &pack_weights(&cfg, &w, k, n)), 0);
            assert_eq!(write(&mut dev, 1, 0, &pack_acts(&cfg, &x, m, k)), 0);
            let flags = FLAG_INT8_OUT | if relu { FLAG_RELU } else { 0 };
            let d = descriptor(m as u16, 2, 2, 0, 0, 4, mult, shift, flags);
            expect(&mut dev, Opcode::Configure as u8, &d, Status::Ok);
            let (s, p) = call(&mut dev, Opcode::Run as u8, &[]);
            assert_eq!(
                (s, p),
                (0, (cfg.run_cycles(m, 2, 2) as u32).to_le_bytes().to_vec())
            );
            let q = Requant { mult, shift, relu };
            let raw = read(&mut dev, 1, 4, (m * 2) as u16);
            for r in 0..m {
                for nn in 0..8 {
                    let got = raw[r * 8 + nn] as i8;
                    let want = if nn < n {
                        q.apply(gemm(&x, &w, m, k, n)[r * n + nn])
                    } else {
                        q.apply(0)
                    };
                    assert_eq!(got, want, "row {r} col {nn}");
                }
            }
            // The inputs are untouched.
            assert_eq!(read(&mut dev, 1, 0, 4), pack_acts(&cfg, &x, m, k));

            // Chain: the int8 outputs are the next layer's inputs (k_tiles = 2 = n_tiles).
            let y1: Vec<i8> = gemm(&x, &w, m, k, n).iter().map(|&a| q.apply(a)).collect();
            let n2 = 3;
            let w2: Vec<i8> = (0..n * n2).map(|i| (i as i32 * 11 % 3 - 1) as i8).collect();
            assert_eq!(write(&mut dev, 0, 32, &pack_weights(&cfg, &w2, n, n2)), 0);
            let d2 = descriptor(m as u16, 2, 1, 4, 32, 8, 0, 0, 0);
            expect(&mut dev, Opcode::Configure as u8, &d2, Status::Ok);
            expect(&mut dev, Opcode::Run as u8, &[], Status::Ok);
            let y2 = unpack_results(&cfg, &read(&mut dev, 2, 8, m as u16), m, n2);
            assert_eq!(y2, gemm(&y1, &w2, m, n, n2));
        }
    }

    #[test]
    fn run_cycles_status_and_reset() {
        let cfg = small();
        let mut dev = ReferenceDevice::new(&cfg);
        // Counter: 6 bytes of this STATUS received when it completes.
        assert_eq!(status_block(&mut dev), (0, 6, 0));
        // + 18 reply bytes sent + 6 received.
        assert_eq!(status_block(&mut dev), (0, 30, 0));
        expect(&mut dev, Opcode::Run as u8, &[], Status::NotConfigured);
        let d = descriptor(3, 2, 3, 0, 0, 0, 0, 0, 0);
        expect(&mut dev, Opcode::Configure as u8, &d, Status::Ok);
        let before = dev.cycles().unwrap();
        let (_, p) = call(&mut dev, Opcode::Run as u8, &[]);
        let rc = cfg.run_cycles(3, 2, 3);
        assert_eq!(p, (rc as u32).to_le_bytes());
        assert_eq!(dev.cycles().unwrap(), before + 6 + rc + 10);
        let (conf, _, last) = status_block(&mut dev);
        assert_eq!((conf, last as u64), (1, rc));
        // The layer stays configured.
        expect(&mut dev, Opcode::Run as u8, &[], Status::Ok);
        expect(&mut dev, Opcode::Reset as u8, &[], Status::Ok);
        let (conf, _, last) = status_block(&mut dev);
        assert_eq!((conf, last), (0, 0));
        expect(&mut dev, Opcode::Run as u8, &[], Status::NotConfigured);
        expect(&mut dev, Opcode::Configure as u8, &d, Status::Ok);
        expect(&mut dev, Opcode::Run as u8, &[], Status::Ok);
    }

    #[test]
    fn bad_crc_wins_and_write_words_stay_stored() {
        let cfg = small();
        let mut dev = ReferenceDevice::new(&cfg);
        for op in [Opcode::Info as u8, 0x7F, Opcode::Run as u8] {
            let mut f = protocol::frame(REQUEST_SYNC, op, &[1]);
            *f.last_mut().unwrap() ^= 0x40;
            dev.send(&f).unwrap();
            assert_eq!(reply(&mut dev), (Status::BadCrc as u8, vec![]));
        }
        let mut f = protocol::frame(
            REQUEST_SYNC,
            Opcode::Write as u8,
            &write_payload(1, 3, &[1, 2, 3, 4]),
        );
        let n = f.len();
        f[n - 2] ^= 1;
        dev.send(&f).unwrap();
        assert_eq!(reply(&mut dev), (Status::BadCrc as u8, vec![]));
        assert_eq!(read(&mut dev, 1, 3, 1), vec![1, 2, 3, 4]);
        // A corrupted CONFIGURE changes nothing; the previous layer stays.
        let d = descriptor(1, 1, 1, 0, 0, 0, 0, 0, 0);
        expect(&mut dev, Opcode::Configure as u8, &d, Status::Ok);
        let mut f = protocol::frame(REQUEST_SYNC, Opcode::Configure as u8, &d);
        f[5] ^= 0xFF;
        dev.send(&f).unwrap();
        assert_eq!(reply(&mut dev).0, Status::BadCrc as u8);
        assert_eq!(status_block(&mut dev).0, 1);
        assert_alive(&mut dev, &cfg);
    }

    #[test]
    fn unknown_opcode() {
        let cfg = small();
        let mut dev = ReferenceDevice::new(&cfg);
        for op in [0x00, 0x04, 0x12, 0x22, 0xA5, 0xFF] {
            expect(&mut dev, op, &[], Status::UnknownOpcode);
            expect(&mut dev, op, &[1, 2, 3], Status::UnknownOpcode);
        }
        assert_alive(&mut dev, &cfg);
    }

    #[test]
    fn bad_length_for_every_command() {
        let cfg = small();
        let mut dev = ReferenceDevice::new(&cfg);
        let d = descriptor(1, 1, 1, 0, 0, 0, 0, 0, 0);
        expect(&mut dev, Opcode::Configure as u8, &d, Status::Ok);
        for op in [Opcode::Info, Opcode::Reset, Opcode::Status, Opcode::Run] {
            expect(&mut dev, op as u8, &[0], Status::BadLength);
        }
        // The BAD_LENGTH RESET did not reset.
        assert_eq!(status_block(&mut dev).0, 1);
        let w = Opcode::Write as u8;
        expect(&mut dev, w, &[], Status::BadLength);
        expect(&mut dev, w, &[0, 0], Status::BadLength);
        expect(
            &mut dev,
            w,
            &write_payload(1, 0, &[1, 2, 3]),
            Status::BadLength,
        );
        expect(
            &mut dev,
            w,
            &write_payload(1, 0, &[1, 2, 3, 4, 5]),
            Status::BadLength,
        );
        // 4x4: a weight word is one byte, so any data length is whole; use a 4x8 for that.
        let mut dev8 = ReferenceDevice::new(&Config::new(4, 8).unwrap());
        expect(
            &mut dev8,
            w,
            &write_payload(0, 0, &[1, 1, 1]),
            Status::BadLength,
        );
        assert_eq!(read(&mut dev8, 0, 0, 2), vec![0; 4]);
        let r = Opcode::Read as u8;
        expect(&mut dev, r, &[0, 0, 0, 1], Status::BadLength);
        expect(&mut dev, r, &[0, 0, 0, 1, 0, 0], Status::BadLength);
        let c = Opcode::Configure as u8;
        expect(&mut dev, c, &d[..15], Status::BadLength);
        // A rejected CONFIGURE leaves no layer configured.
        assert_eq!(status_block(&mut dev).0, 0);
        expect(&mut dev, Opcode::Run as u8, &[], Status::NotConfigured);
        let mut long = d.clone();
        long.push(0);
        expect(&mut dev, c, &long, Status::BadLength);
        assert_eq!(read(&mut dev, 1, 0, 1), vec![0; 4]);
        assert_alive(&mut dev, &cfg);
    }

    #[test]
    fn write_and_read_out_of_range() {
        let cfg = small();
        let mut dev = ReferenceDevice::new(&cfg);
        let w = Opcode::Write as u8;
        // Memory id: results are not writable, 3 does not exist; checked before the length.
        expect(
            &mut dev,
            w,
            &write_payload(2, 0, &[0; 16]),
            Status::OutOfRange,
        );
        expect(
            &mut dev,
            w,
            &write_payload(3, 0, &[0; 4]),
            Status::OutOfRange,
        );
        expect(
            &mut dev,
            w,
            &write_payload(3, 0, &[0; 3]),
            Status::OutOfRange,
        );
        // Whole words are checked before the range.
        expect(
            &mut dev,
            w,
            &write_payload(1, 40, &[0; 3]),
            Status::BadLength,
        );
        // Range: act_depth 32, weight_depth 64; nothing of a rejected WRITE is stored.
        expect(
            &mut dev,
            w,
            &write_payload(1, 31, &[7; 8]),
            Status::OutOfRange,
        );
        expect(
            &mut dev,
            w,
            &write_payload(0, 60, &[0x55; 5]),
            Status::OutOfRange,
        );
        expect(&mut dev, w, &write_payload(1, 33, &[]), Status::OutOfRange);
        assert_eq!(read(&mut dev, 1, 31, 1), vec![0; 4]);
        assert_eq!(read(&mut dev, 0, 60, 4), vec![0; 4]);
        expect(&mut dev, w, &write_payload(1, 31, &[7; 4]), Status::Ok);
        expect(&mut dev, w, &write_payload(0, 60, &[0x55; 4]), Status::Ok);
        let r = Opcode::Read as u8;
        expect(&mut dev, r, &read_payload(3, 0, 1), Status::OutOfRange);
        expect(&mut dev, r, &read_payload(0xFF, 0, 0), Status::OutOfRange);
        expect(&mut dev, r, &read_payload(0, 60, 5), Status::OutOfRange);
        expect(&mut dev, r, &read_payload(1, 32, 1), Status::OutOfRange);
        expect(&mut dev, r, &read_payload(2, 0, 17), Status::OutOfRange);
        expect(
            &mut dev,
            r,
            &read_payload(2, 0xFFFF, 0xFFFF),
            Status::OutOfRange,
        );
        assert_eq!(read(&mut dev, 2, 0, 16).len(), 256);
        // A reply longer than 65535 bytes: 4x4 result words are 16 bytes.
        let mut big = ReferenceDevice::new(&Config::new(4, 4).unwrap());
        expect(&mut big, r, &read_payload(2, 0, 4096), Status::OutOfRange);
        assert_eq!(read(&mut big, 2, 1, 4095).len(), 65520);
        assert_alive(&mut dev, &cfg);
    }

    #[test]
    fn configure_out_of_range_checks() {
        // small(): 4x4, weight_depth 64, act_depth 32, result_depth 16, max_m 8.
        let cfg = small();
        let mut dev = ReferenceDevice::new(&cfg);
        let i8o = FLAG_INT8_OUT;
        let cases: Vec<(Vec<u8>, Status)> = vec![
            (descriptor(0, 1, 1, 0, 0, 0, 0, 0, 0), Status::OutOfRange),
            (descriptor(9, 1, 1, 0, 0, 0, 0, 0, 0), Status::OutOfRange),
            (descriptor(8, 1, 1, 0, 0, 0, 0, 0, 0), Status::Ok),
            (descriptor(1, 0, 1, 0, 0, 0, 0, 0, 0), Status::OutOfRange),
            (descriptor(1, 1, 0, 0, 0, 0, 0, 0, 0), Status::OutOfRange),
            // act_base + m*k_tiles > act_depth
            (descriptor(4, 2, 1, 25, 0, 0, 0, 0, 0), Status::OutOfRange),
            (descriptor(4, 2, 1, 24, 0, 0, 0, 0, 0), Status::Ok),
            (
                descriptor(1, 0xFFFF, 1, 0xFFFF, 0, 0, 0, 0, 0),
                Status::OutOfRange,
            ),
            // wt_base + n_tiles*k_tiles*rows > weight_depth
            (descriptor(1, 2, 2, 0, 49, 0, 0, 0, 0), Status::OutOfRange),
            (descriptor(1, 2, 2, 0, 48, 0, 0, 0, 0), Status::Ok),
            (
                descriptor(1, 0xFFFF, 0xFFFF, 0, 0, 0, 0, 0, 0),
                Status::OutOfRange,
            ),
            // shift
            (descriptor(1, 1, 1, 0, 0, 0, 0, 32, 0), Status::OutOfRange),
            (descriptor(1, 1, 1, 0, 0, 0, 0, 31, 0), Status::Ok),
            // flags
            (descriptor(1, 1, 1, 0, 0, 0, 0, 0, 0x04), Status::OutOfRange),
            (descriptor(1, 1, 1, 0, 0, 0, 0, 0, 0x80), Status::OutOfRange),
            (
                descriptor(1, 1, 1, 0, 0, 0, 0, 0, FLAG_RELU),
                Status::OutOfRange,
            ),
            (
                descriptor(1, 1, 1, 0, 0, 1, 0, 0, i8o | FLAG_RELU),
                Status::Ok,
            ),
            // result memory: out_base + m*n_tiles > result_depth (16)
            (descriptor(4, 1, 4, 0, 0, 1, 0, 0, 0), Status::OutOfRange),
            (descriptor(4, 1, 4, 0, 0, 0, 0, 0, 0), Status::Ok),
            // INT8_OUT: into activation memory (32), not overlapping the inputs
            (descriptor(4, 1, 4, 0, 0, 17, 0, 0, i8o), Status::OutOfRange),
            (descriptor(4, 1, 4, 0, 0, 16, 0, 0, i8o), Status::Ok),
            (descriptor(2, 2, 2, 4, 0, 0, 0, 0, i8o), Status::Ok),
            (descriptor(2, 2, 2, 4, 0, 1, 0, 0, i8o), Status::OutOfRange),
            (descriptor(2, 2, 2, 4, 0, 7, 0, 0, i8o), Status::OutOfRange),
            (descriptor(2, 2, 2, 4, 0, 8, 0, 0, i8o), Status::Ok),
            (descriptor(2, 2, 2, 4, 0, 4, 0, 0, i8o), Status::OutOfRange),
        ];
        for (d, want) in cases {
            expect(&mut dev, Opcode::Configure as u8, &d, want);
            let configured = status_block(&mut dev).0 == 1;
            assert_eq!(configured, want == Status::Ok, "{d:?}");
            let run = if configured {
                Status::Ok
            } else {
                Status::NotConfigured
            };
            expect(&mut dev, Opcode::Run as u8, &[], run);
        }
        // INT8_OUT on a non-square array.
        let rect = Config { cols: 8, ..small() };
        let mut dev = ReferenceDevice::new(&rect);
        let ok = descriptor(1, 1, 1, 0, 0, 0, 0, 0, 0);
        expect(&mut dev, Opcode::Configure as u8, &ok, Status::Ok);
        let d = descriptor(1, 1, 1, 0, 0, 4, 0, 0, i8o);
        expect(&mut dev, Opcode::Configure as u8, &d, Status::OutOfRange);
        expect(&mut dev, Opcode::Run as u8, &[], Status::NotConfigured);
        assert_alive(&mut dev, &rect);
    }

    #[test]
    fn bad_value_skips_only_the_invalid_words() {
        let cfg = Config::new(4, 8).unwrap();
        let mut dev = ReferenceDevice::new(&cfg);
        // Words: ok, invalid (code 10 in column 6), ok.
        let data = [0x01, 0x03, 0x05, 0b10 << 4, 0x0D, 0x40];
        expect(
            &mut dev,
            Opcode::Write as u8,
            &write_payload(0, 7, &data),
            Status::BadValue,
        );
        assert_eq!(read(&mut dev, 0, 7, 3), vec![0x01, 0x03, 0, 0, 0x0D, 0x40]);
        // Activation bytes are never invalid.
        expect(
            &mut dev,
            Opcode::Write as u8,
            &write_payload(1, 7, &[0b10; 4]),
            Status::Ok,
        );
        // BAD_CRC wins over BAD_VALUE.
        let mut f = protocol::frame(
            REQUEST_SYNC,
            Opcode::Write as u8,
            &write_payload(0, 9, &[2, 0]),
        );
        *f.last_mut().unwrap() ^= 1;
        dev.send(&f).unwrap();
        assert_eq!(reply(&mut dev).0, Status::BadCrc as u8);
        assert_alive(&mut dev, &cfg);
    }

    #[test]
    fn truncated_frames_time_out() {
        let cfg = small();
        let mut dev = ReferenceDevice::new(&cfg);
        // Nothing pending: a timeout that consumes nothing and keeps queued bytes.
        assert_eq!(
            dev.recv(3, 77),
            Err(LinkError::Timeout {
                missing: 3,
                waited: "77 cycles".into()
            })
        );
        dev.send(&protocol::frame(REQUEST_SYNC, Opcode::Info as u8, &[]))
            .unwrap();
        let full = 6 + protocol::INFO_LEN;
        assert_eq!(
            dev.recv(full + 5, 9),
            Err(LinkError::Timeout {
                missing: 5,
                waited: "9 cycles".into()
            })
        );
        let (s, p) = reply(&mut dev);
        assert_eq!((s, p), (0, info_of(&cfg)));
        // Every cut point of a WRITE: words complete before the cut are stored.
        let data: Vec<u8> = (1..=12).collect();
        let f = protocol::frame(
            REQUEST_SYNC,
            Opcode::Write as u8,
            &write_payload(1, 2, &data),
        );
        for cut in 1..f.len() {
            let mut dev = ReferenceDevice::new(&cfg);
            dev.send(&f[..cut]).unwrap();
            let before = dev.cycles().unwrap();
            assert_eq!(reply(&mut dev), (Status::Truncated as u8, vec![]));
            assert_eq!(dev.cycles().unwrap(), before + 4096 + 6);
            let stored = cut.saturating_sub(7) / 4;
            let mut want = data[..stored * 4].to_vec();
            want.resize(12, 0);
            assert_eq!(read(&mut dev, 1, 2, 3), want, "cut {cut}");
            assert_alive(&mut dev, &cfg);
        }
        // A length corrupted upwards swallows the next frame, then times out.
        let mut f = protocol::frame(REQUEST_SYNC, Opcode::Info as u8, &[]);
        f[3] = 0x10;
        dev.send(&f).unwrap();
        dev.send(&protocol::frame(REQUEST_SYNC, Opcode::Info as u8, &[]))
            .unwrap();
        assert_eq!(reply(&mut dev), (Status::Truncated as u8, vec![]));
        assert!(dev.recv(1, 10).is_err());
        assert_alive(&mut dev, &cfg);
    }

    /// Reads every queued reply (timing out any partial frame) and checks each is well formed.
    fn drain_replies(dev: &mut ReferenceDevice) {
        let mut out = Vec::new();
        while let Ok(b) = dev.recv(1, 10) {
            out.extend(b);
        }
        let mut rest = &out[..];
        while !rest.is_empty() {
            assert!(rest.len() >= 6 && rest[0] == REPLY_SYNC);
            let len = u16::from_le_bytes([rest[2], rest[3]]) as usize;
            let f = &rest[..len + 6];
            assert_eq!(f, protocol::frame(REPLY_SYNC, f[1], &f[4..4 + len]));
            assert!(Status::from_u8(f[1]).is_some());
            rest = &rest[len + 6..];
        }
    }

    fn soup() -> impl Strategy<Value = Vec<u8>> {
        let chunk = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(
                prop_oneof![Just(REQUEST_SYNC), Just(0u8), any::<u8>()],
                0..20
            ),
            (
                prop::sample::select(vec![0x01u8, 0x02, 0x03, 0x10, 0x11, 0x20, 0x21, 0x33]),
                prop::collection::vec(any::<u8>(), 0..24)
            )
                .prop_map(|(op, p)| protocol::frame(REQUEST_SYNC, op, &p)),
        ];
        prop::collection::vec(chunk, 0..24).prop_map(|c| c.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn byte_soup_never_panics(bytes in soup()) {
            let cfg = small();
            let mut dev = ReferenceDevice::new(&cfg);
            dev.send(&bytes).unwrap();
            drain_replies(&mut dev);
            assert_alive(&mut dev, &cfg);
            // And it still computes.
            let d = descriptor(1, 1, 1, 0, 0, 0, 0, 0, 0);
            expect(&mut dev, Opcode::Configure as u8, &d, Status::Ok);
            expect(&mut dev, Opcode::Run as u8, &[], Status::Ok);
        }
    }
}
