//! Consecutive layers requantized and chained on the device, on every backend: the committed
//! digits model and random models give exactly the golden logits.

use std::path::Path;
use trimac_driver::mlp::{golden_logits, run_mlp, Chaining};
use trimac_driver::model::{
    InputQuant, Layer, Model, TestSet, DIGITS_MODEL, DIGITS_TEST_X, DIGITS_TEST_Y,
};
use trimac_hdl::Config;
use trimac_sim::golden::Requant;
use trimac_tests::{device, random_int8, random_ternary, BACKENDS};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn check_model(cfg: &Config, model: &Model, x: &[i8], images: usize) {
    let expected = golden_logits(model, x, images).expect("golden");
    for backend in BACKENDS {
        let mut dev = device(backend, cfg);
        let report = run_mlp(dev.as_mut(), model, x, images, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert_eq!(report.logits, expected, "{backend} on {}", cfg.array_name());
        if cfg.rows == cfg.cols {
            assert_eq!(report.chaining, Chaining::OnDevice, "{backend}");
        }
    }
}

#[test]
fn digits_model_on_device() {
    let model = Model::load(&root().join(DIGITS_MODEL)).expect("committed model");
    let test = TestSet::load(&root().join(DIGITS_TEST_X), &root().join(DIGITS_TEST_Y))
        .expect("test split");
    let images = 24;
    check_model(
        &Config::new(8, 8).unwrap(),
        &model,
        &test.x[..images * test.cols],
        images,
    );
}

#[test]
fn random_three_layer_models() {
    let shapes = [(13, 9), (9, 20), (20, 5)];
    for (seed, cfg) in [
        (1u64, Config::new(4, 4).unwrap()),
        (2, Config::new(4, 8).unwrap()),
    ] {
        let layers: Vec<Layer> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(k, n))| Layer {
                k,
                n,
                weights: random_ternary(seed * 10 + i as u64, k * n),
                requant: (i + 1 < shapes.len()).then_some(Requant {
                    mult: 1000 + i as u16 * 77,
                    shift: 12,
                    relu: i == 0,
                }),
            })
            .collect();
        let model = Model {
            layers,
            input_len: 13,
            classes: 5,
            input_quant: InputQuant::default(),
        };
        let images = 7;
        check_model(&cfg, &model, &random_int8(seed, images * 13), images);
    }
}

/// Every requantizer corner on the device: a first layer requantized with the shift, multiplier
/// and ReLU under test, then an identity layer, so the logits are the requantized bytes
/// themselves. Sums reach the clamp at both ends and sit on rounding boundaries.
#[test]
fn requantization_corners_on_device() {
    let cfg = Config::new(4, 4).unwrap();
    let (k, h, images) = (12, 4, 6);
    // Inputs at the int8 extremes and in between, so sums span -1536..=1536.
    let mut x = random_int8(7, images * k);
    for (i, v) in x.iter_mut().enumerate().take(2 * k) {
        *v = if i < k { 127 } else { -128 };
    }
    let identity: Vec<i8> = (0..h * h).map(|i| i8::from(i / h == i % h)).collect();
    let cases = [
        (1u16, 0u8, false),
        (1, 0, true),
        (u16::MAX, 0, false),
        (u16::MAX, 31, false),
        (u16::MAX, 16, true),
        (u16::MAX, 24, false),
        (3, 1, false),
        (3, 2, true),
        (255, 7, false),
        (1000, 12, true),
        (32768, 20, false),
        (0, 5, false),
        (12345, 17, true),
        (7, 31, false),
    ];
    for (seed, &(mult, shift, relu)) in cases.iter().enumerate() {
        let model = Model {
            layers: vec![
                Layer {
                    k,
                    n: h,
                    weights: random_ternary(100 + seed as u64, k * h),
                    requant: Some(Requant { mult, shift, relu }),
                },
                Layer {
                    k: h,
                    n: h,
                    weights: identity.clone(),
                    requant: None,
                },
            ],
            input_len: k,
            classes: h,
            input_quant: InputQuant::default(),
        };
        check_model(&cfg, &model, &x, images);
    }
}
