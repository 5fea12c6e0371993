//! Inference of a ternary MLP ([`Model`]) on a device, and the same computation on the CPU
//! with the golden model for comparison.
//!
//! All layers' weights are loaded once when they fit the weight memory together (else each
//! layer's weights are loaded before its run). Input rows go through the network in chunks:
//!
//! - on a square array the layers chain **on the device**: each hidden layer runs with
//!   `INT8_OUT` (+ `RELU`) and writes its int8 outputs into the other half of the activation
//!   memory (ping-pong), laid out exactly as the next layer's inputs; only the last layer's
//!   int32 logits are read back;
//! - on a non-square array the device cannot write int8 outputs, so every layer writes int32
//!   results, which the host reads back, requantizes ([`Requant::apply`], the same integers) and
//!   writes as the next layer's activations ([`Chaining::Host`]).
//!
//! A chunk's logits are kept only if no command of its pass needed a retry; otherwise the
//! weights and the chunk are written again and the pass repeated (see `Runner::chunk_checked`):
//! a damaged WRITE header may have stored words anywhere before its CRC failed.

use crate::device::{Device, LayerDescriptor};
use crate::error::DriverError;
use crate::gemm::{to_u16, too_noisy, utilization, MAX_PASSES};
use crate::layout::{check_ternary, pack_activations, pack_weights, tiles, unpack_results};
use crate::model::{argmax, Layer, Model};
use std::time::Instant;
use trimac_hdl::protocol::Memory;
use trimac_hdl::Config;
use trimac_sim::golden::Requant;

/// Where hidden layers' outputs become the next layer's inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chaining {
    /// On the device: `INT8_OUT` into the other activation region (square arrays).
    OnDevice,
    /// On the host: int32 results read back, requantized and written again (non-square arrays).
    Host,
}

impl Chaining {
    /// Short name for reports (`device`, `host`).
    pub fn name(self) -> &'static str {
        match self {
            Chaining::OnDevice => "device",
            Chaining::Host => "host",
        }
    }
}

/// Result and cost of running a model on a device.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpReport {
    /// Images (input rows) run.
    pub images: usize,
    /// Logits per image.
    pub classes: usize,
    /// `[images, classes]` int32 logits, row-major.
    pub logits: Vec<i32>,
    /// Predicted class of each image (first largest logit).
    pub predictions: Vec<usize>,
    /// Sum of the cycles the device reported for its RUNs.
    pub run_cycles: u64,
    /// Link cycles of WRITE and READ exchanges (bytes for backends without a cycle counter).
    pub transfer_cycles: u64,
    /// Bytes moved by WRITE and READ exchanges.
    pub transfer_bytes: u64,
    /// RUN commands issued.
    pub runs: u64,
    /// Requests resent after link errors.
    pub retries: u64,
    /// Multiply-accumulates of the model proper, `images * sum(k * n)`.
    pub macs: u64,
    /// `macs / (run_cycles * rows * cols)`.
    pub utilization: f64,
    /// How hidden layers were chained.
    pub chaining: Chaining,
    /// Whether all weights stayed resident (loaded once).
    pub weights_resident: bool,
    /// Wall-clock time, in seconds.
    pub wall_seconds: f64,
}

/// How a model is placed in a device's memories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MlpPlan {
    /// Chaining mode.
    pub chaining: Chaining,
    /// Input rows per chunk.
    pub chunk: usize,
    /// Words of each ping-pong activation region (on-device chaining).
    pub region_words: usize,
    /// Weight base of each layer; all 0 when the weights are not resident.
    pub wt_bases: Vec<usize>,
    /// All weights loaded once.
    pub weights_resident: bool,
}

/// Checks that the model's layers chain (`n` of a layer = `k` of the next), that hidden layers
/// requantize and the last one does not, and that the weights are ternary.
pub fn check_model(model: &Model) -> Result<(), DriverError> {
    let bad = |m: String| Err(DriverError::Shape(format!("model: {m}")));
    let Some(last) = model.layers.last() else {
        return bad("it has no layers".into());
    };
    if model.layers[0].k != model.input_len {
        return bad(format!(
            "layer 0 takes {} inputs, the model declares {}",
            model.layers[0].k, model.input_len
        ));
    }
    if last.n != model.classes {
        return bad(format!(
            "the last layer has {} outputs, the model declares {} classes",
            last.n, model.classes
        ));
    }
    for (i, l) in model.layers.iter().enumerate() {
        let is_last = i + 1 == model.layers.len();
        if let Some(next) = model.layers.get(i + 1) {
            if l.n != next.k {
                return bad(format!(
                    "layer {i} has {} outputs, layer {} takes {}",
                    l.n,
                    i + 1,
                    next.k
                ));
            }
        }
        if l.requant.is_some() == is_last {
            return bad(match is_last {
                true => "the last layer must output int32 logits (no requantization)".into(),
                false => format!("hidden layer {i} has no requantization"),
            });
        }
        check_ternary(&l.weights, l.k, l.n)
            .map_err(|e| DriverError::Shape(format!("model layer {i}: {e}")))?;
    }
    Ok(())
}

/// Places `model` in `cfg`'s memories, for chunks of at most `images` rows.
pub fn plan(cfg: &Config, model: &Model, images: usize) -> Result<MlpPlan, DriverError> {
    check_model(model)?;
    let rows = cfg.rows;
    let kts: Vec<usize> = model.layers.iter().map(|l| tiles(l.k, rows)).collect();
    let nts: Vec<usize> = model.layers.iter().map(|l| tiles(l.n, cfg.cols)).collect();
    let words: Vec<usize> = kts.iter().zip(&nts).map(|(k, n)| k * n * rows).collect();
    for (i, (w, l)) in words.iter().zip(&model.layers).enumerate() {
        if *w > cfg.weight_depth {
            return Err(DriverError::Capacity(format!(
                "model layer {i} ({}x{}) needs {w} weight words, the {} device has {}",
                l.k,
                l.n,
                cfg.array_name(),
                cfg.weight_depth
            )));
        }
    }
    let weights_resident = words.iter().sum::<usize>() <= cfg.weight_depth;
    let wt_bases = match weights_resident {
        true => prefix_sums(&words),
        false => vec![0; words.len()],
    };
    let chaining = match cfg.rows == cfg.cols {
        true => Chaining::OnDevice,
        false => Chaining::Host,
    };
    let span = kts.iter().copied().max().unwrap_or(1);
    let regions = if chaining == Chaining::OnDevice && model.layers.len() > 1 {
        2
    } else {
        1
    };
    let mut chunk = images
        .max(1)
        .min(cfg.max_m)
        .min(cfg.act_depth / (regions * span))
        .min(u16::MAX as usize);
    let result_tiles = match chaining {
        Chaining::OnDevice => nts[nts.len() - 1],
        Chaining::Host => nts.iter().copied().max().unwrap_or(1),
    };
    chunk = chunk.min(cfg.result_depth / result_tiles);
    if chunk == 0 {
        return Err(DriverError::Capacity(format!(
            "the model does not fit the {} device's memories: one image needs {} activation \
             words ({} available) and {result_tiles} result words ({} available)",
            cfg.array_name(),
            regions * span,
            cfg.act_depth,
            cfg.result_depth
        )));
    }
    Ok(MlpPlan {
        chaining,
        chunk,
        region_words: chunk * span,
        wt_bases,
        weights_resident,
    })
}

fn prefix_sums(v: &[usize]) -> Vec<usize> {
    v.iter()
        .scan(0, |acc, w| {
            let base = *acc;
            *acc += w;
            Some(base)
        })
        .collect()
}

/// Runs `model` on `dev` for the `images` input rows of `x` (row-major int8
/// `[images, input_len]`). `progress(done, total)` is called after every chunk of images.
pub fn run_mlp(
    dev: &mut dyn Device,
    model: &Model,
    x: &[i8],
    images: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<MlpReport, DriverError> {
    check_inputs(model, x, images)?;
    let cfg = dev.config().clone();
    let plan = plan(&cfg, model, images)?;
    let start = Instant::now();
    let before = dev.stats();
    let runner = Runner {
        model,
        cfg: &cfg,
        plan: &plan,
    };
    let mut weights_clean = None;
    let mut logits = Vec::with_capacity(images * model.classes);
    for r0 in (0..images).step_by(plan.chunk) {
        let r1 = (r0 + plan.chunk).min(images);
        let xs = &x[r0 * model.input_len..r1 * model.input_len];
        logits.extend(runner.chunk_checked(dev, xs, r1 - r0, &mut weights_clean)?);
        progress(r1, images);
    }
    let spent = dev.stats().since(&before);
    let macs = images as u64 * model_macs(model);
    Ok(MlpReport {
        images,
        classes: model.classes,
        predictions: predictions(&logits, model.classes),
        logits,
        run_cycles: spent.run_cycles,
        transfer_cycles: spent.transfer_cycles,
        transfer_bytes: spent.transfer_bytes,
        runs: spent.runs,
        retries: spent.retries,
        macs,
        utilization: utilization(macs, spent.run_cycles, &cfg),
        chaining: plan.chaining,
        weights_resident: plan.weights_resident,
        wall_seconds: start.elapsed().as_secs_f64(),
    })
}

fn check_inputs(model: &Model, x: &[i8], images: usize) -> Result<(), DriverError> {
    check_model(model)?;
    if images == 0 {
        return Err(DriverError::Shape("no images to run".into()));
    }
    if x.len() != images * model.input_len {
        return Err(DriverError::Shape(format!(
            "inputs have {} values, {images} images of {} features need {}",
            x.len(),
            model.input_len,
            images * model.input_len
        )));
    }
    Ok(())
}

/// Multiply-accumulates of one image through `model`.
pub fn model_macs(model: &Model) -> u64 {
    model.layers.iter().map(|l| (l.k * l.n) as u64).sum()
}

/// The index of the first largest value of each row of `classes` logits ([`argmax`]).
pub fn predictions(logits: &[i32], classes: usize) -> Vec<usize> {
    logits.chunks(classes.max(1)).map(argmax).collect()
}

/// The logits of `model` for `images` input rows of `x`, computed on the CPU by
/// [`Model::predict_golden`] (the golden model): what every device must reproduce exactly.
/// Unlike `predict_golden`, checks the model and the input length first.
pub fn golden_logits(model: &Model, x: &[i8], images: usize) -> Result<Vec<i32>, DriverError> {
    check_inputs(model, x, images)?;
    Ok(model.predict_golden(x, images))
}

/// One model placed on one device.
struct Runner<'a> {
    model: &'a Model,
    cfg: &'a Config,
    plan: &'a MlpPlan,
}

impl Runner<'_> {
    fn load_weights(
        &self,
        dev: &mut dyn Device,
        l: usize,
        layer: &Layer,
    ) -> Result<(), DriverError> {
        let words = pack_weights(&layer.weights, layer.k, layer.n, self.cfg)?;
        dev.write(Memory::Weights, self.plan.wt_bases[l], &words)
    }

    /// Loads all layers' weights (resident placement).
    fn load_all_weights(&self, dev: &mut dyn Device) -> Result<(), DriverError> {
        for (l, layer) in self.model.layers.iter().enumerate() {
            self.load_weights(dev, l, layer)?;
        }
        Ok(())
    }

    /// [`Runner::chunk`], repeated until one pass of it saw no failed attempt on the link.
    ///
    /// A WRITE stores words before its CRC is checked, so a damaged frame may have stored words
    /// anywhere in the weight or activation memory. A chunk's logits are accepted only if no
    /// attempt failed since the resident weights were last written intact (`weights_clean`
    /// holds the client's retry count at that moment); otherwise the weights are written again
    /// and the chunk is repeated from its inputs.
    fn chunk_checked(
        &self,
        dev: &mut dyn Device,
        x: &[i8],
        m: usize,
        weights_clean: &mut Option<u64>,
    ) -> Result<Vec<i32>, DriverError> {
        for _ in 0..MAX_PASSES {
            let r0 = dev.stats().retries;
            if self.plan.weights_resident && *weights_clean != Some(r0) {
                *weights_clean = None;
                self.load_all_weights(dev)?;
                if dev.stats().retries != r0 {
                    continue;
                }
                *weights_clean = Some(r0);
            }
            let logits = self.chunk(dev, x, m)?;
            if dev.stats().retries == r0 {
                return Ok(logits);
            }
            *weights_clean = None;
        }
        Err(too_noisy("a chunk of images"))
    }

    /// Runs one chunk of `m` images through every layer; returns its logits.
    fn chunk(&self, dev: &mut dyn Device, x: &[i8], m: usize) -> Result<Vec<i32>, DriverError> {
        let first = &self.model.layers[0];
        dev.write(
            Memory::Activations,
            0,
            &pack_activations(x, m, first.k, self.cfg),
        )?;
        let last = self.model.layers.len() - 1;
        for (l, layer) in self.model.layers.iter().enumerate() {
            if !self.plan.weights_resident {
                self.load_weights(dev, l, layer)?;
            }
            let region = |i: usize| match self.plan.chaining {
                Chaining::OnDevice => (i % 2) * self.plan.region_words,
                Chaining::Host => 0,
            };
            let on_device = self.plan.chaining == Chaining::OnDevice;
            let requant = layer.requant.filter(|_| on_device && l < last);
            self.run_layer(dev, l, m, (region(l), region(l + 1)), requant)?;
            if l == last {
                return self.read_results(dev, m, layer.n);
            }
            if !on_device {
                self.requantize_on_host(dev, m, layer)?;
            }
        }
        Ok(Vec::new())
    }

    /// Configures and runs layer `l` on `m` rows; `requant` set means INT8_OUT.
    fn run_layer(
        &self,
        dev: &mut dyn Device,
        l: usize,
        m: usize,
        (act_base, out_base): (usize, usize),
        requant: Option<Requant>,
    ) -> Result<(), DriverError> {
        let layer = &self.model.layers[l];
        let q = requant.unwrap_or(Requant {
            mult: 1,
            shift: 0,
            relu: false,
        });
        let desc = LayerDescriptor {
            m: to_u16(m, "rows per run")?,
            k_tiles: to_u16(tiles(layer.k, self.cfg.rows), "K-tiles")?,
            n_tiles: to_u16(tiles(layer.n, self.cfg.cols), "N-tiles")?,
            act_base: to_u16(act_base, "activation base")?,
            wt_base: to_u16(self.plan.wt_bases[l], "weight base")?,
            out_base: to_u16(if requant.is_some() { out_base } else { 0 }, "output base")?,
            mult: q.mult,
            shift: q.shift,
            int8_out: requant.is_some(),
            relu: requant.is_some() && q.relu,
        };
        dev.configure(&desc)?;
        dev.run()?;
        Ok(())
    }

    fn read_results(
        &self,
        dev: &mut dyn Device,
        m: usize,
        n: usize,
    ) -> Result<Vec<i32>, DriverError> {
        let words = m * tiles(n, self.cfg.cols);
        let bytes = dev.read(Memory::Results, 0, words)?;
        Ok(unpack_results(&bytes, m, n, self.cfg))
    }

    /// Host chaining: reads the int32 results of `layer`, requantizes them and writes them as
    /// the next layer's activations.
    fn requantize_on_host(
        &self,
        dev: &mut dyn Device,
        m: usize,
        layer: &Layer,
    ) -> Result<(), DriverError> {
        let acc = self.read_results(dev, m, layer.n)?;
        let q = layer.requant.ok_or_else(|| {
            DriverError::Shape("model: a hidden layer has no requantization".into())
        })?;
        let act: Vec<i8> = acc.iter().map(|a| q.apply(*a)).collect();
        dev.write(
            Memory::Activations,
            0,
            &pack_activations(&act, m, layer.n, self.cfg),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::InputQuant;
    use trimac_sim::golden::gemm;

    fn layer(k: usize, n: usize, hidden: bool) -> Layer {
        Layer {
            k,
            n,
            weights: (0..k * n).map(|i| (i % 3) as i8 - 1).collect(),
            requant: hidden.then_some(Requant {
                mult: 3,
                shift: 4,
                relu: true,
            }),
        }
    }

    fn model(dims: &[usize]) -> Model {
        let n = dims.len() - 1;
        Model {
            layers: (0..n)
                .map(|i| layer(dims[i], dims[i + 1], i + 1 < n))
                .collect(),
            input_len: dims[0],
            classes: dims[n],
            input_quant: InputQuant::default(),
        }
    }

    #[test]
    fn plan_uses_ping_pong_on_square_arrays() {
        let cfg = Config::new(8, 8).unwrap();
        let p = plan(&cfg, &model(&[64, 128, 10]), 1000).unwrap();
        assert_eq!(p.chaining, Chaining::OnDevice);
        assert!(p.weights_resident);
        assert_eq!(p.wt_bases, vec![0, 8 * 16 * 8]);
        // span = 16 K-tiles (layer 1), two regions in 4096 words -> 128 rows.
        assert_eq!(p.chunk, 128);
        assert_eq!(p.region_words, 128 * 16);
    }

    #[test]
    fn plan_falls_back_to_host_on_rectangular_arrays() {
        let cfg = Config::new(8, 4).unwrap();
        let p = plan(&cfg, &model(&[20, 9, 3]), 7).unwrap();
        assert_eq!(p.chaining, Chaining::Host);
        assert_eq!(p.chunk, 7);
    }

    #[test]
    fn plan_reloads_weights_that_do_not_fit_together() {
        let cfg = Config {
            weight_depth: 20,
            ..Config::new(4, 4).unwrap()
        };
        let p = plan(&cfg, &model(&[8, 8, 4]), 3).unwrap();
        assert!(!p.weights_resident);
        assert_eq!(p.wt_bases, vec![0, 0]);
        let too_big = model(&[8, 16, 4]);
        assert!(plan(&cfg, &too_big, 3).is_err());
    }

    #[test]
    fn broken_models_are_refused() {
        let mut m = model(&[8, 8, 4]);
        m.layers[1].k = 7;
        assert!(check_model(&m).unwrap_err().to_string().contains("layer 1"));
        let mut m = model(&[8, 8, 4]);
        m.layers[1].requant = m.layers[0].requant;
        assert!(check_model(&m).is_err());
        let mut m = model(&[8, 4]);
        m.layers[0].weights[3] = 5;
        assert!(check_model(&m).is_err());
    }

    #[test]
    fn predictions_take_the_first_maximum() {
        assert_eq!(predictions(&[1, 5, 5, -1, -2, -3], 3), vec![1, 0]);
    }

    #[test]
    fn golden_logits_chain_requantization() {
        let m = model(&[3, 2, 2]);
        let x = [10i8, -20, 30];
        let acc = gemm(&x, &m.layers[0].weights, 1, 3, 2);
        let q = m.layers[0].requant.unwrap();
        let h: Vec<i8> = acc.iter().map(|a| q.apply(*a)).collect();
        let want = gemm(&h, &m.layers[1].weights, 1, 2, 2);
        assert_eq!(golden_logits(&m, &x, 1).unwrap(), want);
    }
}
