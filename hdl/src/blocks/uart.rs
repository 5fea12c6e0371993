//! `UartRx`, `UartTx` and `SerialTop`: the host byte stream of [`Top`] carried over a UART,
//! as on a board (8 data bits, no parity, 1 stop bit, least significant bit first).
//!
//! The bit time is a whole number of clock cycles, `clocks_per_bit` (the divisor), fixed when
//! the block is built: a 48 MHz design clock and 3 Mbaud give 16. The receiver samples the line
//! in the middle of each bit, checks the start bit again there (a glitch shorter than half a
//! bit is ignored) and refuses a frame whose stop bit is low (`frame_error`). The transmitter
//! drives the line from a register, so it never glitches.
//!
//! [`SerialTop`] puts a receiver in front of [`Top`]'s input stream and a transmitter behind
//! its output stream. A UART cannot hold the host back, so a received byte waits in a one-byte
//! holding register until `Top` takes it; a byte arriving while the register is still full
//! replaces it (an overrun, like any UART's) and the protocol's CRC and timeouts recover.
//!
//! [`Top`]: super::top::Top

use super::top::Top;
use crate::config::Config;
use rust_hdl::prelude::*;

/// Smallest divisor (clock cycles per bit) the blocks accept: the receiver needs a middle.
pub const MIN_CLOCKS_PER_BIT: usize = 4;
// The receiver's reloads (half a bit and a bit, minus one) are then never zero.
const _: () = assert!(MIN_CLOCKS_PER_BIT / 2 >= 2);
/// Largest divisor (the bit counters are 16 bits wide).
pub const MAX_CLOCKS_PER_BIT: usize = 65535;
/// Bits on the line per byte: start, 8 data, stop.
pub const BITS_PER_FRAME: usize = 10;

/// The divisor for `clock_hz` and `baud`, rounded to the nearest cycle, and the relative error
/// of the baud rate it gives. `None` when the divisor is outside
/// [`MIN_CLOCKS_PER_BIT`]`..=`[`MAX_CLOCKS_PER_BIT`].
pub fn divisor(clock_hz: u64, baud: u64) -> Option<(usize, f64)> {
    if baud == 0 {
        return None;
    }
    let d = ((clock_hz + baud / 2) / baud) as usize;
    if !(MIN_CLOCKS_PER_BIT..=MAX_CLOCKS_PER_BIT).contains(&d) {
        return None;
    }
    let actual = clock_hz as f64 / d as f64;
    Some((d, (actual - baud as f64) / baud as f64))
}

fn k16(v: usize) -> Constant<Bits<16>> {
    Constant::new((v as u64).into())
}

/// UART transmitter: takes a byte when `valid & ready` and shifts it out on `tx`.
#[derive(LogicBlock)]
pub struct UartTx {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Byte to send.
    pub data: Signal<In, Bits<8>>,
    /// `data` is valid.
    pub valid: Signal<In, bool>,
    /// The transmitter takes `data` this cycle (it is idle).
    pub ready: Signal<Out, bool>,
    /// Serial line (idle high).
    pub tx: Signal<Out, bool>,
    /// Frame bits still to send, least significant first: start, data, stop.
    shift: DFF<Bits<10>>,
    /// Bits left in the frame (0 = idle).
    bits_left: DFF<Bits<4>>,
    /// Cycles left in the current bit, minus one.
    count: DFF<Bits<16>>,
    /// The line, inverted (flip-flops start at 0, the line idles high).
    line_n: DFF<bool>,
    last_count: Constant<Bits<16>>,
    frame_bits: Constant<Bits<4>>,
}

impl UartTx {
    /// A transmitter sending one bit every `clocks_per_bit` cycles.
    pub fn new(clocks_per_bit: usize) -> Self {
        assert!(
            (MIN_CLOCKS_PER_BIT..=MAX_CLOCKS_PER_BIT).contains(&clocks_per_bit),
            "UART divisor {clocks_per_bit} outside {MIN_CLOCKS_PER_BIT}..={MAX_CLOCKS_PER_BIT}"
        );
        Self {
            clock: Default::default(),
            data: Default::default(),
            valid: Default::default(),
            ready: Default::default(),
            tx: Default::default(),
            shift: Default::default(),
            bits_left: Default::default(),
            count: Default::default(),
            line_n: Default::default(),
            last_count: k16(clocks_per_bit - 1),
            frame_bits: Constant::new((BITS_PER_FRAME as u64).into()),
        }
    }
}

impl Logic for UartTx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, shift, bits_left, count, line_n);
        self.ready.next = self.bits_left.q.val() == 0;
        self.tx.next = !self.line_n.q.val();
        if self.bits_left.q.val() == 0 {
            self.line_n.d.next = false;
            if self.valid.val() {
                // Start bit (0), data LSB first, stop bit (1).
                self.shift.d.next = (bit_cast::<10, 8>(self.data.val()) << 1) | bits::<10>(0x200);
                self.bits_left.d.next = self.frame_bits.val();
                self.count.d.next = self.last_count.val();
                self.line_n.d.next = true;
            }
        } else if self.count.q.val() == 0 {
            // Next bit.
            self.shift.d.next = self.shift.q.val() >> 1;
            self.bits_left.d.next = self.bits_left.q.val() - 1;
            self.count.d.next = self.last_count.val();
            self.line_n.d.next = !self.shift.q.val().get_bit(1);
            if self.bits_left.q.val() == 1 {
                self.line_n.d.next = false;
            }
        } else {
            self.count.d.next = self.count.q.val() - 1;
        }
    }
}

/// UART receiver: one `valid` pulse per well-formed byte on `rx`.
#[derive(LogicBlock)]
pub struct UartRx {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Serial line (idle high), asynchronous to `clock`.
    pub rx: Signal<In, bool>,
    /// The byte received.
    pub data: Signal<Out, Bits<8>>,
    /// One-cycle pulse: `data` holds a new byte.
    pub valid: Signal<Out, bool>,
    /// One-cycle pulse: a frame ended with a low stop bit and was dropped.
    pub frame_error: Signal<Out, bool>,
    /// Two-flip-flop synchroniser, storing the inverted line (flip-flops start at 0).
    sync1_n: DFF<bool>,
    sync2_n: DFF<bool>,
    /// The synchronised line one cycle earlier, inverted: a start needs a falling edge.
    prev_n: DFF<bool>,
    /// Receiving a frame.
    busy: DFF<bool>,
    /// Bit being sampled next: 0 start, 1..=8 data, 9 stop.
    bit_idx: DFF<Bits<4>>,
    /// Cycles until the next sample, minus one.
    count: DFF<Bits<16>>,
    /// `count` is zero: the next sample is this cycle (kept a cycle ahead, so the sample's
    /// decisions read a flip-flop instead of a 16-bit compare).
    count_zero: DFF<bool>,
    shift: DFF<Bits<8>>,
    out: DFF<Bits<8>>,
    out_valid: DFF<bool>,
    out_error: DFF<bool>,
    line: Signal<Local, bool>,
    half_count: Constant<Bits<16>>,
    last_count: Constant<Bits<16>>,
    stop_bit: Constant<Bits<4>>,
}

impl UartRx {
    /// A receiver for one bit every `clocks_per_bit` cycles.
    pub fn new(clocks_per_bit: usize) -> Self {
        assert!(
            (MIN_CLOCKS_PER_BIT..=MAX_CLOCKS_PER_BIT).contains(&clocks_per_bit),
            "UART divisor {clocks_per_bit} outside {MIN_CLOCKS_PER_BIT}..={MAX_CLOCKS_PER_BIT}"
        );
        Self {
            clock: Default::default(),
            rx: Default::default(),
            data: Default::default(),
            valid: Default::default(),
            frame_error: Default::default(),
            sync1_n: Default::default(),
            sync2_n: Default::default(),
            prev_n: Default::default(),
            busy: Default::default(),
            bit_idx: Default::default(),
            count: Default::default(),
            count_zero: Default::default(),
            shift: Default::default(),
            out: Default::default(),
            out_valid: Default::default(),
            out_error: Default::default(),
            line: Default::default(),
            // The falling edge is seen two cycles late (synchroniser): sample the start bit
            // half a bit after the edge.
            half_count: k16(clocks_per_bit / 2 - 1),
            last_count: k16(clocks_per_bit - 1),
            stop_bit: Constant::new(((BITS_PER_FRAME - 1) as u64).into()),
        }
    }
}

impl Logic for UartRx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, sync1_n, sync2_n, prev_n, busy, bit_idx, count, count_zero, shift, out,
            out_valid, out_error
        );
        self.sync1_n.d.next = !self.rx.val();
        self.sync2_n.d.next = self.sync1_n.q.val();
        self.prev_n.d.next = self.sync2_n.q.val();
        self.line.next = !self.sync2_n.q.val();
        self.out_valid.d.next = false;
        self.out_error.d.next = false;
        if !self.busy.q.val() {
            if !self.line.val() & !self.prev_n.q.val() {
                // A falling edge: the start bit, perhaps.
                self.busy.d.next = true;
                self.bit_idx.d.next = bits::<4>(0);
                self.count.d.next = self.half_count.val();
                // Neither reload is zero: MIN_CLOCKS_PER_BIT >= 4.
                self.count_zero.d.next = false;
            }
        } else if self.count_zero.q.val() {
            // The middle of a bit.
            self.count.d.next = self.last_count.val();
            self.count_zero.d.next = false;
            self.bit_idx.d.next = self.bit_idx.q.val() + 1;
            if self.bit_idx.q.val() == 0 {
                if self.line.val() {
                    // The start bit is gone at its middle: a glitch.
                    self.busy.d.next = false;
                }
            } else if self.bit_idx.q.val() == self.stop_bit.val() {
                self.busy.d.next = false;
                if self.line.val() {
                    self.out.d.next = self.shift.q.val();
                    self.out_valid.d.next = true;
                } else {
                    self.out_error.d.next = true;
                }
            } else {
                self.shift.d.next = self.shift.q.val() >> 1;
                if self.line.val() {
                    self.shift.d.next = (self.shift.q.val() >> 1) | bits::<8>(0x80);
                }
            }
        } else {
            self.count.d.next = self.count.q.val() - 1;
            self.count_zero.d.next = self.count.q.val() == 1;
        }
        self.data.next = self.out.q.val();
        self.valid.next = self.out_valid.q.val();
        self.frame_error.next = self.out_error.q.val();
    }
}

/// [`Top`] behind a UART: the accelerator as a board's serial port sees it.
#[derive(LogicBlock)]
pub struct SerialTop {
    /// Design clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset (see [`Top`]).
    pub reset: Signal<In, bool>,
    /// Serial line from the host (idle high).
    pub rx: Signal<In, bool>,
    /// Serial line to the host (idle high).
    pub tx: Signal<Out, bool>,
    /// One-cycle pulse per byte received.
    pub rx_strobe: Signal<Out, bool>,
    /// One-cycle pulse per byte whose sending starts.
    pub tx_strobe: Signal<Out, bool>,
    /// One-cycle pulse per byte lost: a low stop bit, or an overrun of the holding register.
    pub rx_error: Signal<Out, bool>,
    top: Top,
    uart_rx: UartRx,
    uart_tx: UartTx,
    hold: DFF<Bits<8>>,
    hold_full: DFF<bool>,
    /// Reply byte on its way to the transmitter (cuts the reply path at a register).
    reply: DFF<Bits<8>>,
    reply_full: DFF<bool>,
}

impl SerialTop {
    /// The accelerator for `cfg` behind a UART of `clocks_per_bit` cycles per bit.
    pub fn new(cfg: &Config, clocks_per_bit: usize) -> Self {
        Self {
            clock: Default::default(),
            reset: Default::default(),
            rx: Default::default(),
            tx: Default::default(),
            rx_strobe: Default::default(),
            tx_strobe: Default::default(),
            rx_error: Default::default(),
            top: Top::new(cfg),
            uart_rx: UartRx::new(clocks_per_bit),
            uart_tx: UartTx::new(clocks_per_bit),
            hold: Default::default(),
            hold_full: Default::default(),
            reply: Default::default(),
            reply_full: Default::default(),
        }
    }
}

impl Logic for SerialTop {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, hold, hold_full, reply, reply_full);
        self.top.clock.next = self.clock.val();
        self.uart_rx.clock.next = self.clock.val();
        self.uart_tx.clock.next = self.clock.val();
        self.top.reset.next = self.reset.val();
        self.uart_rx.rx.next = self.rx.val();
        // Holding register between the receiver and the accelerator.
        self.top.in_data.next = self.hold.q.val();
        self.top.in_valid.next = self.hold_full.q.val();
        if self.top.in_ready.val() {
            self.hold_full.d.next = false;
        }
        if self.uart_rx.valid.val() {
            self.hold.d.next = self.uart_rx.data.val();
            self.hold_full.d.next = true;
        }
        self.rx_strobe.next = self.uart_rx.valid.val();
        self.rx_error.next = self.uart_rx.frame_error.val()
            | (self.uart_rx.valid.val() & self.hold_full.q.val() & !self.top.in_ready.val());
        // Replies pass a one-byte register on their way to the transmitter, which holds the
        // accelerator back while it is busy (a byte takes 10 bit times; the register's cycle
        // is invisible on the line).
        self.uart_tx.data.next = self.reply.q.val();
        self.uart_tx.valid.next = self.reply_full.q.val();
        self.top.out_ready.next = !self.reply_full.q.val();
        if self.uart_tx.ready.val() {
            self.reply_full.d.next = false;
        }
        if self.top.out_valid.val() & !self.reply_full.q.val() {
            self.reply.d.next = self.top.out_data.val();
            self.reply_full.d.next = true;
        }
        self.tx_strobe.next = self.reply_full.q.val() & self.uart_tx.ready.val();
        self.tx.next = self.uart_tx.tx.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::{settle, tick};
    use crate::protocol::{self, Opcode, REQUEST_SYNC};

    /// Line levels of one frame of `byte`, one entry per bit.
    fn frame_bits(byte: u8, stop: bool) -> Vec<bool> {
        let mut v = vec![false];
        v.extend((0..8).map(|i| byte >> i & 1 == 1));
        v.push(stop);
        v
    }

    #[test]
    fn divisor_rounds_and_rejects_out_of_range() {
        assert_eq!(divisor(48_000_000, 3_000_000).unwrap().0, 16);
        let (d, err) = divisor(12_000_000, 115_200).unwrap();
        assert_eq!(d, 104);
        assert!(err.abs() < 0.002);
        assert!(divisor(12_000_000, 6_000_000).is_none());
        assert!(divisor(12_000_000, 0).is_none());
    }

    #[test]
    #[should_panic(expected = "UART divisor")]
    fn too_small_divisor_is_refused() {
        let _ = UartTx::new(3);
    }

    #[test]
    fn transmitter_frames_bits_at_the_divisor() {
        for d in [4usize, 7, 16] {
            let mut tx = UartTx::new(d);
            tx.connect_all();
            tx.valid.next = false;
            tick(&mut tx, |t| &mut t.clock);
            assert!(tx.tx.val(), "line idles high");
            assert!(tx.ready.val());
            tx.data.next = 0xB4.into();
            tx.valid.next = true;
            tick(&mut tx, |t| &mut t.clock);
            tx.valid.next = false;
            assert!(!tx.ready.val());
            let mut line = vec![];
            for _ in 0..BITS_PER_FRAME * d {
                line.push(tx.tx.val());
                tick(&mut tx, |t| &mut t.clock);
            }
            let want: Vec<bool> = frame_bits(0xB4, true)
                .into_iter()
                .flat_map(|b| std::iter::repeat_n(b, d))
                .collect();
            assert_eq!(line, want, "divisor {d}");
            assert!(tx.ready.val() && tx.tx.val());
        }
    }

    /// Drives `bits` (one entry per clock) into a receiver, returning what it reports.
    fn receive(rx: &mut UartRx, levels: &[bool]) -> (Vec<u8>, usize) {
        let (mut bytes, mut errors) = (vec![], 0);
        for &l in levels {
            rx.rx.next = l;
            tick(rx, |r| &mut r.clock);
            if rx.valid.val() {
                bytes.push(rx.data.val().to_u64() as u8);
            }
            errors += rx.frame_error.val() as usize;
        }
        (bytes, errors)
    }

    fn at_divisor(bits: &[bool], d: usize) -> Vec<bool> {
        bits.iter()
            .flat_map(|&b| std::iter::repeat_n(b, d))
            .collect()
    }

    #[test]
    fn receiver_decodes_bytes_and_refuses_bad_frames() {
        for d in [4usize, 5, 16] {
            let mut rx = UartRx::new(d);
            rx.connect_all();
            let mut line = vec![true; 3 * d];
            for b in [0x00u8, 0xFF, 0xA5, 0x5A, 0x01] {
                line.extend(frame_bits(b, true));
            }
            line.extend(frame_bits(0x33, false)); // low stop bit: dropped
            line.extend([false; 3]); // the line stays low: no new start until it rises
            line.extend([true; 2]);
            line.extend(frame_bits(0x80, true));
            line.extend([true; 2]);
            let (bytes, errors) = receive(&mut rx, &at_divisor(&line, d));
            assert_eq!(
                bytes,
                vec![0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80],
                "divisor {d}"
            );
            assert_eq!(errors, 1);
        }
        // A glitch shorter than half a bit is not a start bit.
        let mut rx = UartRx::new(16);
        rx.connect_all();
        let mut line = vec![true; 20];
        line.extend([false; 5]);
        line.extend([true; 200]);
        assert_eq!(receive(&mut rx, &line), (vec![], 0));
    }

    #[test]
    fn loopback_through_both_halves() {
        let d = 5;
        let mut tx = UartTx::new(d);
        let mut rx = UartRx::new(d);
        tx.connect_all();
        rx.connect_all();
        let sent: Vec<u8> = (0..=255u8).step_by(7).collect();
        let mut got = vec![];
        let mut next = 0;
        for _ in 0..sent.len() * (BITS_PER_FRAME * d + 2) + 10 * d {
            tx.valid.next = next < sent.len();
            tx.data.next = (sent.get(next).copied().unwrap_or(0) as u64).into();
            settle(&mut tx);
            let take = tx.valid.val() && tx.ready.val();
            rx.rx.next = tx.tx.val();
            tick(&mut tx, |t| &mut t.clock);
            tick(&mut rx, |r| &mut r.clock);
            if take {
                next += 1;
            }
            if rx.valid.val() {
                got.push(rx.data.val().to_u64() as u8);
            }
        }
        assert_eq!(got, sent);
    }

    /// The byte stream of a session: every frame the host sends (STATUS is left out: its
    /// free-running cycle counter depends on the link speed).
    fn session(cfg: &Config) -> Vec<Vec<u8>> {
        let f = |op: Opcode, p: &[u8]| protocol::frame(REQUEST_SYNC, op as u8, p);
        let mut weights = vec![0u8, 0, 0];
        weights.extend((0..cfg.rows * cfg.cols / 4).map(|i| [0x00u8, 0x41, 0xC4, 0x1D][i % 4]));
        let mut acts = vec![1u8, 0, 0];
        acts.extend((0..2 * cfg.rows).map(|i| (i * 37 + 200) as u8));
        let mut layer = [0u8; protocol::CONFIGURE_LEN];
        layer[0] = 2; // m
        layer[2] = 1; // k_tiles
        layer[4] = 1; // n_tiles
        layer[12] = 1; // mult
        let mut bad = f(Opcode::Info, &[]);
        bad[4] ^= 0x40; // a corrupted CRC: BAD_CRC
        vec![
            f(Opcode::Info, &[]),
            f(Opcode::Write, &weights),
            f(Opcode::Write, &acts),
            bad,
            f(Opcode::Configure, &layer),
            f(Opcode::Run, &[]),
            f(Opcode::Read, &[2, 0, 0, 2, 0]),
            f(Opcode::Read, &[0, 0, 0, cfg.rows as u8, 0]),
        ]
    }

    /// Replies of `Top` driven directly, one byte per cycle at most.
    fn direct_replies(cfg: &Config, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut top = Top::new(cfg);
        top.connect_all();
        top.out_ready.next = true;
        frames
            .iter()
            .map(|frame| {
                let mut reply = vec![];
                let mut i = 0;
                let mut idle = 0;
                while idle < 2000 {
                    top.in_valid.next = i < frame.len();
                    top.in_data.next = (frame.get(i).copied().unwrap_or(0) as u64).into();
                    top.clock.next = false.into();
                    settle(&mut top);
                    if top.in_valid.val() && top.in_ready.val() {
                        i += 1;
                    }
                    idle += 1;
                    if top.out_valid.val() {
                        reply.push(top.out_data.val().to_u64() as u8);
                        idle = 0;
                    }
                    top.clock.next = true.into();
                    settle(&mut top);
                }
                reply
            })
            .collect()
    }

    /// Replies of `SerialTop`, with the host's UART sending each frame at divisor `d`.
    fn serial_replies(cfg: &Config, d: usize, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut dut = SerialTop::new(cfg, d);
        let mut host_tx = UartTx::new(d);
        let mut host_rx = UartRx::new(d);
        dut.connect_all();
        host_tx.connect_all();
        host_rx.connect_all();
        frames
            .iter()
            .map(|frame| {
                let mut reply = vec![];
                let mut i = 0;
                let mut idle = 0;
                while idle < 40 * BITS_PER_FRAME * d {
                    host_tx.valid.next = i < frame.len();
                    host_tx.data.next = (frame.get(i).copied().unwrap_or(0) as u64).into();
                    settle(&mut host_tx);
                    if host_tx.valid.val() && host_tx.ready.val() {
                        i += 1;
                    }
                    dut.rx.next = host_tx.tx.val();
                    host_rx.rx.next = dut.tx.val();
                    tick(&mut host_tx, |t| &mut t.clock);
                    tick(&mut dut, |t| &mut t.clock);
                    tick(&mut host_rx, |t| &mut t.clock);
                    idle += 1;
                    if host_rx.valid.val() {
                        reply.push(host_rx.data.val().to_u64() as u8);
                        idle = 0;
                    }
                }
                reply
            })
            .collect()
    }

    #[test]
    fn serial_byte_stream_equals_the_direct_byte_stream() {
        let cfg = Config {
            weight_depth: 64,
            act_depth: 64,
            result_depth: 64,
            max_m: 16,
            ..Config::new(4, 4).unwrap()
        };
        let frames = session(&cfg);
        let direct = direct_replies(&cfg, &frames);
        let serial = serial_replies(&cfg, 4, &frames);
        assert_eq!(serial, direct);
        // Every frame got its reply (sync byte first), and the bad CRC was refused.
        assert!(direct
            .iter()
            .all(|r| r.first() == Some(&protocol::REPLY_SYNC)));
        assert_eq!(direct[3][1], protocol::Status::BadCrc as u8);
        assert_eq!(direct[5][1], protocol::Status::Ok as u8);
    }
}
