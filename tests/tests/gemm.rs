//! GEMM on every backend: bit-exact against the golden model for random shapes (including
//! shapes that are not multiples of the array) and edge values, and exactly the documented
//! cycle count.

use proptest::prelude::*;
use trimac_driver::device::Device;
use trimac_driver::gemm::{plan, run_gemm, Step};
use trimac_hdl::Config;
use trimac_sim::golden;
use trimac_tests::{device, random_int8, random_ternary, BACKENDS, RTL_BACKENDS};

/// The cycles the documented formula predicts for the runs the driver plans.
fn formula_cycles(cfg: &Config, m: usize, k: usize, n: usize) -> u64 {
    let k_tiles = k.div_ceil(cfg.rows);
    plan(cfg, m, k, n)
        .expect("plan")
        .iter()
        .map(|step| match step {
            Step::Run { rows, tiles, .. } => cfg.run_cycles(rows.len(), k_tiles, tiles.len()),
            _ => 0,
        })
        .sum()
}

/// Runs the GEMM on every backend; checks integers, the formula, and that RTL backends agree.
fn check_all_backends(cfg: &Config, x: &[i8], w: &[i8], (m, k, n): (usize, usize, usize)) {
    let expected = golden::gemm(x, w, m, k, n);
    let cycles = formula_cycles(cfg, m, k, n);
    let mut rtl_cycles = vec![];
    for backend in BACKENDS {
        let mut dev: Box<dyn Device> = device(backend, cfg);
        let report = run_gemm(dev.as_mut(), x, w, (m, k, n), &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{backend}: gemm {m}x{k}x{n} failed: {e}"));
        assert_eq!(
            report.y,
            expected,
            "{backend}: {m}x{k}x{n} on {}",
            cfg.array_name()
        );
        assert_eq!(report.cycles, cycles, "{backend}: cycles of {m}x{k}x{n}");
        if RTL_BACKENDS.contains(backend) {
            rtl_cycles.push((backend, report.cycles, report.transfer_cycles));
        }
    }
    // The RTL simulations also agree on the link cycles of the same work.
    for pair in rtl_cycles.windows(2) {
        assert_eq!(pair[0].1, pair[1].1, "{} vs {}", pair[0].0, pair[1].0);
        assert_eq!(
            pair[0].2, pair[1].2,
            "{} vs {} transfer cycles",
            pair[0].0, pair[1].0
        );
    }
}

/// Activation values biased towards the edges of int8.
fn activation() -> impl Strategy<Value = i8> {
    prop_oneof![
        Just(-128i8),
        Just(127i8),
        Just(0i8),
        Just(-1i8),
        any::<i8>()
    ]
}

fn weight() -> impl Strategy<Value = i8> {
    prop_oneof![Just(-1i8), Just(0i8), Just(1i8)]
}

fn gemm_case(max_dim: usize) -> impl Strategy<Value = (usize, usize, usize, Vec<i8>, Vec<i8>)> {
    (1..=max_dim, 1..=max_dim, 1..=max_dim).prop_flat_map(|(m, k, n)| {
        (
            Just(m),
            Just(k),
            Just(n),
            proptest::collection::vec(activation(), m * k),
            prop_oneof![
                proptest::collection::vec(weight(), k * n),
                Just(vec![-1i8; k * n]),
                Just(vec![0i8; k * n]),
            ],
        )
    })
}

/// `cfg` with the accumulator lanes', the host's, the activation feed's and the weight
/// feed's RAM reads registered, the code bus staged and the READ strobe registered (as the
/// ECP5 boards build it).
fn registered_reads(cfg: Config) -> Config {
    Config {
        registered_acc_reads: true,
        registered_host_reads: true,
        registered_act_reads: true,
        registered_weight_reads: true,
        registered_code_bus: true,
        registered_read_strobe: true,
        ..cfg
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn random_shapes_4x4((m, k, n, x, w) in gemm_case(12)) {
        check_all_backends(&Config::new(4, 4).unwrap(), &x, &w, (m, k, n));
    }

    #[test]
    fn random_shapes_8x8((m, k, n, x, w) in gemm_case(24)) {
        check_all_backends(&Config::new(8, 8).unwrap(), &x, &w, (m, k, n));
    }

    /// The ECP5 boards' registered RAM reads (accumulator lanes, activation feed, host reads):
    /// the same integers and the same cycles, on square, wide and tall arrays.
    #[test]
    fn random_shapes_with_registered_reads(
        (m, k, n, x, w) in gemm_case(13),
        shape in prop_oneof![Just((4, 4)), Just((8, 8)), Just((4, 8)), Just((8, 4))],
    ) {
        let cfg = registered_reads(Config::new(shape.0, shape.1).unwrap());
        check_all_backends(&cfg, &x, &w, (m, k, n));
    }

    #[test]
    fn random_shapes_wide_and_tall_arrays((m, k, n, x, w) in gemm_case(13), wide in any::<bool>()) {
        let cfg = if wide { Config::new(4, 8) } else { Config::new(8, 4) }.unwrap();
        check_all_backends(&cfg, &x, &w, (m, k, n));
    }
}

#[test]
fn edge_values() {
    let plain = Config::new(4, 4).unwrap();
    let (m, k, n) = (5, 9, 6);
    let cases: [(Vec<i8>, Vec<i8>); 5] = [
        (vec![-128; m * k], vec![-1; k * n]),
        (vec![-128; m * k], vec![1; k * n]),
        (vec![127; m * k], vec![-1; k * n]),
        (random_int8(1, m * k), vec![0; k * n]),
        (vec![0; m * k], random_ternary(2, k * n)),
    ];
    for cfg in [plain.clone(), registered_reads(plain)] {
        for (x, w) in &cases {
            check_all_backends(&cfg, x, w, (m, k, n));
        }
    }
}

#[test]
fn gemv_and_single_elements() {
    let cfg = Config::new(8, 8).unwrap();
    for (m, k, n) in [(1, 1, 1), (1, 64, 40), (1, 7, 3), (3, 1, 17)] {
        check_all_backends(
            &cfg,
            &random_int8(m as u64, m * k),
            &random_ternary(k as u64, k * n),
            (m, k, n),
        );
    }
}

#[test]
fn more_rows_than_the_accumulators_hold() {
    let plain = Config {
        max_m: 8,
        act_depth: 64,
        ..Config::new(4, 4).unwrap()
    };
    let (m, k, n) = (21, 10, 9);
    for cfg in [plain.clone(), registered_reads(plain)] {
        check_all_backends(
            &cfg,
            &random_int8(3, m * k),
            &random_ternary(4, k * n),
            (m, k, n),
        );
    }
}

#[test]
fn largest_accumulations_stay_exact() {
    // K = 256 of -128 * -1: every sum is 32768, past the array's 16-bit partial sums.
    let plain = Config::new(4, 4).unwrap();
    let (m, k, n) = (2, 256, 4);
    for cfg in [plain.clone(), registered_reads(plain)] {
        check_all_backends(&cfg, &vec![-128; m * k], &vec![-1; k * n], (m, k, n));
    }
}

/// The larger menu arrays, on every backend: a full column of -128 * -1 (or * +1, or 127 * -1)
/// reaches the largest partial sum of each row's width (rows 15 and 31 at 13 and 14 bits),
/// with shapes that are not multiples of the array.
#[test]
fn large_arrays_edge_values() {
    for (rows, (m, k, n)) in [(16, (20, 48, 33)), (32, (3, 64, 35))] {
        let cfg = Config::new(rows, rows).unwrap();
        let cases: [(Vec<i8>, Vec<i8>); 4] = [
            (vec![-128; m * k], vec![-1; k * n]),
            (vec![-128; m * k], vec![1; k * n]),
            (vec![127; m * k], vec![-1; k * n]),
            (random_int8(5, m * k), random_ternary(6, k * n)),
        ];
        for (x, w) in cases {
            check_all_backends(&cfg, &x, &w, (m, k, n));
        }
    }
}
