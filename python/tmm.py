"""The trimac model file format (``.tmm``) and the exact integer pipeline, in numpy.

The format is specified in ``docs/model-format.md``; ``driver/src/model.rs`` is the Rust
loader. This module is the Python writer and reader, used by ``train_digits.py`` and handy for
inspecting a model file::

    python3 python/tmm.py models/digits/digits-mlp.tmm

The integer semantics are those of ``sim/src/golden.rs``: per layer ``acc = x @ w`` exactly
(int8 activations, ternary weights, int32 sums), then for hidden layers
``y = clamp((acc * mult + r) >> shift, lo, 127)`` with ``r = 2**(shift-1)`` (0 when
``shift == 0``), an arithmetic (flooring) shift on the exact product and ``lo = 0`` with ReLU,
else -128. The last layer outputs the raw int32 sums (the logits).
"""

from __future__ import annotations

import struct
import sys
import zlib
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"TMACMDL\0"
VERSION = 1

#: Layer flag: the layer's output is requantized to int8 (hidden layer).
FLAG_INT8_OUT = 0x01
#: Layer flag: the int8 output is clamped at 0 (ReLU). Only together with FLAG_INT8_OUT.
FLAG_RELU = 0x02

HEADER = struct.Struct("<8sHHIIIhhHBbb3x")  # 36 bytes
LAYER_HEADER = struct.Struct("<IIHBB")  # 12 bytes: k, n, mult, shift, flags
CRC = struct.Struct("<I")

assert HEADER.size == 36 and LAYER_HEADER.size == 12


@dataclass(frozen=True)
class InputQuant:
    """How raw integer features become the int8 input vector.

    ``x_q = clamp((raw * mult + r) >> shift, lo, hi)`` with ``r = 2**(shift-1)`` (0 when
    ``shift == 0``): the same rounding as the device's requantization. ``raw_min``/``raw_max``
    document the range of the raw features.
    """

    raw_min: int
    raw_max: int
    mult: int
    shift: int
    lo: int
    hi: int

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Quantizes integer-valued raw features (any shape) to int8."""
        v = np.asarray(raw)
        if not np.all(v == np.round(v)):
            raise ValueError("raw features must be integers")
        return requantize(v.astype(np.int64), self.mult, self.shift, self.lo, self.hi)


@dataclass
class Layer:
    """One ternary layer: weights ``w`` int8 ``[k, n]`` in {-1, 0, 1}, row-major.

    ``relu``/``int8_out`` and ``mult``/``shift`` describe the output: hidden layers requantize
    to int8 (``int8_out``), the last layer outputs int32 with ``mult == shift == 0``.
    """

    w: np.ndarray
    int8_out: bool
    relu: bool = False
    mult: int = 0
    shift: int = 0

    @property
    def k(self) -> int:
        return int(self.w.shape[0])

    @property
    def n(self) -> int:
        return int(self.w.shape[1])

    @property
    def flags(self) -> int:
        return (FLAG_INT8_OUT if self.int8_out else 0) | (FLAG_RELU if self.relu else 0)


@dataclass
class Model:
    """A whole model: layers, input length, number of classes and the input quantization."""

    layers: list[Layer]
    input_quant: InputQuant
    input_len: int = field(default=0)
    classes: int = field(default=0)

    def __post_init__(self) -> None:
        if not self.input_len:
            self.input_len = self.layers[0].k
        if not self.classes:
            self.classes = self.layers[-1].n


def requantize(acc: np.ndarray, mult: int, shift: int, lo: int, hi: int = 127) -> np.ndarray:
    """``clamp((acc * mult + r) >> shift, lo, hi)`` exactly, in int64 (golden ``Requant::apply``)."""
    p = np.asarray(acc, dtype=np.int64) * np.int64(mult)
    r = np.int64(1 << (shift - 1)) if shift > 0 else np.int64(0)
    return np.clip((p + r) >> np.int64(shift), lo, hi).astype(np.int8)


def gemm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact ``x @ w`` in int64 (golden ``gemm``); the caller checks it fits int32."""
    return np.asarray(x, dtype=np.int64) @ np.asarray(w, dtype=np.int64)


def predict(model: Model, x: np.ndarray) -> np.ndarray:
    """Runs the exact integer pipeline on int8 inputs ``[m, input_len]``; int64 logits."""
    h = np.asarray(x, dtype=np.int8)
    for layer in model.layers:
        acc = gemm(h, layer.w)
        if np.abs(acc).max(initial=0) >= 2**31:
            raise OverflowError("accumulator exceeds int32")
        if layer.int8_out:
            h = requantize(acc, layer.mult, layer.shift, 0 if layer.relu else -128)
        else:
            return acc
    raise ValueError("the last layer must output int32")


def argmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise argmax; the lowest index wins ties (as numpy's and the driver's)."""
    return np.argmax(logits, axis=1)


def pack_weights(w: np.ndarray) -> bytes:
    """Packs ternary ``[k, n]`` weights, 2 bits each, every row padded to whole bytes.

    Weight ``(row, col)`` sits in byte ``row * ceil(n/4) + col // 4``, bits
    ``[2q+1 : 2q]`` with ``q = col % 4``; code = two's complement (00 = 0, 01 = +1, 11 = -1).
    """
    w = np.asarray(w)
    if w.ndim != 2 or not np.isin(w, (-1, 0, 1)).all():
        raise ValueError("weights must be a 2-D array of -1/0/1")
    k, n = w.shape
    nb = (n + 3) // 4
    codes = np.zeros((k, nb * 4), dtype=np.uint8)
    codes[:, :n] = (w.astype(np.int64) & 3).astype(np.uint8)
    codes = codes.reshape(k, nb, 4)
    packed = codes[..., 0] | (codes[..., 1] << 2) | (codes[..., 2] << 4) | (codes[..., 3] << 6)
    return packed.astype(np.uint8).tobytes()


def unpack_weights(b: bytes, k: int, n: int) -> np.ndarray:
    """Inverse of :func:`pack_weights`; raises ``ValueError`` on code 10 or non-zero padding."""
    nb = (n + 3) // 4
    raw = np.frombuffer(b, dtype=np.uint8).reshape(k, nb)
    codes = np.stack([(raw >> (2 * q)) & 3 for q in range(4)], axis=-1).reshape(k, nb * 4)
    if (codes == 2).any():
        row, col = np.argwhere(codes == 2)[0]
        raise ValueError(f"invalid weight code 0b10 at row {row}, column {col}")
    if codes[:, n:].any():
        raise ValueError("non-zero padding code")
    return np.where(codes[:, :n] == 3, -1, codes[:, :n]).astype(np.int8)


def encode(model: Model) -> bytes:
    """Serializes a model to the ``.tmm`` format (version 1)."""
    body = bytearray()
    for i, layer in enumerate(model.layers):
        last = i == len(model.layers) - 1
        if layer.int8_out == last:
            raise ValueError(f"layer {i}: hidden layers output int8, the last int32")
        if not layer.int8_out and (layer.mult or layer.shift or layer.relu):
            raise ValueError(f"layer {i}: int32 output takes no mult/shift/relu")
        if layer.int8_out and not (1 <= layer.mult <= 0xFFFF and 0 <= layer.shift <= 31):
            raise ValueError(f"layer {i}: mult/shift out of range")
        if not last and layer.n != model.layers[i + 1].k:
            raise ValueError(f"layer {i}: n does not chain to the next layer's k")
        body += LAYER_HEADER.pack(layer.k, layer.n, layer.mult, layer.shift, layer.flags)
        body += pack_weights(layer.w)
    q = model.input_quant
    total = HEADER.size + len(body) + CRC.size
    head = HEADER.pack(
        MAGIC,
        VERSION,
        len(model.layers),
        total,
        model.input_len,
        model.classes,
        q.raw_min,
        q.raw_max,
        q.mult,
        q.shift,
        q.lo,
        q.hi,
    )
    data = head + bytes(body)
    return data + CRC.pack(zlib.crc32(data))


def decode(data: bytes) -> Model:
    """Parses and checks a ``.tmm`` file (a lighter mirror of the Rust loader's checks)."""
    if len(data) < HEADER.size + CRC.size:
        raise ValueError(f"truncated: {len(data)} bytes")
    (magic, version, nlayers, total, input_len, classes, raw_min, raw_max, mult, shift, lo, hi) = (
        HEADER.unpack_from(data)
    )
    if magic != MAGIC:
        raise ValueError(f"bad magic {magic!r}")
    if version != VERSION:
        raise ValueError(f"unsupported version {version}")
    if total != len(data):
        raise ValueError(f"file is {len(data)} bytes, header says {total}")
    (stored,) = CRC.unpack_from(data, len(data) - CRC.size)
    if stored != zlib.crc32(data[: -CRC.size]):
        raise ValueError("checksum mismatch")
    pos = HEADER.size
    layers = []
    for _ in range(nlayers):
        k, n, lmult, lshift, flags = LAYER_HEADER.unpack_from(data, pos)
        pos += LAYER_HEADER.size
        size = k * ((n + 3) // 4)
        w = unpack_weights(data[pos : pos + size], k, n)
        pos += size
        layers.append(Layer(w, bool(flags & FLAG_INT8_OUT), bool(flags & FLAG_RELU), lmult, lshift))
    if pos != len(data) - CRC.size:
        raise ValueError("layer data does not fill the file")
    quant = InputQuant(raw_min, raw_max, mult, shift, lo, hi)
    return Model(layers, quant, input_len, classes)


def describe(model: Model) -> str:
    """A human-readable summary of a model."""
    q = model.input_quant
    lines = [
        (
            f"input_len {model.input_len}, classes {model.classes}, input quantization: "
            f"x_q = clamp((raw*{q.mult} + r) >> {q.shift}, {q.lo}, {q.hi}), raw in "
            f"[{q.raw_min}, {q.raw_max}]"
        )
    ]
    for i, l in enumerate(model.layers):
        out = (
            f"int8{' relu' if l.relu else ''} mult {l.mult} shift {l.shift}"
            if l.int8_out
            else "int32 logits"
        )
        dens = np.count_nonzero(l.w) / l.w.size
        lines.append(f"layer {i}: {l.k} -> {l.n}, {out}, {100 * dens:.1f}% non-zero weights")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tmm.py MODEL.tmm")
    with open(sys.argv[1], "rb") as f:
        print(describe(decode(f.read())))
