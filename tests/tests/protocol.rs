//! The command protocol on every backend: random sessions of valid, malformed, corrupted and
//! truncated frames get byte-for-byte the same replies from every backend as from the
//! reference device, and leave the same memory contents behind.

use proptest::prelude::*;
use trimac_hdl::protocol::{self, Memory, Opcode, Status, REPLY_SYNC, REQUEST_SYNC};
use trimac_hdl::Config;
use trimac_tests::{drain, small_config, stream, BACKENDS};

/// One request of a session, before any fault is applied.
#[derive(Clone, Debug)]
enum Request {
    Info,
    Reset,
    Write { mem: u8, addr: u16, data: Vec<u8> },
    Read { mem: u8, addr: u16, count: u16 },
    Configure([u8; 16]),
    Run,
    Unknown(u8),
    Sized { op: u8, len: usize },
}

/// A fault applied to a request's bytes on the way to the device.
#[derive(Clone, Debug)]
enum Fault {
    None,
    /// XOR one byte after the sync byte.
    Flip {
        at: usize,
        mask: u8,
    },
    /// Send only the first `keep` bytes (at least the sync byte).
    Truncate {
        keep: usize,
    },
}

impl Request {
    fn frame(&self) -> Vec<u8> {
        let f = |op: Opcode, p: &[u8]| protocol::frame(REQUEST_SYNC, op as u8, p);
        match self {
            Request::Info => f(Opcode::Info, &[]),
            Request::Reset => f(Opcode::Reset, &[]),
            Request::Write { mem, addr, data } => {
                let mut p = vec![*mem];
                p.extend_from_slice(&addr.to_le_bytes());
                p.extend_from_slice(data);
                f(Opcode::Write, &p)
            }
            Request::Read { mem, addr, count } => {
                let mut p = vec![*mem];
                p.extend_from_slice(&addr.to_le_bytes());
                p.extend_from_slice(&count.to_le_bytes());
                f(Opcode::Read, &p)
            }
            Request::Configure(p) => f(Opcode::Configure, p),
            Request::Run => f(Opcode::Run, &[]),
            Request::Unknown(op) => protocol::frame(REQUEST_SYNC, *op, &[1, 2, 3]),
            Request::Sized { op, len } => protocol::frame(REQUEST_SYNC, *op, &vec![0x11; *len]),
        }
    }
}

fn request() -> impl Strategy<Value = Request> {
    let u16_small = |max: u16| 0..=max;
    prop_oneof![
        Just(Request::Info),
        Just(Request::Reset),
        Just(Request::Run),
        Just(Request::Run),
        (
            0u8..4,
            u16_small(70),
            proptest::collection::vec(any::<u8>(), 0..24)
        )
            .prop_map(|(mem, addr, data)| Request::Write { mem, addr, data }),
        // Weight writes made of valid codes only, so they land.
        (
            u16_small(60),
            proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(3)], 0..32)
        )
            .prop_map(|(addr, codes)| Request::Write {
                mem: Memory::Weights as u8,
                addr,
                data: codes
                    .chunks(4)
                    .map(|c| c.iter().enumerate().fold(0u8, |b, (q, v)| b | v << (2 * q)))
                    .collect(),
            }),
        (u16_small(40), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(addr, data)| {
            Request::Write {
                mem: Memory::Activations as u8,
                addr,
                data,
            }
        }),
        (0u8..4, u16_small(70), u16_small(12)).prop_map(|(mem, addr, count)| Request::Read {
            mem,
            addr,
            count
        }),
        configure(),
        configure(),
        prop_oneof![Just(0x00u8), Just(0x04), Just(0x12), Just(0x22), Just(0xFF)]
            .prop_map(Request::Unknown),
        (
            prop_oneof![Just(0x01u8), Just(0x02), Just(0x11), Just(0x20), Just(0x21)],
            0usize..20
        )
            .prop_map(|(op, len)| Request::Sized { op, len }),
    ]
}

/// Layer descriptors near the device limits (valid and invalid).
fn configure() -> impl Strategy<Value = Request> {
    (
        0u16..18,
        0u16..4,
        0u16..4,
        0u16..66,
        0u16..66,
        0u16..66,
        any::<u16>(),
        0u8..34,
        0u8..5,
    )
        .prop_map(|(m, kt, nt, act, wt, out, mult, shift, flags)| {
            let mut p = [0u8; 16];
            for (i, v) in [m, kt, nt, act, wt, out, mult].iter().enumerate() {
                p[2 * i..2 * i + 2].copy_from_slice(&v.to_le_bytes());
            }
            p[14] = shift;
            p[15] = flags;
            Request::Configure(p)
        })
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => Just(Fault::None),
        1 => (1usize..64, 1u8..=255).prop_map(|(at, mask)| Fault::Flip { at, mask }),
        1 => (1usize..64).prop_map(|keep| Fault::Truncate { keep }),
    ]
}

fn apply(frame: Vec<u8>, fault: &Fault) -> Vec<u8> {
    match *fault {
        Fault::None => frame,
        Fault::Flip { at, mask } => {
            let mut f = frame;
            let at = 1 + at % (f.len() - 1);
            f[at] ^= mask;
            f
        }
        Fault::Truncate { keep } => frame[..keep.min(frame.len() - 1).max(1)].to_vec(),
    }
}

/// Longest the device may stay silent while it still owes a reply: a frame timeout, plus the
/// longest RUN the small configuration allows.
fn idle_limit(cfg: &Config) -> u64 {
    4 * cfg.frame_timeout_cycles as u64 + cfg.run_cycles(cfg.max_m, 16, 16) + 64
}

/// Sends a session to a fresh device of `backend`; returns everything it replied, request by
/// request, and the final contents of its memories.
fn session(backend: &str, cfg: &Config, requests: &[(Request, Fault)]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut dev = stream(backend, cfg);
    let idle = idle_limit(cfg);
    let mut replies = vec![];
    for (req, fault) in requests {
        dev.send(&apply(req.frame(), fault))
            .expect("device takes bytes");
        replies.push(drain(dev.as_mut(), idle, cfg.frame_timeout_cycles));
    }
    let mut memories = vec![];
    for (mem, depth) in [
        (Memory::Weights, cfg.weight_depth),
        (Memory::Activations, cfg.act_depth),
        (Memory::Results, cfg.result_depth),
    ] {
        let read = Request::Read {
            mem: mem as u8,
            addr: 0,
            count: depth as u16,
        };
        dev.send(&read.frame()).unwrap();
        let reply = drain(dev.as_mut(), idle, cfg.frame_timeout_cycles);
        assert_eq!(
            reply[1],
            Status::Ok as u8,
            "{backend}: final READ of {mem:?}"
        );
        memories.extend_from_slice(&reply);
    }
    (replies, memories)
}

fn check_session(cfg: &Config, requests: &[(Request, Fault)]) {
    let (expected, expected_mem) = session("cpu", cfg, requests);
    for backend in BACKENDS.iter().filter(|b| **b != "cpu") {
        let (got, got_mem) = session(backend, cfg, requests);
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g, e, "{backend}: reply to request {i} {:?}", requests[i]);
        }
        assert!(
            got_mem == expected_mem,
            "{backend}: memories differ after the session"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, .. ProptestConfig::default() })]

    #[test]
    fn random_sessions_square(requests in proptest::collection::vec((request(), fault()), 1..25)) {
        check_session(&small_config(4, 4), &requests);
    }

    #[test]
    fn random_sessions_wide(requests in proptest::collection::vec((request(), fault()), 1..25)) {
        check_session(&small_config(4, 8), &requests);
    }

    /// As the ECP5 boards build it: every READ reply through the registered words.
    #[test]
    fn random_sessions_registered_reads(requests in proptest::collection::vec((request(), fault()), 1..25)) {
        let cfg = Config {
            registered_acc_reads: true,
            registered_host_reads: true,
            registered_act_reads: true,
            registered_weight_reads: true,
            registered_code_bus: true,
            registered_read_strobe: true,
            ..small_config(4, 8)
        };
        check_session(&cfg, &requests);
    }
}

/// A layer descriptor for `m` rows of one K-tile and one N-tile.
fn layer(m: u16, flags: u8) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0..2].copy_from_slice(&m.to_le_bytes());
    p[2] = 1; // k_tiles
    p[4] = 1; // n_tiles
    p[10] = 16; // out_base
    p[12] = 1; // mult
    p[15] = flags;
    p
}

/// Each fault named by the issue is answered with its status, and the device computes
/// correctly afterwards.
#[test]
fn faults_are_reported_and_the_device_stays_usable() {
    let cfg = small_config(4, 4);
    let idle = idle_limit(&cfg);
    let weights = Request::Write {
        mem: 0,
        addr: 0,
        data: vec![0b0101_0101, 0b1111_1111, 0b0000_0001, 0b0100_0000],
    };
    let acts = Request::Write {
        mem: 1,
        addr: 0,
        data: vec![1, 2, 3, 4, 0x80, 0x7F, 0, 0xFF],
    };
    for backend in BACKENDS {
        let mut dev = stream(backend, &cfg);
        let mut ask = |frame: Vec<u8>| -> (u8, Vec<u8>) {
            dev.send(&frame).unwrap();
            let reply = drain(dev.as_mut(), idle, cfg.frame_timeout_cycles);
            assert!(
                reply.len() >= 6 && reply[0] == REPLY_SYNC,
                "{backend}: no reply frame: {reply:?}"
            );
            (reply[1], reply[4..reply.len() - 2].to_vec())
        };
        let mut bad_crc = weights.frame();
        *bad_crc.last_mut().unwrap() ^= 0x40;
        assert_eq!(ask(bad_crc).0, Status::BadCrc as u8, "{backend}");
        let cut = acts.frame()[..7].to_vec();
        assert_eq!(ask(cut).0, Status::Truncated as u8, "{backend}");
        assert_eq!(
            ask(Request::Unknown(0x7E).frame()).0,
            Status::UnknownOpcode as u8,
            "{backend}"
        );
        assert_eq!(
            ask(Request::Configure(layer(17, 0)).frame()).0,
            Status::OutOfRange as u8,
            "{backend}"
        );
        assert_eq!(
            ask(Request::Run.frame()).0,
            Status::NotConfigured as u8,
            "{backend}"
        );
        // Still correct afterwards: x = [1, 2, 3, 4] and [-128, 127, 0, -1] against
        // columns of weights (+1, -1, 0/+1 mixes).
        assert_eq!(ask(weights.frame()).0, Status::Ok as u8);
        assert_eq!(ask(acts.frame()).0, Status::Ok as u8);
        assert_eq!(
            ask(Request::Configure(layer(2, 0)).frame()).0,
            Status::Ok as u8
        );
        let (status, cycles) = ask(Request::Run.frame());
        assert_eq!(status, Status::Ok as u8);
        assert_eq!(
            u32::from_le_bytes(cycles.try_into().unwrap()) as u64,
            cfg.run_cycles(2, 1, 1)
        );
        let (status, words) = ask(Request::Read {
            mem: 2,
            addr: 16,
            count: 2,
        }
        .frame());
        assert_eq!(status, Status::Ok as u8);
        let y: Vec<i32> = words
            .chunks(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        // Weight rows (k) -> columns (n): w[0] = [1,1,1,1], w[1] = [-1,-1,-1,-1], w[2] = [1,0,0,0], w[3] = [0,0,0,1].
        let x = [[1, 2, 3, 4], [-128, 127, 0, -1]];
        let w = [[1, 1, 1, 1], [-1, -1, -1, -1], [1, 0, 0, 0], [0, 0, 0, 1]];
        let expected: Vec<i32> = x
            .iter()
            .flat_map(|r| (0..4).map(move |n| (0..4).map(|k| r[k] * w[k][n]).sum::<i32>()))
            .collect();
        assert_eq!(y, expected, "{backend}");
    }
}

/// The run-cycle formula on layers of every kind of shape, straight from the RUN reply.
#[test]
fn run_replies_carry_the_documented_cycle_count() {
    for (rows, cols) in [(4, 4), (4, 8), (8, 4)] {
        let cfg = Config {
            frame_timeout_cycles: 64,
            ..Config::new(rows, cols).unwrap()
        };
        for backend in BACKENDS {
            let mut dev = stream(backend, &cfg);
            for (m, kt, nt) in [
                (1u16, 1u16, 1u16),
                (1, 3, 2),
                (3, 2, 5),
                (9, 1, 1),
                (17, 2, 3),
            ] {
                let mut p = layer(m, 0);
                p[2..4].copy_from_slice(&kt.to_le_bytes());
                p[4..6].copy_from_slice(&nt.to_le_bytes());
                p[10..12].copy_from_slice(&0u16.to_le_bytes());
                dev.send(&Request::Configure(p).frame()).unwrap();
                assert_eq!(
                    drain(dev.as_mut(), 10_000, cfg.frame_timeout_cycles)[1],
                    Status::Ok as u8
                );
                dev.send(&Request::Run.frame()).unwrap();
                let reply = drain(dev.as_mut(), 10_000, cfg.frame_timeout_cycles);
                let cycles = u32::from_le_bytes(reply[4..8].try_into().unwrap()) as u64;
                assert_eq!(
                    cycles,
                    cfg.run_cycles(m as usize, kt as usize, nt as usize),
                    "{backend} {rows}x{cols} m={m} kt={kt} nt={nt}"
                );
            }
        }
    }
}

/// STATUS's free-running counter advances exactly with the device clock: between two STATUS
/// exchanges it moves by the cycles the backend itself counted (through idle time, other
/// frames and a RUN), and its last-run field is the RUN's cycle count until a RESET clears it.
/// Sends STATUS; returns its counter, its last-run cycles, and the backend's own cycle count
/// once the reply is in.
fn status(dev: &mut dyn trimac_sim::ByteStream, cfg: &Config) -> (u32, u32, u64) {
    let backend = dev.backend();
    dev.send(&protocol::frame(REQUEST_SYNC, Opcode::Status as u8, &[]))
        .unwrap();
    let reply = drain(dev, idle_limit(cfg), cfg.frame_timeout_cycles);
    assert_eq!(
        reply.len(),
        4 + protocol::STATUS_LEN + 2,
        "{backend}: {reply:?}"
    );
    assert_eq!(reply[1], Status::Ok as u8, "{backend}");
    let word = |i: usize| u32::from_le_bytes(reply[4 + i..8 + i].try_into().unwrap());
    let at = dev.cycles().expect("simulated backends count cycles");
    (word(4), word(8), at)
}

#[test]
fn status_counter_counts_device_cycles() {
    let cfg = small_config(4, 4);
    let idle = idle_limit(&cfg);
    for backend in BACKENDS {
        let mut dev = stream(backend, &cfg);
        let (c0, last0, t0) = status(dev.as_mut(), &cfg);
        assert_eq!(last0, 0, "{backend}: no RUN yet");
        // Idle time: a receive that times out still clocks the device.
        assert!(dev.recv(1, 777).is_err(), "{backend}: silent device");
        let (c1, _, t1) = status(dev.as_mut(), &cfg);
        assert_eq!(
            c1.wrapping_sub(c0) as u64,
            t1 - t0,
            "{backend}: counter vs cycles over idle time"
        );
        dev.send(&Request::Configure(layer(3, 0)).frame()).unwrap();
        assert_eq!(drain(dev.as_mut(), idle, cfg.frame_timeout_cycles)[1], 0);
        dev.send(&Request::Run.frame()).unwrap();
        assert_eq!(drain(dev.as_mut(), idle, cfg.frame_timeout_cycles)[1], 0);
        let (c2, last2, t2) = status(dev.as_mut(), &cfg);
        assert_eq!(
            c2.wrapping_sub(c1) as u64,
            t2 - t1,
            "{backend}: counter vs cycles over a RUN"
        );
        assert_eq!(last2 as u64, cfg.run_cycles(3, 1, 1), "{backend}: last RUN");
        dev.send(&Request::Reset.frame()).unwrap();
        assert_eq!(drain(dev.as_mut(), idle, cfg.frame_timeout_cycles)[1], 0);
        let (_, last3, _) = status(dev.as_mut(), &cfg);
        assert_eq!(last3, 0, "{backend}: RESET clears the last RUN");
    }
}

/// CONFIGURE with INT8_OUT refuses an output region that overlaps the input rows, and takes
/// one that only touches them, on every backend (the device checks it with split compares).
#[test]
fn int8_output_may_touch_but_not_overlap_the_inputs() {
    let cfg = small_config(4, 4);
    let idle = idle_limit(&cfg);
    // (act_base, out_base, m, k_tiles, n_tiles): inputs are act_base .. act_base + m * k_tiles,
    // outputs out_base .. out_base + m * n_tiles.
    type Layer = (u16, u16, u16, u16, u16);
    let cases: [(Layer, Status); 7] = [
        ((0, 6, 3, 2, 1), Status::Ok), // outputs start where the inputs end
        ((0, 5, 3, 2, 1), Status::OutOfRange), // one row of overlap at the inputs' end
        ((9, 0, 3, 1, 3), Status::Ok), // outputs end where the inputs start
        ((8, 0, 3, 1, 3), Status::OutOfRange), // one row of overlap at the inputs' start
        ((10, 10, 2, 1, 1), Status::OutOfRange), // the same rows
        ((0, 61, 1, 1, 3), Status::Ok), // outputs end at the last row
        ((0, 62, 1, 1, 3), Status::OutOfRange), // one past the memory
    ];
    for backend in BACKENDS {
        let mut dev = stream(backend, &cfg);
        for ((act, out, m, kt, nt), want) in cases {
            let mut p = layer(m, protocol::FLAG_INT8_OUT);
            p[2..4].copy_from_slice(&kt.to_le_bytes());
            p[4..6].copy_from_slice(&nt.to_le_bytes());
            p[6..8].copy_from_slice(&act.to_le_bytes());
            p[10..12].copy_from_slice(&out.to_le_bytes());
            dev.send(&Request::Configure(p).frame()).unwrap();
            let reply = drain(dev.as_mut(), idle, cfg.frame_timeout_cycles);
            assert_eq!(
                reply.get(1).copied(),
                Some(want as u8),
                "{backend}: act {act}, out {out}, m {m}, k_tiles {kt}, n_tiles {nt}"
            );
        }
    }
}

/// WRITE and READ ranges ending at the last word of a memory are taken, one word further is
/// refused, on every backend (the device's range checks run on 17-bit chains).
#[test]
fn ranges_may_end_at_a_memory_but_not_past_it() {
    let cfg = small_config(4, 4);
    let idle = idle_limit(&cfg);
    // (memory id, depth in words, link bytes per word)
    let memories = [
        (0u8, cfg.weight_depth, cfg.cols / 4),
        (1, cfg.act_depth, cfg.rows),
        (2, cfg.result_depth, 4 * cfg.cols),
    ];
    for backend in BACKENDS {
        let mut dev = stream(backend, &cfg);
        let mut ask = |req: Request| -> u8 {
            dev.send(&req.frame()).unwrap();
            drain(dev.as_mut(), idle, cfg.frame_timeout_cycles)[1]
        };
        for (mem, depth, bytes) in memories {
            let depth = depth as u16;
            for (addr, count, want) in [
                (depth - 2, 2u16, Status::Ok),
                (depth - 2, 3, Status::OutOfRange),
                (depth, 1, Status::OutOfRange),
                (0, depth, Status::Ok),
                (0, depth + 1, Status::OutOfRange),
            ] {
                let what = format!("{backend}: mem {mem}, addr {addr}, {count} words");
                let read = Request::Read { mem, addr, count };
                let got = ask(read);
                // A whole-memory read of results is longer than a reply may be.
                let long = count as usize * bytes > 65535;
                assert_eq!(
                    got,
                    if long { Status::OutOfRange } else { want } as u8,
                    "{what}"
                );
                if mem != 2 {
                    let data = vec![0u8; count as usize * bytes];
                    assert_eq!(
                        ask(Request::Write { mem, addr, data }),
                        want as u8,
                        "{what}"
                    );
                }
            }
        }
    }
}
