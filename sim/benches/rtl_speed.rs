//! Simulation speed of the whole rust-hdl top-level ([`RtlDevice`]) in simulated clock cycles
//! per second of wall time, for the 8x8 and 16x16 arrays.
//!
//! The workload is one fixed GEMM, `Y [32, 32] = X [32, 32] . W [32, 32]`, driven through the
//! byte protocol exactly as the host driver does: WRITE the weights, WRITE the activations,
//! CONFIGURE, RUN, READ the results. Two measurements per array:
//!
//! - `gemm`: the whole exchange (mostly link transfers, one byte per cycle);
//! - `run`: the RUN command alone (the array computing).
//!
//! Criterion's throughput is set to the simulated cycles of one iteration, so its
//! `thrpt` figure is simulated cycles per second. Run with `cargo bench -p trimac-sim`.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::hint::black_box;
use std::time::Duration;
use trimac_hdl::protocol::{frame, Memory, Opcode, Status, REPLY_SYNC, REQUEST_SYNC};
use trimac_hdl::Config;
use trimac_sim::golden;
use trimac_sim::rtl::{RtlDevice, RtlOptions};
use trimac_sim::ByteStream;

/// M = K = N of the fixed GEMM.
const DIM: usize = 32;

/// Cycles the device may stay silent before a reply byte (a RUN reply waits for the run).
const REPLY_WAIT: u64 = 1_000_000;

/// Sends one request and returns the OK reply's payload.
fn exchange(dev: &mut RtlDevice, op: Opcode, payload: &[u8]) -> Vec<u8> {
    dev.send(&frame(REQUEST_SYNC, op as u8, payload))
        .expect("the device takes the request");
    let head = dev.recv(4, REPLY_WAIT).expect("reply header");
    assert_eq!(head[0], REPLY_SYNC, "reply sync");
    assert_eq!(head[1], Status::Ok as u8, "{op:?} refused");
    let len = u16::from_le_bytes([head[2], head[3]]) as usize;
    let mut rest = dev.recv(len + 2, REPLY_WAIT).expect("reply payload");
    rest.truncate(len);
    rest
}

/// The fixed operands, already in link format, and the expected result bytes.
struct Operands {
    weights: Vec<u8>,
    activations: Vec<u8>,
    descriptor: [u8; 16],
    result_words: u16,
    expected: Vec<u8>,
}

impl Operands {
    fn new(cfg: &Config) -> Operands {
        assert!(DIM.is_multiple_of(cfg.rows) && DIM.is_multiple_of(cfg.cols));
        let (kt, nt) = (DIM / cfg.rows, DIM / cfg.cols);
        // A fixed, varied pattern: X over the whole int8 range, W over {-1, 0, 1}.
        let x: Vec<i8> = (0..DIM * DIM).map(|i| (i * 97 + 13) as u8 as i8).collect();
        let w: Vec<i8> = (0..DIM * DIM)
            .map(|i| ((i * 7 + i / 5) % 3) as i8 - 1)
            .collect();
        // Weight word (t, kk): the codes of row kk, columns of N-tile t, 4 per byte.
        let mut weights = Vec::new();
        for t in 0..nt {
            for kk in 0..DIM {
                for b in 0..cfg.cols / 4 {
                    let byte = (0..4).fold(0u8, |acc, q| {
                        let code = (w[kk * DIM + t * cfg.cols + 4 * b + q] as u8) & 3;
                        acc | code << (2 * q)
                    });
                    weights.push(byte);
                }
            }
        }
        // K is a whole number of tiles, so the activation words are X row-major.
        let activations = x.iter().map(|&v| v as u8).collect();
        let mut descriptor = [0u8; 16];
        for (i, half) in [DIM, kt, nt, 0, 0, 0, 1].iter().enumerate() {
            descriptor[2 * i..2 * i + 2].copy_from_slice(&(*half as u16).to_le_bytes());
        }
        // Result word r * nt + t holds columns of tile t; with N whole tiles that is Y
        // row-major, int32 little-endian.
        let expected = golden::gemm(&x, &w, DIM, DIM, DIM)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        Operands {
            weights,
            activations,
            descriptor,
            result_words: (DIM * nt) as u16,
            expected,
        }
    }

    fn write(&self, dev: &mut RtlDevice, mem: Memory, data: &[u8]) {
        let mut payload = vec![mem as u8, 0, 0];
        payload.extend_from_slice(data);
        exchange(dev, Opcode::Write, &payload);
    }

    /// The whole GEMM: load, configure, run, read. Returns the result bytes.
    fn gemm(&self, dev: &mut RtlDevice) -> Vec<u8> {
        self.write(dev, Memory::Weights, &self.weights);
        self.write(dev, Memory::Activations, &self.activations);
        exchange(dev, Opcode::Configure, &self.descriptor);
        exchange(dev, Opcode::Run, &[]);
        let [lo, hi] = self.result_words.to_le_bytes();
        exchange(dev, Opcode::Read, &[Memory::Results as u8, 0, 0, lo, hi])
    }
}

/// Simulated cycles `f` takes on `dev`.
fn cycles_of(dev: &mut RtlDevice, f: impl FnOnce(&mut RtlDevice)) -> u64 {
    let before = dev.cycles().expect("the simulator counts cycles");
    f(dev);
    dev.cycles().expect("the simulator counts cycles") - before
}

fn rtl_speed(c: &mut Criterion) {
    let mut group = c.benchmark_group("rtl_speed");
    // One simulated GEMM takes a second or more on 16x16: few, equal-sized samples.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (rows, cols) in [(8, 8), (16, 16)] {
        let cfg = Config::new(rows, cols).expect("a valid array");
        let ops = Operands::new(&cfg);
        let mut dev = RtlDevice::new(&cfg, RtlOptions::default()).expect("the top-level builds");
        // Calibrate: the result must be exact and every repetition take the same cycles.
        let mut result = Vec::new();
        let gemm_cycles = cycles_of(&mut dev, |d| result = ops.gemm(d));
        assert_eq!(result, ops.expected, "{rows}x{cols}: wrong GEMM result");
        assert_eq!(cycles_of(&mut dev, |d| drop(ops.gemm(d))), gemm_cycles);
        let run_cycles = cycles_of(&mut dev, |d| drop(exchange(d, Opcode::Run, &[])));
        eprintln!(
            "{rows}x{cols}: one {DIM}x{DIM}x{DIM} GEMM = {gemm_cycles} simulated cycles, \
             its RUN exchange = {run_cycles}"
        );

        group.throughput(Throughput::Elements(gemm_cycles));
        group.bench_function(format!("gemm{DIM}/{rows}x{cols}"), |b| {
            b.iter(|| black_box(ops.gemm(&mut dev)))
        });
        group.throughput(Throughput::Elements(run_cycles));
        group.bench_function(format!("run{DIM}/{rows}x{cols}"), |b| {
            b.iter(|| black_box(exchange(&mut dev, Opcode::Run, &[])))
        });
    }
    group.finish();
}

criterion_group!(benches, rtl_speed);
criterion_main!(benches);
