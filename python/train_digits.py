#!/usr/bin/env python3
"""Trains trimac's demo model: a ternary-weight MLP on scikit-learn's digits.

Quantization-aware training in plain numpy, with the hardware's exact integer semantics in the
forward pass (see ``sim/src/golden.rs`` and ``python/tmm.py``):

* inputs: the 8x8 images' pixels (integers 0..16) become int8 by the fixed rule
  ``x_q = min(8 * pixel, 127)`` (``InputQuant(mult=8, shift=0, lo=0, hi=127)``);
* weights: each layer's latent float weights ``W`` are ternarized by the BitNet b1.58 absmean
  rule, ``gamma = mean|W|``, ``W_t = clamp(round(W / (gamma + 1e-5)), -1, 1)``; the forward
  pass uses ``W_t`` itself (the hardware has no weight scale: it is folded into the
  requantization), the backward pass is a straight-through estimator (``dL/dW = dL/dW_t``);
* hidden layers: ``acc = x @ W_t`` exactly, then ``y = clamp((acc*mult + r) >> shift, 0, 127)``
  exactly (computed in float64, where every intermediate is an exactly representable integer),
  with ``mult/2^shift`` calibrated from the accumulators' distribution on the training set; the
  straight-through gradient is ``mult/2^shift`` where the clamp is inactive, else 0;
* the last layer outputs the exact int32 sums; the loss is the cross-entropy of
  ``softmax(tau * logits)`` with a learnt temperature ``tau`` (argmax does not depend on it, so
  it is not exported). No biases: the hardware has none.

The forward pass used in training therefore *is* the integer pipeline; after training the
script checks it bit for bit against an independent int64 evaluation of the written model file,
and refuses to write anything if the exact integer test accuracy is below ``--min-accuracy``.

Run from the repository root (about 10 s on 2 cores; `pip install -r python/requirements.txt`)::

    python3 python/train_digits.py

Outputs (``--out``, default ``models/digits``): ``digits-mlp.tmm``, ``test_x.npy`` (int8
``[n, 64]``, already quantized), ``test_y.npy`` (uint8 ``[n]``) and ``README.md``. The run is
deterministic (fixed seed, one BLAS thread): the same versions on the same machine write the
same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import platform
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

import tmm  # python/tmm.py: the script's own directory is on sys.path

#: The fixed input quantization: x_q = clamp((8 * pixel + 0) >> 0, 0, 127) = min(8 * pixel, 127).
INPUT_QUANT = tmm.InputQuant(raw_min=0, raw_max=16, mult=8, shift=0, lo=0, hi=127)

REPO = Path(__file__).resolve().parent.parent


def ternarize(w: np.ndarray) -> np.ndarray:
    """BitNet b1.58 absmean ternarization of one tensor (float array of -1/0/1)."""
    gamma = np.abs(w).mean()
    return np.clip(np.round(w / (gamma + 1e-5)), -1.0, 1.0)


def mult_shift(scale: float) -> tuple[int, int]:
    """The most precise ``(mult, shift)`` with ``mult/2^shift ~= scale``, mult u16, shift <= 31."""
    if not 0 < scale < 65535.5:
        raise ValueError(f"requantization scale {scale} out of range")
    shift = 31
    while shift > 0 and round(scale * 2**shift) > 0xFFFF:
        shift -= 1
    mult = round(scale * 2**shift)
    return max(1, min(mult, 0xFFFF)), shift


def requant_float(acc: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """``clamp((acc*mult + r) >> shift, 0, 127)`` in float64: exact for |acc*mult| < 2^53."""
    r = float(1 << (shift - 1)) if shift > 0 else 0.0
    return np.clip(np.floor((acc * mult + r) / 2.0**shift), 0.0, 127.0)


class Adam:
    """Plain Adam over a list of arrays, updated in place."""

    def __init__(self, params: list[np.ndarray], lr: float, b1=0.9, b2=0.999, eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, b1, b2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray], lr: float) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


class TernaryMLP:
    """Latent float weights, per-hidden-layer (mult, shift), and the logit temperature."""

    def __init__(self, sizes: list[int], rng: np.random.Generator):
        self.sizes = sizes
        self.w = [
            rng.uniform(-1, 1, size=(k, n)) * np.sqrt(3.0 / k) for k, n in itertools.pairwise(sizes)
        ]
        self.log_tau = np.zeros(1)
        # Placeholder requantization until the first calibration.
        self.requant = [(1, 0)] * (len(sizes) - 2)

    def calibrate(self, x: np.ndarray, quantile: float) -> None:
        """Sets each hidden layer's (mult, shift) so that the given quantile of its positive
        accumulators on ``x`` maps to 127, layer by layer through the quantized network."""
        h = x
        for i in range(len(self.requant)):
            acc = h @ ternarize(self.w[i])
            pos = acc[acc > 0]
            top = np.quantile(pos, quantile) if pos.size else 1.0
            self.requant[i] = mult_shift(127.0 / max(top, 1.0))
            h = requant_float(acc, *self.requant[i])

    def forward(self, x: np.ndarray):
        """Returns the int logits (as float64) and what backward needs."""
        cache = []
        h = x
        for i, w in enumerate(self.w):
            wt = ternarize(w)
            acc = h @ wt
            cache.append((h, wt, acc))
            if i < len(self.requant):
                h = requant_float(acc, *self.requant[i])
            else:
                h = acc
        return h, cache

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, smoothing: float):
        """Cross-entropy (with label smoothing) of softmax(tau * logits) and its gradients."""
        logits, cache = self.forward(x)
        tau = np.exp(self.log_tau[0])
        z = tau * logits
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        classes = logits.shape[1]
        target = np.full_like(p, smoothing / classes)
        target[np.arange(len(y)), y] += 1.0 - smoothing
        loss = -(target * np.log(p + 1e-12)).sum(axis=1).mean()
        dz = (p - target) / len(y)
        g_log_tau = np.array([(dz * logits).sum() * tau])
        grads = [None] * len(self.w)
        d = dz * tau  # d loss / d acc of the last layer
        for i in reversed(range(len(self.w))):
            h, wt, acc = cache[i]
            if i < len(self.requant):
                mult, shift = self.requant[i]
                v = acc * (mult / 2.0**shift)
                d = d * ((v > 0) & (v < 127)) * (mult / 2.0**shift)
            grads[i] = h.T @ d  # straight-through: d/dW = d/dW_t
            if i:
                d = d @ wt.T
        return loss, grads, g_log_tau

    def export(self) -> tmm.Model:
        """The trained network as a model file object (integers only)."""
        layers = []
        for i, w in enumerate(self.w):
            wt = ternarize(w).astype(np.int8)
            if i < len(self.requant):
                mult, shift = self.requant[i]
                layers.append(tmm.Layer(wt, int8_out=True, relu=True, mult=mult, shift=shift))
            else:
                layers.append(tmm.Layer(wt, int8_out=False))
        return tmm.Model(layers, INPUT_QUANT)


def train(args, x_train, y_train) -> TernaryMLP:
    """Trains with Adam, a cosine learning rate and periodic recalibration of the requant."""
    rng = np.random.default_rng(args.seed)
    net = TernaryMLP([x_train.shape[1], *args.hidden, 10], rng)
    opt = Adam([*net.w, net.log_tau], args.lr)
    n = len(x_train)
    steps_per_epoch = (n + args.batch - 1) // args.batch
    total = args.epochs * steps_per_epoch
    net.calibrate(x_train, args.quantile)
    logits, _ = net.forward(x_train)
    net.log_tau[0] = -np.log(logits.std() + 1e-9)  # start with unit-variance logits
    step = 0
    for epoch in range(args.epochs):
        if epoch < args.epochs - args.freeze:
            net.calibrate(x_train, args.quantile)
        order = rng.permutation(n)
        losses = []
        for b in range(steps_per_epoch):
            idx = order[b * args.batch : (b + 1) * args.batch]
            loss, gw, gt = net.loss_and_grads(x_train[idx], y_train[idx], args.smoothing)
            lr = args.lr * 0.5 * (1 + np.cos(np.pi * step / total))
            opt.step([*gw, gt], lr)
            losses.append(loss)
            step += 1
        if args.verbose and (epoch % 20 == 0 or epoch == args.epochs - 1):
            logits, _ = net.forward(x_train)
            acc = (np.argmax(logits, axis=1) == y_train).mean()
            print(f"epoch {epoch:4d}  loss {np.mean(losses):.4f}  train acc {acc:.4f}")
    return net


def write_readme(path: Path, args, model: tmm.Model, correct: int, total: int, files: dict):
    """Writes models/digits/README.md (deterministic: no timings)."""
    q = model.input_quant
    shape = " → ".join([str(model.input_len)] + [str(l.n) for l in model.layers])
    hidden = " ".join(str(h) for h in args.hidden)
    rows = "\n".join(
        f"| `{name}` | {size} | `{digest}` |" for name, (size, digest) in files.items()
    )
    layers = "\n".join(
        f"| {i} | {l.k} | {l.n} | "
        + (f"int8, ReLU | {l.mult} | {l.shift}" if l.int8_out else "int32 logits | 0 | 0")
        + f" | {100 * np.count_nonzero(l.w) / l.w.size:.1f}% |"
        for i, l in enumerate(model.layers)
    )
    text = f"""# Digits demo model

A ternary-weight MLP ({shape}) for scikit-learn's 8x8 handwritten digits, trained for trimac's
exact integer semantics by `python/train_digits.py`. The file format is described in
`docs/model-format.md`.

- Test accuracy (exact integer pipeline): **{correct}/{total} = {100 * correct / total:.2f}%**
- Data: `sklearn.datasets.load_digits()`, split with
  `train_test_split(test_size=0.2, random_state=0, stratify=y)` ({total} test images).
- Input quantization: `x_q = min(8 * pixel, 127)` for pixels 0..16, i.e.
  `clamp((pixel * {q.mult} + r) >> {q.shift}, {q.lo}, {q.hi})` (r = 0 for shift 0);
  `test_x.npy` is stored already quantized.
- Training: quantization-aware, numpy only; absmean ternary weights with a straight-through
  estimator, the exact requantization in the forward pass, no biases, Adam with a cosine
  learning rate from {args.lr}, {args.epochs} epochs, batch {args.batch}, label smoothing \
{args.smoothing}, requantization calibrated to the {args.quantile} quantile of the positive
  accumulators on the training split (frozen for the last {args.freeze} epochs), seed {args.seed}.
- Reproduce (from the repository root, deterministic: same bytes on rerun with these versions):

  ```
  pip install -r python/requirements.txt
  python3 python/train_digits.py --seed {args.seed} --hidden {hidden} --epochs {args.epochs} \
--batch {args.batch} --lr {args.lr} --smoothing {args.smoothing} --quantile {args.quantile} \
--freeze {args.freeze}
  ```

- Versions: Python {platform.python_version()}, numpy {np.__version__}, \
scikit-learn {sklearn.__version__}.

| layer | k | n | output | mult | shift | non-zero weights |
|---|---|---|---|---|---|---|
{layers}

| file | bytes | sha256 |
|---|---|---|
{rows}
"""
    path.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "models" / "digits")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, nargs="+", default=[128])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--quantile", type=float, default=0.99)
    ap.add_argument("--freeze", type=int, default=30)
    ap.add_argument("--min-accuracy", type=float, default=0.95)
    ap.add_argument("--dry-run", action="store_true", help="train and evaluate, write nothing")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if any(h <= 0 or h % 8 for h in args.hidden):
        ap.error("hidden layer sizes must be positive multiples of 8")

    t0 = time.perf_counter()
    digits = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        digits.data, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    xq_tr = INPUT_QUANT.apply(x_tr)
    xq_te = INPUT_QUANT.apply(x_te)

    net = train(args, xq_tr.astype(np.float64), y_tr)
    model = net.export()
    blob = tmm.encode(model)
    model = tmm.decode(blob)  # evaluate exactly what is written

    logits = tmm.predict(model, xq_te)
    float_logits, _ = net.forward(xq_te.astype(np.float64))
    if not np.array_equal(float_logits, logits.astype(np.float64)):
        raise AssertionError("training forward pass differs from the integer pipeline")
    pred = tmm.argmax(logits)
    correct, total = int((pred == y_te).sum()), len(y_te)
    train_acc = (tmm.argmax(tmm.predict(model, xq_tr)) == y_tr).mean()
    print(tmm.describe(model))
    print(f"train accuracy {100 * train_acc:.2f}%")
    print(
        f"test accuracy (exact integer pipeline): {correct}/{total} = {100 * correct / total:.2f}%"
    )
    print(f"trained in {time.perf_counter() - t0:.1f} s")
    if correct / total < args.min_accuracy:
        print(f"below --min-accuracy {args.min_accuracy}: nothing written", file=sys.stderr)
        return 1
    if args.dry_run:
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    outputs = {
        "digits-mlp.tmm": blob,
        "test_x.npy": xq_te.astype(np.int8),
        "test_y.npy": y_te.astype(np.uint8),
    }
    files = {}
    for name, content in outputs.items():
        path = args.out / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            np.save(path, content, allow_pickle=False)
        data = path.read_bytes()
        files[name] = (len(data), hashlib.sha256(data).hexdigest())
    write_readme(args.out / "README.md", args, model, correct, total, files)
    print(f"wrote {', '.join(outputs)} and README.md to {args.out}")
    return 0


if __name__ == "__main__":
    # One BLAS thread: float reductions then happen in one fixed order, so reruns write the
    # same bytes.
    with threadpool_limits(limits=1):
        sys.exit(main())
