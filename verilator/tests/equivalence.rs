//! The verilated model against the rust-hdl simulation: the same scripted session (INFO,
//! WRITE, CONFIGURE, RUN, READ, STATUS, a bad-CRC frame, a truncated frame, line noise) must
//! give the same bytes after the same number of clock cycles, step by step.
//!
//! These tests fail (they do not skip) when the Verilator backend was built without
//! Verilator: install the toolchain with `cargo run --release -- toolchain install`.

use trimac_hdl::protocol::{self, Memory, Opcode, Status, REPLY_SYNC, REQUEST_SYNC};
use trimac_hdl::Config;
use trimac_sim::rtl::{RtlDevice, RtlOptions};
use trimac_sim::stream::{ByteStream, LinkError};
use trimac_verilator::{VerilatorDevice, VerilatorOptions};

/// What one step of the session produced: the reply bytes (or the link error) and the cycle
/// count afterwards.
#[derive(Debug, PartialEq, Eq)]
struct Event {
    what: String,
    reply: Result<Vec<u8>, LinkError>,
    cycles: Option<u64>,
}

fn verilated(cfg: &Config) -> VerilatorDevice {
    VerilatorDevice::new(cfg, VerilatorOptions::default())
        .unwrap_or_else(|e| panic!("the Verilator backend must be available for this test: {e}"))
}

/// Receives one reply frame (header, then payload and CRC).
fn reply(dev: &mut dyn ByteStream, idle: u64) -> Result<Vec<u8>, LinkError> {
    let mut head = dev.recv(4, idle)?;
    let len = u16::from_le_bytes([head[2], head[3]]) as usize;
    head.extend(dev.recv(len + 2, 1_000)?);
    Ok(head)
}

fn step(
    log: &mut Vec<Event>,
    dev: &mut dyn ByteStream,
    what: &str,
    bytes: &[u8],
    idle: u64,
) -> Result<Vec<u8>, LinkError> {
    let r = dev.send(bytes).and_then(|_| reply(dev, idle));
    log.push(Event {
        what: what.to_string(),
        reply: r.clone(),
        cycles: dev.cycles(),
    });
    r
}

fn request(op: Opcode, payload: &[u8]) -> Vec<u8> {
    protocol::frame(REQUEST_SYNC, op as u8, payload)
}

fn status_of(r: &Result<Vec<u8>, LinkError>) -> u8 {
    let bytes = r.as_ref().expect("a reply");
    assert_eq!(bytes[0], REPLY_SYNC);
    bytes[1]
}

/// The scripted session; returns its transcript. Asserts the replies make sense, so a
/// session where both backends fail identically does not pass.
fn session(dev: &mut dyn ByteStream, cfg: &Config) -> Vec<Event> {
    let mut log = Vec::new();
    let (rows, cols) = (cfg.rows, cfg.cols);
    let info = step(&mut log, dev, "info", &request(Opcode::Info, &[]), 100_000);
    assert_eq!(status_of(&info), Status::Ok as u8);

    // Weights: rows words of cols 2-bit codes (a pattern using +1, 0, -1).
    let wbytes = cfg.weight_word_bytes();
    let mut w = vec![Memory::Weights as u8, 0, 0];
    for r in 0..rows {
        for b in 0..wbytes {
            let mut byte = 0u8;
            for j in 0..4 {
                let code = [
                    protocol::code::PLUS,
                    protocol::code::ZERO,
                    protocol::code::MINUS,
                ][(r + 4 * b + j) % 3];
                byte |= code << (2 * j);
            }
            w.push(byte);
        }
    }
    let r = step(
        &mut log,
        dev,
        "write weights",
        &request(Opcode::Write, &w),
        100_000,
    );
    assert_eq!(status_of(&r), Status::Ok as u8);

    // Activations: m = 3 words of rows int8, edge values included.
    let m = 3usize;
    let mut a = vec![Memory::Activations as u8, 0, 0];
    for i in 0..m * rows {
        a.push([0x80u8, 0x7f, 0xff, 1, 0, 0x55][i % 6].wrapping_add(i as u8 / 6));
    }
    let r = step(
        &mut log,
        dev,
        "write activations",
        &request(Opcode::Write, &a),
        100_000,
    );
    assert_eq!(status_of(&r), Status::Ok as u8);

    // CONFIGURE m=3, k_tiles=1, n_tiles=1, bases 0, out 0, mult 1, shift 0, int32 out.
    let mut c = Vec::new();
    for h in [m as u16, 1, 1, 0, 0, 0, 1] {
        c.extend_from_slice(&h.to_le_bytes());
    }
    c.extend_from_slice(&[0, 0]);
    let r = step(
        &mut log,
        dev,
        "configure",
        &request(Opcode::Configure, &c),
        100_000,
    );
    assert_eq!(status_of(&r), Status::Ok as u8);
    let r = step(&mut log, dev, "run", &request(Opcode::Run, &[]), 1_000_000);
    assert_eq!(status_of(&r), Status::Ok as u8);
    let read = [Memory::Results as u8, 0, 0, m as u8, 0];
    let r = step(
        &mut log,
        dev,
        "read results",
        &request(Opcode::Read, &read),
        100_000,
    );
    assert_eq!(status_of(&r), Status::Ok as u8);
    assert_eq!(r.as_ref().unwrap().len(), 6 + m * cols * 4);
    let r = step(
        &mut log,
        dev,
        "status",
        &request(Opcode::Status, &[]),
        100_000,
    );
    assert_eq!(status_of(&r), Status::Ok as u8);

    // A frame with a corrupted CRC.
    let mut bad = request(Opcode::Info, &[]);
    let last = bad.len() - 1;
    bad[last] ^= 0x5a;
    let r = step(&mut log, dev, "bad crc", &bad, 100_000);
    assert_eq!(status_of(&r), Status::BadCrc as u8);

    // Line noise before a frame (bytes that are not the sync byte are skipped).
    let mut noisy = vec![0x00, 0x13, 0xff];
    noisy.extend(request(Opcode::Status, &[]));
    let r = step(&mut log, dev, "noise then status", &noisy, 100_000);
    assert_eq!(status_of(&r), Status::Ok as u8);

    // A truncated frame: half a WRITE, then silence until the device gives up on it.
    let half = &request(Opcode::Write, &a)[..a.len() / 2];
    let idle = 4 * cfg.frame_timeout_cycles as u64 + 10_000;
    let r = step(&mut log, dev, "truncated", half, idle);
    assert_eq!(status_of(&r), Status::Truncated as u8);

    // Silence: a receive that times out, identically.
    let t = dev.recv(1, 500);
    assert!(matches!(t, Err(LinkError::Timeout { missing: 1, .. })));
    log.push(Event {
        what: "silence".into(),
        reply: t.map(|_| Vec::new()),
        cycles: dev.cycles(),
    });

    // And the device still works.
    let r = step(
        &mut log,
        dev,
        "info again",
        &request(Opcode::Info, &[]),
        100_000,
    );
    assert_eq!(status_of(&r), Status::Ok as u8);
    log
}

fn same_session(rows: usize, cols: usize) {
    let cfg = Config::new(rows, cols).unwrap();
    assert_eq!(session_pair(&cfg).len(), 12);
}

/// Runs the session on both RTL backends and asserts equal transcripts.
fn session_pair(cfg: &Config) -> Vec<Event> {
    let (rows, cols) = (cfg.rows, cfg.cols);
    let mut rtl = RtlDevice::new(cfg, RtlOptions::default()).unwrap();
    let mut vl = verilated(cfg);
    assert_eq!(vl.cycles(), rtl.cycles(), "after reset");
    let a = session(&mut rtl, cfg);
    let b = session(&mut vl, cfg);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "{rows}x{cols}: step `{}` differs", x.what);
    }
    assert_eq!(vl.backend(), "verilator");
    b
}

#[test]
fn verilated_4x4_equals_rust_hdl_byte_for_byte_and_cycle_for_cycle() {
    same_session(4, 4);
}

#[test]
fn verilated_8x8_equals_rust_hdl_byte_for_byte_and_cycle_for_cycle() {
    same_session(8, 8);
}

#[test]
fn bursts_split_anywhere_give_the_same_cycles() {
    // The FFI moves whole bursts; splitting a frame into single bytes must not change timing.
    let cfg = Config::new(4, 4).unwrap();
    let frame = request(Opcode::Info, &[]);
    let mut whole = verilated(&cfg);
    whole.send(&frame).unwrap();
    let a = whole.recv(4 + protocol::INFO_LEN + 2, 100_000).unwrap();
    let mut bytewise = verilated(&cfg);
    for b in &frame {
        bytewise.send(std::slice::from_ref(b)).unwrap();
    }
    let mut b = Vec::new();
    for _ in 0..4 + protocol::INFO_LEN + 2 {
        b.extend(bytewise.recv(1, 100_000).unwrap());
    }
    assert_eq!(a, b);
    assert_eq!(whole.cycles(), bytewise.cycles());
}

#[test]
fn menu_sizes_are_linked_in() {
    let built = trimac_verilator::built_sizes();
    for size in [(4, 4), (8, 8), (16, 16)] {
        assert!(
            built.contains(&size),
            "{size:?} must be built; built: {built:?}"
        );
    }
    assert!(trimac_verilator::build_error().is_none());
}

#[test]
fn other_shapes_are_built_on_demand_and_equal_rust_hdl() {
    // 4x8 is not in the menu: verilated and compiled on first use, then cached.
    same_session(4, 8);
}

#[test]
fn non_default_configurations_are_built_on_demand_and_equal_rust_hdl() {
    let cfg = Config {
        weight_depth: 64,
        act_depth: 64,
        result_depth: 32,
        max_m: 16,
        frame_timeout_cycles: 64,
        // The ECP5 boards' options, so their Verilog (registered reads, the result shifter)
        // is simulated too.
        registered_acc_reads: true,
        registered_host_reads: true,
        registered_act_reads: true,
        registered_weight_reads: true,
        // With 16 rows the code bus has two copies.
        registered_code_bus: true,
        registered_read_strobe: true,
        ..Config::new(16, 4).unwrap()
    };
    session_pair(&cfg);
}

#[test]
fn trace_writes_an_fst_when_the_name_ends_in_fst() {
    let cfg = Config::new(4, 4).unwrap();
    let path = std::env::temp_dir().join(format!("trimac-vl-{}.fst", std::process::id()));
    let cycles = {
        let mut dev = VerilatorDevice::new(
            &cfg,
            VerilatorOptions {
                trace: Some(path.clone()),
            },
        )
        .unwrap();
        dev.send(&request(Opcode::Info, &[])).unwrap();
        dev.recv(4 + protocol::INFO_LEN + 2, 100_000).unwrap();
        dev.cycles().unwrap()
    };
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    // An FST file starts with its header block (type 0) and is far smaller than a VCD.
    assert!(bytes.len() > 100, "FST of {} bytes", bytes.len());
    assert_eq!(bytes[0], 0, "FST header block");
    assert!(cycles > 40);
}

#[test]
fn trace_writes_a_vcd_of_the_session() {
    let cfg = Config::new(4, 4).unwrap();
    let path = std::env::temp_dir().join(format!("trimac-vl-{}.vcd", std::process::id()));
    {
        let mut dev = VerilatorDevice::new(
            &cfg,
            VerilatorOptions {
                trace: Some(path.clone()),
            },
        )
        .unwrap();
        dev.send(&request(Opcode::Info, &[])).unwrap();
        dev.recv(4 + protocol::INFO_LEN + 2, 100_000).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(text.contains("$enddefinitions"));
    for sig in ["in_data", "out_valid", "clock"] {
        assert!(text.contains(sig), "no {sig} in the VCD");
    }
    assert!(text.contains("\n#10\n") && text.contains("\n#20\n"));
    let bad = VerilatorDevice::new(
        &cfg,
        VerilatorOptions {
            trace: Some("/nonexistent-dir/x.vcd".into()),
        },
    );
    assert!(bad.err().unwrap().contains("/nonexistent-dir/x.vcd"));
}

/// Byte-by-byte transcript of traffic full of runs of equal bytes: the cycle count after each
/// byte sent, and each reply byte with the cycle count when it arrived.
fn runs_transcript(dev: &mut dyn ByteStream, cfg: &Config) -> Vec<(String, u8, Option<u64>)> {
    let mut log = Vec::new();
    let mut traffic = Vec::new();
    // Noise (no sync byte) in runs, then frames whose payloads are runs of one byte.
    for b in [0x00u8, 0x13, 0xff] {
        traffic.extend(std::iter::repeat_n(b, 40));
    }
    let mut w = vec![Memory::Weights as u8, 0, 0];
    w.extend(std::iter::repeat_n(
        0x55,
        cfg.rows * cfg.weight_word_bytes(),
    ));
    traffic.extend(request(Opcode::Write, &w));
    let mut a = vec![Memory::Activations as u8, 0, 0];
    a.extend(std::iter::repeat_n(0x7f, 2 * cfg.rows));
    a.extend(std::iter::repeat_n(0x80, cfg.rows));
    traffic.extend(request(Opcode::Write, &a));
    traffic.extend(request(Opcode::Status, &[]));
    traffic.extend(request(Opcode::Status, &[]));
    for &b in &traffic {
        dev.send(&[b]).expect("the device takes every byte");
        log.push(("sent".to_string(), b, dev.cycles()));
    }
    // Each reply is 4 + 2 (WRITE) or 4 + STATUS_LEN + 2 bytes; read one byte at a time.
    while let Ok(b) = dev.recv(1, 2_000) {
        log.push(("received".to_string(), b[0], dev.cycles()));
    }
    log.push(("silence".to_string(), 0, dev.cycles()));
    log
}

#[test]
fn runs_of_equal_inputs_give_the_same_bytes_and_cycles() {
    // Exercises the single-eval cycle of untraced models (csrc/shim.h): it is taken whenever
    // the inputs repeat, here while a byte waits to be taken and through runs of equal bytes.
    // The traced model (two evals every cycle) and rust-hdl must give the same transcript.
    for (rows, cols) in [(4, 4), (8, 8)] {
        let cfg = Config::new(rows, cols).unwrap();
        let mut rtl = RtlDevice::new(&cfg, RtlOptions::default()).unwrap();
        let reference = runs_transcript(&mut rtl, &cfg);
        let received = reference.iter().filter(|e| e.0 == "received").count();
        assert!(received >= 4 * 6, "{rows}x{cols}: replies to every frame");
        let vcd = std::env::temp_dir().join(format!(
            "trimac-runs-{rows}x{cols}-{}.vcd",
            std::process::id()
        ));
        let opts = VerilatorOptions {
            trace: Some(vcd.clone()),
        };
        let mut traced = VerilatorDevice::new(&cfg, opts).unwrap();
        let mut fast = verilated(&cfg);
        for (name, dev) in [
            ("untraced", &mut fast as &mut dyn ByteStream),
            ("traced", &mut traced),
        ] {
            let got = runs_transcript(dev, &cfg);
            assert_eq!(got.len(), reference.len(), "{rows}x{cols} {name}");
            for (i, (x, y)) in reference.iter().zip(&got).enumerate() {
                assert_eq!(x, y, "{rows}x{cols} {name}: event {i} differs");
            }
        }
        drop(traced);
        let _ = std::fs::remove_file(&vcd);
    }
}
