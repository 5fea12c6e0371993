//! Driver against the reference device (`cpu` backend): GEMM and MLP results equal the golden
//! model for any shape, and memory-limited devices still give exact results.

use proptest::prelude::*;
use trimac_driver::client::Accelerator;
use trimac_driver::device::{open, Device, LayerDescriptor, OpenOptions};
use trimac_driver::error::DriverError;
use trimac_driver::gemm::{run_gemm, run_gemm_matrices};
use trimac_driver::mlp::{golden_logits, run_mlp, Chaining};
use trimac_driver::model::{InputQuant, Layer, Model};
use trimac_driver::npy::Matrix;
use trimac_hdl::protocol::{Memory, Status};
use trimac_hdl::Config;
use trimac_sim::golden::{gemm, Requant};
use trimac_sim::reference::ReferenceDevice;

fn device(cfg: &Config) -> Accelerator<ReferenceDevice> {
    Accelerator::connect(ReferenceDevice::new(cfg), Some(cfg)).expect("connect")
}

/// A small device whose memories force every kind of splitting.
fn tiny() -> Config {
    Config {
        weight_depth: 16,
        act_depth: 6,
        result_depth: 4,
        max_m: 3,
        ..Config::new(4, 4).unwrap()
    }
}

fn no_progress() -> impl FnMut(usize, usize) {
    |_, _| {}
}

/// Deterministic pseudo-random values (a tiny LCG), enough for fixed test data.
fn lcg(seed: u64, len: usize) -> Vec<u64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s >> 33
        })
        .collect()
}

fn ternary(seed: u64, len: usize) -> Vec<i8> {
    lcg(seed, len).iter().map(|v| (v % 3) as i8 - 1).collect()
}

fn int8(seed: u64, len: usize) -> Vec<i8> {
    lcg(seed, len).iter().map(|v| *v as u8 as i8).collect()
}

fn check_gemm(dev: &mut dyn Device, x: &[i8], w: &[i8], (m, k, n): (usize, usize, usize)) {
    let report = run_gemm(dev, x, w, (m, k, n), &mut no_progress()).expect("gemm");
    assert_eq!(report.y, gemm(x, w, m, k, n), "m={m} k={k} n={n}");
    assert_eq!(report.macs, (m * k * n) as u64);
    assert!(report.cycles > 0 && report.runs > 0);
    assert!(report.utilization > 0.0 && report.utilization <= 1.0);
}

/// Weights: random ternary, all zero, or all -1.
fn weights(len: usize) -> impl Strategy<Value = Vec<i8>> {
    prop_oneof![
        proptest::collection::vec(-1i8..=1, len),
        Just(vec![0i8; len]),
        Just(vec![-1i8; len]),
    ]
}

/// Activations: random, or the extremes -128 and 127 only.
fn activations(len: usize) -> impl Strategy<Value = Vec<i8>> {
    prop_oneof![
        proptest::collection::vec(any::<i8>(), len),
        proptest::collection::vec(prop_oneof![Just(-128i8), Just(127i8)], len),
    ]
}

fn gemm_case(array: usize) -> impl Strategy<Value = (usize, usize, usize, Vec<i8>, Vec<i8>)> {
    let dim = 1..=3 * array;
    (dim.clone(), dim.clone(), dim).prop_flat_map(|(m, k, n)| {
        (
            Just(m),
            Just(k),
            Just(n),
            activations(m * k),
            weights(k * n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn gemm_equals_golden_on_4x4((m, k, n, x, w) in gemm_case(4)) {
        check_gemm(&mut device(&Config::new(4, 4).unwrap()), &x, &w, (m, k, n));
    }

    #[test]
    fn gemm_equals_golden_on_8x8((m, k, n, x, w) in gemm_case(8)) {
        check_gemm(&mut device(&Config::new(8, 8).unwrap()), &x, &w, (m, k, n));
    }

    #[test]
    fn gemm_equals_golden_on_tiny_memories((m, k, n, x, w) in gemm_case(4)
        .prop_filter("K fits", |c| c.1 <= 16)) {
        check_gemm(&mut device(&tiny()), &x, &w, (m, k, n));
    }
}

#[test]
fn gemm_on_rectangular_array() {
    let cfg = Config::new(2, 8).unwrap();
    let mut dev = device(&cfg);
    for (m, k, n) in [(1, 1, 1), (7, 10, 17), (20, 3, 9)] {
        check_gemm(&mut dev, &int8(1, m * k), &ternary(2, k * n), (m, k, n));
    }
}

#[test]
fn gemm_splits_rows_beyond_max_m() {
    let cfg = Config {
        max_m: 5,
        ..Config::new(4, 4).unwrap()
    };
    let mut dev = device(&cfg);
    let (m, k, n) = (23, 9, 6);
    check_gemm(&mut dev, &int8(3, m * k), &ternary(4, k * n), (m, k, n));
    assert!(dev.stats().runs >= 5);
}

#[test]
fn gemm_refuses_bad_inputs_clearly() {
    let mut dev = device(&tiny());
    let err = |r: Result<_, DriverError>| r.expect_err("must fail").to_string();
    let k_big = err(run_gemm(
        &mut dev,
        &[0; 17],
        &[0; 17],
        (1, 17, 1),
        &mut no_progress(),
    ));
    assert!(
        k_big.contains("K = 17") && k_big.contains("K <= 16"),
        "{k_big}"
    );
    let not_ternary = err(run_gemm(
        &mut dev,
        &[1, 2],
        &[1, 0, 3, 0],
        (1, 2, 2),
        &mut no_progress(),
    ));
    assert!(not_ternary.contains("W[1, 0] = 3"), "{not_ternary}");
    let x_len = err(run_gemm(
        &mut dev,
        &[1, 2, 3],
        &[1, 0],
        (1, 2, 1),
        &mut no_progress(),
    ));
    assert!(x_len.contains("X has 3 values"), "{x_len}");
    let x = Matrix {
        rows: 2,
        cols: 3,
        data: vec![0i8; 6],
    };
    let w = Matrix {
        rows: 4,
        cols: 2,
        data: vec![0i8; 8],
    };
    let shape = err(run_gemm_matrices(&mut dev, &x, &w, &mut no_progress()));
    assert!(shape.contains("X is 2x3 but W is 4x2"), "{shape}");
}

#[test]
fn progress_reports_every_run() {
    let mut dev = device(&tiny());
    let mut seen = Vec::new();
    let mut progress = |done: usize, total: usize| seen.push((done, total));
    run_gemm(
        &mut dev,
        &int8(5, 7 * 8),
        &ternary(6, 8 * 9),
        (7, 8, 9),
        &mut progress,
    )
    .unwrap();
    let total = seen.last().unwrap().1;
    assert_eq!(seen.len(), total);
    assert!(seen
        .iter()
        .enumerate()
        .all(|(i, (d, t))| *d == i + 1 && *t == total));
}

#[test]
fn commands_round_trip_and_report_device_errors() {
    let cfg = Config::new(4, 4).unwrap();
    let mut dev = device(&cfg);
    assert_eq!(Device::info(&dev).config, cfg);
    let words: Vec<u8> = (0..12).map(|i| i * 3).collect();
    dev.write(Memory::Activations, 5, &words).unwrap();
    assert_eq!(dev.read(Memory::Activations, 5, 3).unwrap(), words);
    let run = dev.run().unwrap_err();
    assert!(
        matches!(
            run,
            DriverError::Status {
                command: "RUN",
                status: Status::NotConfigured
            }
        ),
        "{run}"
    );
    assert!(dev.write(Memory::Results, 0, &[0; 16]).is_err());
    assert!(dev.write(Memory::Activations, 0, &[0; 3]).is_err());
    assert!(dev.read(Memory::Activations, 4090, 7).is_err());
    dev.configure(&LayerDescriptor {
        m: 2,
        k_tiles: 1,
        n_tiles: 1,
        mult: 1,
        ..LayerDescriptor::default()
    })
    .unwrap();
    assert!(dev.status().unwrap().configured);
    let cycles = dev.run().unwrap();
    assert_eq!(cycles, cfg.run_cycles(2, 1, 1));
    assert_eq!(dev.status().unwrap().last_run_cycles as u64, cycles);
    dev.reset().unwrap();
    assert!(!dev.status().unwrap().configured);
}

#[test]
fn large_transfers_are_split_into_frames() {
    let cfg = Config::new(8, 8).unwrap();
    let mut dev = device(&cfg);
    let words: Vec<u8> = (0..4096 * 8).map(|i| (i % 251) as u8).collect();
    dev.write(Memory::Activations, 0, &words).unwrap();
    assert_eq!(dev.read(Memory::Activations, 0, 4096).unwrap(), words);
    assert!(dev.stats().commands >= 1 + 8 + 8);
}

#[test]
fn open_checks_backend_and_shape() {
    let cfg = Config::new(4, 4).unwrap();
    let dev = open("cpu", &cfg, &OpenOptions::default()).unwrap();
    assert_eq!(dev.backend(), "cpu");
    assert_eq!(dev.config().array_name(), "4x4");
    let vcd = OpenOptions {
        vcd: Some("x.vcd".into()),
    };
    assert!(open("cpu", &cfg, &vcd).is_err());
    let mismatch = Accelerator::connect(
        ReferenceDevice::new(&Config::new(8, 8).unwrap()),
        Some(&Config::new(16, 16).unwrap()),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        mismatch.contains("device is 8x8 protocol v1, you asked for 16x16"),
        "{mismatch}"
    );
}

// ----- MLP ---------------------------------------------------------------------------------

fn random_model(dims: &[usize], seed: u64) -> Model {
    let count = dims.len() - 1;
    let layers = (0..count)
        .map(|i| Layer {
            k: dims[i],
            n: dims[i + 1],
            weights: ternary(seed + i as u64, dims[i] * dims[i + 1]),
            requant: (i + 1 < count).then_some(Requant {
                mult: 300 + 37 * i as u16,
                shift: 10,
                relu: i % 2 == 0,
            }),
        })
        .collect();
    Model {
        layers,
        input_len: dims[0],
        classes: dims[count],
        input_quant: InputQuant::default(),
    }
}

fn check_mlp(cfg: &Config, dims: &[usize], images: usize, chaining: Chaining) {
    let model = random_model(dims, 11);
    let x = int8(12, images * dims[0]);
    let mut dev = device(cfg);
    let report = run_mlp(&mut dev, &model, &x, images, &mut no_progress()).unwrap();
    assert_eq!(report.chaining, chaining);
    let golden = golden_logits(&model, &x, images).unwrap();
    assert_eq!(report.logits, golden, "{} {dims:?}", cfg.array_name());
    assert_eq!(report.predictions.len(), images);
    assert!(report.run_cycles > 0 && report.utilization > 0.0);
}

#[test]
fn mlp_chains_on_square_arrays() {
    check_mlp(
        &Config::new(4, 4).unwrap(),
        &[13, 22, 9, 5],
        37,
        Chaining::OnDevice,
    );
    check_mlp(
        &Config::new(8, 8).unwrap(),
        &[64, 128, 10],
        20,
        Chaining::OnDevice,
    );
}

#[test]
fn mlp_chains_on_host_for_rectangular_arrays() {
    check_mlp(
        &Config::new(8, 4).unwrap(),
        &[13, 22, 9, 5],
        11,
        Chaining::Host,
    );
}

#[test]
fn mlp_on_tiny_memories_reloads_and_chunks() {
    let cfg = Config {
        weight_depth: 16,
        act_depth: 8,
        result_depth: 4,
        max_m: 3,
        ..Config::new(4, 4).unwrap()
    };
    check_mlp(&cfg, &[7, 6, 3], 10, Chaining::OnDevice);
    let model = random_model(&[7, 6, 3], 1);
    let mut dev = device(&cfg);
    let r = run_mlp(&mut dev, &model, &int8(2, 70), 10, &mut no_progress()).unwrap();
    assert!(!r.weights_resident);
}

#[test]
fn mlp_single_layer() {
    check_mlp(&Config::new(4, 4).unwrap(), &[9, 3], 5, Chaining::OnDevice);
}
