//! Model files (`.tmm`, docs/model-format.md), test sets, and golden inference.
//!
//! A [`Model`] is a chain of ternary layers: every layer but the last requantizes its exact
//! int32 sums to int8 on the device ([`Requant`]), the last outputs int32 logits whose argmax is
//! the predicted class. [`Model::from_bytes`] checks everything the format promises (magic,
//! version, length, CRC-32, shapes, weight codes, requantization ranges) and reports the first
//! problem as a [`ModelError`]; it never panics, whatever the bytes.
//!
//! The demo model and its test split are committed under `models/digits/` (see
//! [`DIGITS_MODEL`], [`DIGITS_TEST_X`], [`DIGITS_TEST_Y`]); `python/train_digits.py` makes them.

use std::fmt;
use std::path::{Path, PathBuf};

use trimac_sim::golden::{self, Requant};

use crate::npy::{self, NpyError};

/// The demo model, relative to the workspace root.
pub const DIGITS_MODEL: &str = "models/digits/digits-mlp.tmm";
/// The demo's test inputs (int8 `[n, 64]`, already quantized), relative to the workspace root.
pub const DIGITS_TEST_X: &str = "models/digits/test_x.npy";
/// The demo's test labels (uint8 `[n]`), relative to the workspace root.
pub const DIGITS_TEST_Y: &str = "models/digits/test_y.npy";

/// The first 8 bytes of every model file.
pub const MAGIC: [u8; 8] = *b"TMACMDL\0";
/// The format version this code reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the file header.
pub const HEADER_LEN: usize = 36;
/// Bytes of a layer header (before the layer's packed weights).
pub const LAYER_HEADER_LEN: usize = 12;
/// Bytes of the CRC-32 trailer.
pub const CRC_LEN: usize = 4;
/// Layer flag: the output is requantized to int8.
pub const FLAG_INT8_OUT: u8 = 0x01;
/// Layer flag: the int8 output is clamped at 0 (ReLU); only with [`FLAG_INT8_OUT`].
pub const FLAG_RELU: u8 = 0x02;
/// Largest reduction length `k` accepted: `|sum| <= 128 * k` must stay within an int32
/// accumulator (`2^31 - 1`), so `k <= (2^31 - 1) / 128 = 2^24 - 1`.
pub const MAX_K: usize = (1 << 24) - 1;

/// The demo files under a workspace root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoPaths {
    /// `models/digits/digits-mlp.tmm`.
    pub model: PathBuf,
    /// `models/digits/test_x.npy`.
    pub test_x: PathBuf,
    /// `models/digits/test_y.npy`.
    pub test_y: PathBuf,
}

impl DemoPaths {
    /// The committed digits demo under `workspace_root` (the CLI passes its
    /// `CARGO_MANIFEST_DIR`).
    pub fn digits(workspace_root: &Path) -> DemoPaths {
        DemoPaths {
            model: workspace_root.join(DIGITS_MODEL),
            test_x: workspace_root.join(DIGITS_TEST_X),
            test_y: workspace_root.join(DIGITS_TEST_Y),
        }
    }
}

/// How raw integer features become the int8 model input:
/// `x = clamp((raw * mult + r) >> shift, lo, hi)`, `r = 2^(shift-1)` (0 for `shift == 0`), the
/// same rounding as the device's requantization. `raw_min..=raw_max` documents the raw range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputQuant {
    /// Smallest raw feature value.
    pub raw_min: i16,
    /// Largest raw feature value.
    pub raw_max: i16,
    /// Multiplier, at least 1.
    pub mult: u16,
    /// Right shift, `0..=31`.
    pub shift: u8,
    /// Lower clamp.
    pub lo: i8,
    /// Upper clamp, `>= lo`.
    pub hi: i8,
}

impl InputQuant {
    /// Inputs that are int8 already: `x = clamp(raw, -128, 127)`.
    pub const IDENTITY: InputQuant = InputQuant {
        raw_min: -128,
        raw_max: 127,
        mult: 1,
        shift: 0,
        lo: -128,
        hi: 127,
    };

    /// The digits demo: pixels `0..=16` to `min(8 * pixel, 127)`.
    pub const DIGITS: InputQuant = InputQuant {
        raw_min: 0,
        raw_max: 16,
        mult: 8,
        shift: 0,
        lo: 0,
        hi: 127,
    };

    /// Quantizes one raw feature.
    pub fn apply(&self, raw: i32) -> i8 {
        let shift = self.shift.min(31);
        let p = raw as i64 * self.mult as i64;
        let r = if shift > 0 { 1i64 << (shift - 1) } else { 0 };
        ((p + r) >> shift).clamp(self.lo as i64, self.hi.max(self.lo) as i64) as i8
    }

    fn check(&self) -> Result<(), FormatError> {
        let bad = |field, value: i64| Err(FormatError::InputQuant { field, value });
        if self.raw_min > self.raw_max {
            return bad("raw_max (below raw_min)", self.raw_max.into());
        }
        if self.mult == 0 {
            return bad("mult", 0);
        }
        if self.shift > 31 {
            return bad("shift", self.shift.into());
        }
        if self.lo > self.hi {
            return bad("hi (below lo)", self.hi.into());
        }
        Ok(())
    }
}

impl Default for InputQuant {
    fn default() -> Self {
        InputQuant::IDENTITY
    }
}

/// One layer: `y = x . W` with ternary `W`, then requantization to int8 or raw int32 output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Inputs (reduction length).
    pub k: usize,
    /// Outputs.
    pub n: usize,
    /// Row-major `[k][n]`, values in {-1, 0, 1}.
    pub weights: Vec<i8>,
    /// `Some`: int8 output (hidden layer); `None`: int32 output (last layer).
    pub requant: Option<Requant>,
}

impl Layer {
    fn flags(&self) -> u8 {
        match self.requant {
            Some(q) if q.relu => FLAG_INT8_OUT | FLAG_RELU,
            Some(_) => FLAG_INT8_OUT,
            None => 0,
        }
    }
}

/// A whole model: a chain of layers (layer `i`'s `n` is layer `i+1`'s `k`), the input length
/// (the first layer's `k`), the number of classes (the last layer's `n`) and the rule that
/// quantizes raw inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    /// The layers, first to last.
    pub layers: Vec<Layer>,
    /// Length of one input row.
    pub input_len: usize,
    /// Number of logits per row.
    pub classes: usize,
    /// How raw features become the int8 inputs (already applied to a [`TestSet`]).
    pub input_quant: InputQuant,
}

/// A test split: int8 inputs `[rows, cols]` and one label per row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestSet {
    /// Row-major `[rows, cols]`, already quantized.
    pub x: Vec<i8>,
    /// Class of each row.
    pub labels: Vec<u8>,
    /// Number of examples.
    pub rows: usize,
    /// Length of one input row.
    pub cols: usize,
}

/// Correct predictions out of a total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accuracy {
    /// Rows whose argmax equals the label.
    pub correct: usize,
    /// Rows evaluated.
    pub total: usize,
}

impl Accuracy {
    /// `correct / total` (0 for an empty set).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

impl fmt::Display for Accuracy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} = {:.2}%",
            self.correct,
            self.total,
            100.0 * self.fraction()
        )
    }
}

/// What is wrong with the bytes (or the in-memory form) of a model.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The file does not start with [`MAGIC`].
    #[error("bad magic {found:02x?}: not a trimac model file (expected \"TMACMDL\\0\")")]
    BadMagic {
        /// The first bytes of the file (up to 8).
        found: Vec<u8>,
    },
    /// A format version this code does not read.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// [`FORMAT_VERSION`].
        supported: u16,
    },
    /// The bytes end before the structure does.
    #[error("truncated at byte {at} while reading {what}")]
    Truncated {
        /// Offset (= length of what is there) where more bytes were needed.
        at: usize,
        /// What was being read.
        what: String,
    },
    /// The header's length field is below the smallest possible file.
    #[error("the header gives a file length of {declared} bytes, less than the minimum {min}")]
    BadLength {
        /// The length field.
        declared: u32,
        /// `HEADER_LEN + CRC_LEN`.
        min: usize,
    },
    /// The file is longer than its header says.
    #[error("{} unexpected bytes after the end: the file has {len} bytes, its header gives {expected}", len - expected)]
    TrailingBytes {
        /// Actual length.
        len: usize,
        /// Length from the header.
        expected: usize,
    },
    /// The CRC-32 trailer does not match the contents.
    #[error("checksum mismatch: the file stores CRC-32 {expected:#010x}, its contents give {found:#010x} (corrupted file)")]
    ChecksumMismatch {
        /// CRC stored in the file.
        expected: u32,
        /// CRC computed over the contents.
        found: u32,
    },
    /// The layers end before the checksum does (the layer data is shorter than the file).
    #[error("unexpected bytes {at}..{end} between the last layer and the checksum")]
    ExtraBytes {
        /// Where the last layer ended.
        at: usize,
        /// Where the checksum starts.
        end: usize,
    },
    /// A reserved byte is not zero.
    #[error("reserved byte at offset {offset} is {value:#04x}, must be 0")]
    Reserved {
        /// Its offset in the file.
        offset: usize,
        /// Its value.
        value: u8,
    },
    /// The model has no layer.
    #[error("the model has no layers")]
    NoLayers,
    /// More layers than the format can count.
    #[error("{count} layers, the format holds at most 65535")]
    TooManyLayers {
        /// Number of layers.
        count: usize,
    },
    /// A layer with `k` or `n` zero, or too large.
    #[error("layer {layer}: shape {k}x{n} out of range (k in 1..={MAX_K}, n in 1..=2^32-1)")]
    LayerShape {
        /// Layer index.
        layer: usize,
        /// Inputs.
        k: usize,
        /// Outputs.
        n: usize,
    },
    /// Layer `layer`'s outputs are not the next layer's inputs.
    #[error("layer shapes don't chain: layer {layer} has n = {n} outputs, layer {} has k = {next_k} inputs", layer + 1)]
    ShapesDontChain {
        /// The earlier layer.
        layer: usize,
        /// Its `n`.
        n: usize,
        /// The next layer's `k`.
        next_k: usize,
    },
    /// The header's input length is not the first layer's `k`.
    #[error("input length {input_len} differs from layer 0's k = {k}")]
    InputLen {
        /// From the header.
        input_len: usize,
        /// Layer 0's `k`.
        k: usize,
    },
    /// The header's class count is not the last layer's `n`.
    #[error("{classes} classes, but the last layer has n = {n} outputs")]
    Classes {
        /// From the header.
        classes: usize,
        /// The last layer's `n`.
        n: usize,
    },
    /// Undefined flag bits, or RELU without INT8_OUT.
    #[error(
        "layer {layer}: invalid flags {flags:#04x} (bit 0 INT8_OUT, bit 1 RELU only with INT8_OUT)"
    )]
    BadFlags {
        /// Layer index.
        layer: usize,
        /// The flags byte.
        flags: u8,
    },
    /// A hidden layer without int8 output, or a last layer with it.
    #[error("layer {layer}: {}", if *last { "the last layer must output int32 logits (flags 0)" } else { "a hidden layer must output int8 (flag INT8_OUT)" })]
    OutputKind {
        /// Layer index.
        layer: usize,
        /// Whether it is the last layer.
        last: bool,
    },
    /// Requantization parameters outside their range (`mult` 0 or `shift` above 31 for an
    /// int8 layer, anything but 0/0 for an int32 layer).
    #[error("layer {layer}: mult/shift out of range: mult {mult}, shift {shift} ({})", if *int8_out { "int8 output needs mult >= 1 and shift <= 31" } else { "int32 output needs mult = 0 and shift = 0" })]
    RequantRange {
        /// Layer index.
        layer: usize,
        /// The multiplier.
        mult: u16,
        /// The shift.
        shift: u8,
        /// Whether the layer outputs int8.
        int8_out: bool,
    },
    /// A weight has the code `0b10`.
    #[error("layer {layer}: invalid weight code 0b10 at (row {row}, col {col}), byte {offset}")]
    InvalidWeightCode {
        /// Layer index.
        layer: usize,
        /// Weight row (`k` index).
        row: usize,
        /// Weight column (`n` index).
        col: usize,
        /// File offset of the byte holding it.
        offset: usize,
    },
    /// A padding code (beyond column `n` in a row's last byte) is not `00`.
    #[error("layer {layer}: non-zero padding bits in row {row}, byte {offset}")]
    Padding {
        /// Layer index.
        layer: usize,
        /// Weight row.
        row: usize,
        /// File offset of the byte.
        offset: usize,
    },
    /// The input quantization rule is out of range.
    #[error("input quantization: {field} = {value} out of range")]
    InputQuant {
        /// The offending field.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// (In-memory model) a layer's weight vector is not `k * n` long.
    #[error("layer {layer}: {len} weights for a {k}x{n} layer")]
    WeightCount {
        /// Layer index.
        layer: usize,
        /// Inputs.
        k: usize,
        /// Outputs.
        n: usize,
        /// Weights present.
        len: usize,
    },
    /// (In-memory model) a weight other than -1, 0, 1.
    #[error("layer {layer}: weight {value} at (row {row}, col {col}) is not -1, 0 or 1")]
    WeightValue {
        /// Layer index.
        layer: usize,
        /// Weight row.
        row: usize,
        /// Weight column.
        col: usize,
        /// The value.
        value: i8,
    },
    /// (In-memory model) the encoding would exceed 4 GiB.
    #[error("the model does not fit the format's 32-bit length")]
    TooLarge,
}

/// Why a model or a test set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading the file failed.
    #[error("model file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file (or byte buffer, `path: None`) is not a valid model.
    #[error("{}: {problem}", path.as_ref().map_or_else(|| "model".to_string(), |p| format!("model file {}", p.display())))]
    Format {
        /// The file, when the bytes came from one.
        path: Option<PathBuf>,
        /// The first problem found.
        #[source]
        problem: FormatError,
    },
    /// A test-set `.npy` file could not be read.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// The test set's inputs and labels have different row counts.
    #[error("test set: {} has {x_rows} rows but {} has {y_len} labels", x_path.display(), y_path.display())]
    TestSetRows {
        /// The inputs file.
        x_path: PathBuf,
        /// Its rows.
        x_rows: usize,
        /// The labels file.
        y_path: PathBuf,
        /// Its labels.
        y_len: usize,
    },
    /// The test set's rows are not as long as the model's input.
    #[error("test set rows have {found} values, the model's input has {expected}")]
    InputWidth {
        /// The model's `input_len`.
        expected: usize,
        /// The test set's `cols`.
        found: usize,
    },
    /// A label is not a class of the model.
    #[error("test set row {row}: label {label} is not below the model's {classes} classes")]
    Label {
        /// The row.
        row: usize,
        /// Its label.
        label: u8,
        /// The model's classes.
        classes: usize,
    },
}

impl ModelError {
    /// The format problem, if this is one.
    pub fn format_error(&self) -> Option<&FormatError> {
        match self {
            ModelError::Format { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// Little-endian reader over the bytes before the CRC; running out is [`FormatError::Truncated`].
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: impl Fn() -> String) -> Result<&'a [u8], FormatError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.b.len() => {
                let s = &self.b[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => Err(FormatError::Truncated {
                at: self.b.len(),
                what: what(),
            }),
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Bytes of one packed weight row of `n` codes.
fn row_bytes(n: usize) -> usize {
    n.div_ceil(4)
}

impl Model {
    /// Reads and checks a model file; errors name the file.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes).map_err(|problem| ModelError::Format {
            path: Some(path.to_path_buf()),
            problem,
        })
    }

    /// Parses and checks the bytes of a model file.
    pub fn from_bytes(b: &[u8]) -> Result<Model, ModelError> {
        Self::parse(b).map_err(|problem| ModelError::Format {
            path: None,
            problem,
        })
    }

    /// The checks, in file order: magic, version, length, CRC, then the structure.
    fn parse(b: &[u8]) -> Result<Model, FormatError> {
        let head = &b[..b.len().min(MAGIC.len())];
        if head != &MAGIC[..head.len()] {
            return Err(FormatError::BadMagic {
                found: head.to_vec(),
            });
        }
        let truncated_header = || FormatError::Truncated {
            at: b.len(),
            what: "the header".to_string(),
        };
        if b.len() < 10 {
            return Err(truncated_header());
        }
        let version = u16_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if b.len() < HEADER_LEN + CRC_LEN {
            return Err(truncated_header());
        }
        let declared = u32_at(b, 12);
        let total = declared as usize;
        if total < HEADER_LEN + CRC_LEN {
            return Err(FormatError::BadLength {
                declared,
                min: HEADER_LEN + CRC_LEN,
            });
        }
        if b.len() < total {
            return Err(FormatError::Truncated {
                at: b.len(),
                what: format!("the file (its header gives a length of {total} bytes)"),
            });
        }
        if b.len() > total {
            return Err(FormatError::TrailingBytes {
                len: b.len(),
                expected: total,
            });
        }
        let body = &b[..total - CRC_LEN];
        let stored = u32_at(b, total - CRC_LEN);
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(FormatError::ChecksumMismatch {
                expected: stored,
                found: computed,
            });
        }

        let count = u16_at(b, 10) as usize;
        let input_len = u32_at(b, 16) as usize;
        let classes = u32_at(b, 20) as usize;
        let input_quant = InputQuant {
            raw_min: i16::from_le_bytes([b[24], b[25]]),
            raw_max: i16::from_le_bytes([b[26], b[27]]),
            mult: u16_at(b, 28),
            shift: b[30],
            lo: b[31] as i8,
            hi: b[32] as i8,
        };
        if let Some((i, &value)) = b[33..HEADER_LEN].iter().enumerate().find(|(_, &v)| v != 0) {
            return Err(FormatError::Reserved {
                offset: 33 + i,
                value,
            });
        }
        input_quant.check()?;
        if count == 0 {
            return Err(FormatError::NoLayers);
        }

        let mut cur = Cursor {
            b: body,
            pos: HEADER_LEN,
        };
        let mut layers: Vec<Layer> = Vec::with_capacity(count.min(body.len() / LAYER_HEADER_LEN));
        for i in 0..count {
            let last = i + 1 == count;
            let h = cur.take(LAYER_HEADER_LEN, || format!("layer {i}'s header"))?;
            let k = u32_at(h, 0) as usize;
            let n = u32_at(h, 4) as usize;
            let mult = u16_at(h, 8);
            let shift = h[10];
            let flags = h[11];
            if k == 0 || n == 0 || k > MAX_K {
                return Err(FormatError::LayerShape { layer: i, k, n });
            }
            match layers.last() {
                Some(prev) if prev.n != k => {
                    return Err(FormatError::ShapesDontChain {
                        layer: i - 1,
                        n: prev.n,
                        next_k: k,
                    })
                }
                None if input_len != k => return Err(FormatError::InputLen { input_len, k }),
                _ => {}
            }
            let requant = layer_requant(i, last, flags, mult, shift)?;
            let rb = row_bytes(n);
            let start = cur.pos;
            let packed = cur.take(k.saturating_mul(rb), || {
                format!("layer {i}'s weights ({k} rows of {rb} bytes)")
            })?;
            let weights = unpack(i, k, n, packed, start)?;
            layers.push(Layer {
                k,
                n,
                weights,
                requant,
            });
        }
        if cur.pos != body.len() {
            return Err(FormatError::ExtraBytes {
                at: cur.pos,
                end: body.len(),
            });
        }
        let n_last = layers.last().map_or(0, |l| l.n);
        if classes != n_last {
            return Err(FormatError::Classes { classes, n: n_last });
        }
        Ok(Model {
            layers,
            input_len,
            classes,
            input_quant,
        })
    }

    /// Checks an in-memory model against everything [`Model::from_bytes`] checks.
    pub fn validate(&self) -> Result<(), FormatError> {
        if self.layers.is_empty() {
            return Err(FormatError::NoLayers);
        }
        if self.layers.len() > u16::MAX as usize {
            return Err(FormatError::TooManyLayers {
                count: self.layers.len(),
            });
        }
        self.input_quant.check()?;
        let count = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            if l.k == 0 || l.n == 0 || l.k > MAX_K || l.n > u32::MAX as usize {
                return Err(FormatError::LayerShape {
                    layer: i,
                    k: l.k,
                    n: l.n,
                });
            }
            if i == 0 && self.input_len != l.k {
                return Err(FormatError::InputLen {
                    input_len: self.input_len,
                    k: l.k,
                });
            }
            if let Some(next) = self.layers.get(i + 1) {
                if next.k != l.n {
                    return Err(FormatError::ShapesDontChain {
                        layer: i,
                        n: l.n,
                        next_k: next.k,
                    });
                }
            }
            let (mult, shift) = l.requant.map_or((0, 0), |q| (q.mult, q.shift));
            layer_requant(i, i + 1 == count, l.flags(), mult, shift)?;
            if l.k.checked_mul(l.n) != Some(l.weights.len()) {
                return Err(FormatError::WeightCount {
                    layer: i,
                    k: l.k,
                    n: l.n,
                    len: l.weights.len(),
                });
            }
            if let Some(j) = l.weights.iter().position(|w| !(-1..=1).contains(w)) {
                return Err(FormatError::WeightValue {
                    layer: i,
                    row: j / l.n,
                    col: j % l.n,
                    value: l.weights[j],
                });
            }
        }
        let n_last = self.layers[count - 1].n;
        if self.classes != n_last {
            return Err(FormatError::Classes {
                classes: self.classes,
                n: n_last,
            });
        }
        if self.input_len > u32::MAX as usize || self.encoded_len().is_none() {
            return Err(FormatError::TooLarge);
        }
        Ok(())
    }

    /// Length of the encoding, `None` beyond `u32::MAX`.
    fn encoded_len(&self) -> Option<u32> {
        let mut len = HEADER_LEN + CRC_LEN;
        for l in &self.layers {
            len = len
                .checked_add(LAYER_HEADER_LEN)?
                .checked_add(l.k.checked_mul(row_bytes(l.n))?)?;
        }
        u32::try_from(len).ok()
    }

    /// Encodes the model in the `.tmm` format (the inverse of [`Model::from_bytes`]; files are
    /// canonical, so `Model::from_bytes(b)?.to_bytes() == b` for every valid `b`).
    ///
    /// # Panics
    /// If the model is not valid ([`Model::validate`]): build models by hand with care, or
    /// validate them first.
    pub fn to_bytes(&self) -> Vec<u8> {
        if let Err(e) = self.validate() {
            panic!("Model::to_bytes on an invalid model: {e}");
        }
        let total = self.encoded_len().unwrap_or(0);
        let q = &self.input_quant;
        let mut b = Vec::with_capacity(total as usize);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&(self.layers.len() as u16).to_le_bytes());
        b.extend_from_slice(&total.to_le_bytes());
        b.extend_from_slice(&(self.input_len as u32).to_le_bytes());
        b.extend_from_slice(&(self.classes as u32).to_le_bytes());
        b.extend_from_slice(&q.raw_min.to_le_bytes());
        b.extend_from_slice(&q.raw_max.to_le_bytes());
        b.extend_from_slice(&q.mult.to_le_bytes());
        b.extend_from_slice(&[q.shift, q.lo as u8, q.hi as u8, 0, 0, 0]);
        for l in &self.layers {
            let (mult, shift) = l.requant.map_or((0, 0), |q| (q.mult, q.shift));
            b.extend_from_slice(&(l.k as u32).to_le_bytes());
            b.extend_from_slice(&(l.n as u32).to_le_bytes());
            b.extend_from_slice(&mult.to_le_bytes());
            b.extend_from_slice(&[shift, l.flags()]);
            for row in l.weights.chunks(l.n) {
                for quad in row.chunks(4) {
                    let byte = quad
                        .iter()
                        .enumerate()
                        .fold(0u8, |acc, (q, &w)| acc | (((w as u8) & 3) << (2 * q)));
                    b.push(byte);
                }
            }
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(b.len(), total as usize);
        b
    }

    /// Runs the model on `rows` int8 input rows (row-major `[rows, input_len]`) with the golden
    /// integer model ([`trimac_sim::golden`]); returns the logits, row-major `[rows, classes]`.
    ///
    /// (Should the last layer requantize, which a valid model never does, its int8 outputs are
    /// returned widened.)
    ///
    /// # Panics
    /// If `x.len() != rows * input_len`, or the layers' weight vectors do not match their
    /// shapes (impossible for a loaded or validated model).
    pub fn predict_golden(&self, x: &[i8], rows: usize) -> Vec<i32> {
        assert_eq!(
            x.len(),
            rows * self.input_len,
            "predict_golden: {} input values for {rows} rows of {}",
            x.len(),
            self.input_len
        );
        let mut h = x.to_vec();
        let mut out = Vec::new();
        for l in &self.layers {
            let acc = golden::gemm(&h, &l.weights, rows, l.k, l.n);
            match l.requant {
                Some(q) => {
                    h = acc.iter().map(|&a| q.apply(a)).collect();
                    out = h.iter().map(|&v| v as i32).collect();
                }
                None => {
                    out = acc;
                    break;
                }
            }
        }
        out
    }

    /// Checks that `test` fits the model: row length `input_len`, labels below `classes`.
    pub fn check_test_set(&self, test: &TestSet) -> Result<(), ModelError> {
        if test.cols != self.input_len {
            return Err(ModelError::InputWidth {
                expected: self.input_len,
                found: test.cols,
            });
        }
        if let Some(row) = test.labels.iter().position(|&l| l as usize >= self.classes) {
            return Err(ModelError::Label {
                row,
                label: test.labels[row],
                classes: self.classes,
            });
        }
        Ok(())
    }

    /// Accuracy of [`Model::predict_golden`] on a test set (after [`Model::check_test_set`]).
    pub fn evaluate_golden(&self, test: &TestSet) -> Result<Accuracy, ModelError> {
        self.check_test_set(test)?;
        let logits = self.predict_golden(&test.x, test.rows);
        Ok(accuracy(&logits, &test.labels, self.classes))
    }
}

/// Counts the rows of `logits` (`[labels.len(), classes]`) whose [`argmax`] is the label.
pub fn accuracy(logits: &[i32], labels: &[u8], classes: usize) -> Accuracy {
    let correct = logits
        .chunks(classes.max(1))
        .zip(labels)
        .filter(|(row, &label)| argmax(row) == label as usize)
        .count();
    Accuracy {
        correct,
        total: labels.len(),
    }
}

/// The flags/mult/shift of layer `i` checked, as the golden [`Requant`] (None = int32 out).
fn layer_requant(
    i: usize,
    last: bool,
    flags: u8,
    mult: u16,
    shift: u8,
) -> Result<Option<Requant>, FormatError> {
    let int8_out = flags & FLAG_INT8_OUT != 0;
    let relu = flags & FLAG_RELU != 0;
    if flags & !(FLAG_INT8_OUT | FLAG_RELU) != 0 || (relu && !int8_out) {
        return Err(FormatError::BadFlags { layer: i, flags });
    }
    if int8_out == last {
        return Err(FormatError::OutputKind { layer: i, last });
    }
    let ok = if int8_out {
        mult >= 1 && shift <= 31
    } else {
        mult == 0 && shift == 0
    };
    if !ok {
        return Err(FormatError::RequantRange {
            layer: i,
            mult,
            shift,
            int8_out,
        });
    }
    Ok(int8_out.then_some(Requant { mult, shift, relu }))
}

/// Decodes layer `layer`'s packed weights (`k` rows of `row_bytes(n)` bytes, at file offset
/// `offset`) to row-major int8.
fn unpack(
    layer: usize,
    k: usize,
    n: usize,
    packed: &[u8],
    offset: usize,
) -> Result<Vec<i8>, FormatError> {
    let rb = row_bytes(n);
    let mut w = Vec::with_capacity(k * n);
    for (row, bytes) in packed.chunks(rb).enumerate() {
        for (j, &byte) in bytes.iter().enumerate() {
            for q in 0..4 {
                let col = 4 * j + q;
                let code = (byte >> (2 * q)) & 3;
                let at = offset + row * rb + j;
                if col >= n {
                    if code != 0 {
                        return Err(FormatError::Padding {
                            layer,
                            row,
                            offset: at,
                        });
                    }
                    continue;
                }
                w.push(match code {
                    0b00 => 0,
                    0b01 => 1,
                    0b11 => -1,
                    _ => {
                        return Err(FormatError::InvalidWeightCode {
                            layer,
                            row,
                            col,
                            offset: at,
                        })
                    }
                });
            }
        }
    }
    Ok(w)
}

impl TestSet {
    /// Loads int8 inputs `[rows, cols]` and uint8 labels `[rows]` from two `.npy` files.
    pub fn load(x_npy: &Path, y_npy: &Path) -> Result<TestSet, ModelError> {
        let x = npy::read_i8_matrix(x_npy)?;
        let labels = npy::read_u8_vector(y_npy)?;
        if labels.len() != x.rows {
            return Err(ModelError::TestSetRows {
                x_path: x_npy.to_path_buf(),
                x_rows: x.rows,
                y_path: y_npy.to_path_buf(),
                y_len: labels.len(),
            });
        }
        Ok(TestSet {
            x: x.data,
            labels,
            rows: x.rows,
            cols: x.cols,
        })
    }

    /// Input row `r`.
    ///
    /// # Panics
    /// If `r >= rows`.
    pub fn row(&self, r: usize) -> &[i8] {
        &self.x[r * self.cols..(r + 1) * self.cols]
    }
}

/// Index of the largest logit; the lowest index wins ties (0 for an empty slice).
pub fn argmax(logits: &[i32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("driver/ is inside the workspace")
            .to_path_buf()
    }

    fn committed_bytes() -> Vec<u8> {
        std::fs::read(root().join(DIGITS_MODEL)).expect("the committed demo model")
    }

    fn problem(b: &[u8]) -> FormatError {
        match Model::from_bytes(b) {
            Err(ModelError::Format {
                problem,
                path: None,
            }) => problem,
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    /// Recomputes the CRC so that a deliberate change reaches the checks behind it.
    fn resign(b: &mut [u8]) {
        let end = b.len() - CRC_LEN;
        let crc = crc32fast::hash(&b[..end]);
        b[end..].copy_from_slice(&crc.to_le_bytes());
    }

    /// A small valid model: 5 -> 8 (int8, ReLU) -> 3 (int32).
    fn small() -> Model {
        let w0: Vec<i8> = (0..40).map(|i| [(1), 0, -1][(i * 7 % 11) % 3]).collect();
        let w1: Vec<i8> = (0..24).map(|i| [-1, 1, 0][(i * 5 % 7) % 3]).collect();
        Model {
            layers: vec![
                Layer {
                    k: 5,
                    n: 8,
                    weights: w0,
                    requant: Some(Requant {
                        mult: 3,
                        shift: 2,
                        relu: true,
                    }),
                },
                Layer {
                    k: 8,
                    n: 3,
                    weights: w1,
                    requant: None,
                },
            ],
            input_len: 5,
            classes: 3,
            input_quant: InputQuant::DIGITS,
        }
    }

    /// Offsets in the committed model: layer 0's header, its weights, layer 1's header and
    /// weights.
    fn layout(m: &Model) -> (usize, usize, usize, usize) {
        let l0 = HEADER_LEN;
        let w0 = l0 + LAYER_HEADER_LEN;
        let l1 = w0 + m.layers[0].k * row_bytes(m.layers[0].n);
        (l0, w0, l1, l1 + LAYER_HEADER_LEN)
    }

    #[test]
    fn committed_model_loads_and_roundtrips_byte_exactly() {
        let b = committed_bytes();
        let m = Model::load(&root().join(DIGITS_MODEL)).unwrap();
        assert_eq!(m.to_bytes(), b);
        assert_eq!(Model::from_bytes(&b).unwrap(), m);
        assert_eq!(m.input_len, 64);
        assert_eq!(m.classes, 10);
        assert_eq!(m.input_quant, InputQuant::DIGITS);
        let (last, hidden) = m.layers.split_last().unwrap();
        assert!(hidden.iter().all(|l| l.requant.is_some_and(|q| q.relu)));
        assert!(hidden.iter().all(|l| l.n % 8 == 0));
        assert_eq!(last.requant, None);
        assert!(m.validate().is_ok());
    }

    #[test]
    fn small_model_roundtrips() {
        let m = small();
        let b = m.to_bytes();
        assert_eq!(
            b.len(),
            HEADER_LEN + 2 * LAYER_HEADER_LEN + 5 * 2 + 8 + CRC_LEN
        );
        assert_eq!(Model::from_bytes(&b).unwrap(), m);
        // Without ReLU, and a 1-layer model.
        let mut m2 = m.clone();
        m2.layers[0].requant = Some(Requant {
            mult: u16::MAX,
            shift: 31,
            relu: false,
        });
        m2.input_quant = InputQuant::IDENTITY;
        assert_eq!(Model::from_bytes(&m2.to_bytes()).unwrap(), m2);
        let m3 = Model {
            layers: vec![m.layers[1].clone()],
            input_len: 8,
            classes: 3,
            input_quant: InputQuant::default(),
        };
        assert_eq!(Model::from_bytes(&m3.to_bytes()).unwrap(), m3);
    }

    #[test]
    fn packs_codes_as_documented() {
        // One row [1, -1, 0, 1, -1]: byte 0 = 01 | 11<<2 | 00<<4 | 01<<6, byte 1 = 11 (padded).
        let m = Model {
            layers: vec![Layer {
                k: 1,
                n: 5,
                weights: vec![1, -1, 0, 1, -1],
                requant: None,
            }],
            input_len: 1,
            classes: 5,
            input_quant: InputQuant::DIGITS,
        };
        let b = m.to_bytes();
        let w = HEADER_LEN + LAYER_HEADER_LEN;
        assert_eq!(&b[w..w + 2], &[0b01_00_11_01, 0b11]);
        assert_eq!(&b[..8], b"TMACMDL\0");
        assert_eq!(&b[8..16], &[1, 0, 1, 0, 54, 0, 0, 0]);
        assert_eq!(&b[16..24], &[1, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(&b[24..36], &[0, 0, 16, 0, 8, 0, 0, 0, 127, 0, 0, 0]);
        assert_eq!(&b[36..48], &[1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b.len(), 54);
        assert_eq!(&b[50..], &crc32fast::hash(&b[..50]).to_le_bytes());
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let b = committed_bytes();
        let stored = u32::from_le_bytes(b[b.len() - 4..].try_into().unwrap());
        for i in 0..b.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut c = b.clone();
                c[i] ^= mask;
                let p = problem(&c);
                match i {
                    0..=7 => assert!(matches!(p, FormatError::BadMagic { .. }), "{i}: {p}"),
                    8..=9 => assert!(
                        matches!(p, FormatError::UnsupportedVersion { supported: 1, .. }),
                        "{i}: {p}"
                    ),
                    12..=15 => assert!(
                        matches!(
                            p,
                            FormatError::Truncated { .. }
                                | FormatError::TrailingBytes { .. }
                                | FormatError::BadLength { .. }
                        ),
                        "{i}: {p}"
                    ),
                    _ if i >= b.len() - 4 => assert!(
                        matches!(p, FormatError::ChecksumMismatch { expected, found }
                            if expected != stored && found == stored),
                        "{i}: {p}"
                    ),
                    _ => assert!(
                        matches!(p, FormatError::ChecksumMismatch { expected, found }
                            if expected == stored && found != stored),
                        "{i}: {p}"
                    ),
                }
            }
        }
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        let b = committed_bytes();
        for len in 0..b.len() {
            let p = problem(&b[..len]);
            assert!(
                matches!(&p, FormatError::Truncated { at, .. } if *at == len),
                "{len}: {p}"
            );
        }
        assert_eq!(
            problem(&[&b[..], &[0]].concat()),
            FormatError::TrailingBytes {
                len: b.len() + 1,
                expected: b.len()
            }
        );
        let p = problem(&b[..100]);
        assert_eq!(
            p.to_string(),
            format!(
                "truncated at byte 100 while reading the file (its header gives a length of {} bytes)",
                b.len()
            )
        );
    }

    #[test]
    fn header_errors() {
        let b = committed_bytes();
        let mut c = b.clone();
        c[..8].copy_from_slice(b"GGUF\0\0\0\0");
        assert_eq!(
            problem(&c),
            FormatError::BadMagic {
                found: b"GGUF\0\0\0\0".to_vec()
            }
        );
        assert!(matches!(
            problem(b"\x93NUMPY"),
            FormatError::BadMagic { .. }
        ));
        c = b.clone();
        c[8] = 2;
        assert_eq!(
            problem(&c),
            FormatError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        );
        c = b.clone();
        c[12..16].copy_from_slice(&10u32.to_le_bytes());
        assert!(matches!(
            problem(&c),
            FormatError::BadLength { declared: 10, .. }
        ));
        c = b.clone();
        c[20] ^= 1;
        let stored = u32::from_le_bytes(b[b.len() - 4..].try_into().unwrap());
        match problem(&c) {
            FormatError::ChecksumMismatch { expected, found } => {
                assert_eq!(expected, stored);
                assert_eq!(found, crc32fast::hash(&c[..c.len() - 4]));
            }
            p => panic!("{p}"),
        }
    }

    /// Deeper checks: each corruption is re-signed so that the CRC passes.
    #[test]
    fn structural_errors_behind_a_valid_crc() {
        let b = committed_bytes();
        let m = Model::from_bytes(&b).unwrap();
        let (l0, w0, l1, w1) = layout(&m);
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut c = b.clone();
            f(&mut c);
            resign(&mut c);
            problem(&c)
        };
        // Invalid weight code: layer 0, row 0, column 0 becomes 0b10.
        let p = with(&|c| c[w0] = (c[w0] & !3) | 0b10);
        assert_eq!(
            p,
            FormatError::InvalidWeightCode {
                layer: 0,
                row: 0,
                col: 0,
                offset: w0
            }
        );
        // Layer 1, row 2, column 9 (byte 2 of the row, code 1).
        let rb1 = row_bytes(m.layers[1].n);
        let at = w1 + 2 * rb1 + 2;
        let p = with(&|c| c[at] = (c[at] & !0b1100) | 0b1000);
        assert_eq!(
            p,
            FormatError::InvalidWeightCode {
                layer: 1,
                row: 2,
                col: 9,
                offset: at
            }
        );
        // Padding bits (columns 10 and 11 of a 10-wide row).
        let p = with(&|c| c[at] |= 0b0100_0000);
        assert!(
            matches!(
                p,
                FormatError::Padding {
                    layer: 1,
                    row: 2,
                    ..
                }
            ),
            "{p}"
        );
        // Layer counts.
        assert_eq!(with(&|c| c[10] = 0), FormatError::NoLayers);
        assert_eq!(
            with(&|c| c[10] = 3),
            FormatError::OutputKind {
                layer: 1,
                last: false
            }
        );
        let p = with(&|c| {
            c[10] = 3;
            c[l1 + 8] = 1;
            c[l1 + 11] = FLAG_INT8_OUT;
        });
        assert!(
            matches!(&p, FormatError::Truncated { what, .. } if what == "layer 2's header"),
            "{p}"
        );
        let p = with(&|c| c[10] = 1);
        assert_eq!(
            p,
            FormatError::OutputKind {
                layer: 0,
                last: true
            }
        );
        // Shapes.
        let p = with(&|c| c[l1..l1 + 4].copy_from_slice(&127u32.to_le_bytes()));
        assert_eq!(
            p,
            FormatError::ShapesDontChain {
                layer: 0,
                n: 128,
                next_k: 127
            }
        );
        let p = with(&|c| c[16..20].copy_from_slice(&63u32.to_le_bytes()));
        assert_eq!(
            p,
            FormatError::InputLen {
                input_len: 63,
                k: 64
            }
        );
        let p = with(&|c| c[20..24].copy_from_slice(&9u32.to_le_bytes()));
        assert_eq!(p, FormatError::Classes { classes: 9, n: 10 });
        let p = with(&|c| c[l0..l0 + 4].copy_from_slice(&0u32.to_le_bytes()));
        assert!(
            matches!(p, FormatError::LayerShape { layer: 0, k: 0, .. }),
            "{p}"
        );
        let p = with(&|c| c[l0 + 4..l0 + 8].copy_from_slice(&u32::MAX.to_le_bytes()));
        assert!(
            matches!(&p, FormatError::Truncated { what, .. } if what.starts_with("layer 0's weights")),
            "{p}"
        );
        let p = with(&|c| {
            c[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
            c[l0..l0 + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        });
        assert!(matches!(p, FormatError::LayerShape { layer: 0, .. }), "{p}");
        let p = with(&|c| c[l1 + 4..l1 + 8].copy_from_slice(&100_000u32.to_le_bytes()));
        assert!(
            matches!(&p, FormatError::Truncated { what, .. } if what.starts_with("layer 1's weights")),
            "{p}"
        );
        // Requantization and flags.
        let p = with(&|c| c[l0 + 10] = 32);
        assert_eq!(
            p,
            FormatError::RequantRange {
                layer: 0,
                mult: m.layers[0].requant.unwrap().mult,
                shift: 32,
                int8_out: true
            }
        );
        let p = with(&|c| c[l0 + 8..l0 + 10].copy_from_slice(&[0, 0]));
        assert!(
            matches!(
                p,
                FormatError::RequantRange {
                    layer: 0,
                    mult: 0,
                    ..
                }
            ),
            "{p}"
        );
        let p = with(&|c| c[l1 + 8] = 1);
        assert!(
            matches!(
                p,
                FormatError::RequantRange {
                    layer: 1,
                    mult: 1,
                    int8_out: false,
                    ..
                }
            ),
            "{p}"
        );
        for (flags, want) in [
            (
                0x04,
                FormatError::BadFlags {
                    layer: 0,
                    flags: 0x04,
                },
            ),
            (
                0x02,
                FormatError::BadFlags {
                    layer: 0,
                    flags: 0x02,
                },
            ),
            (
                0x00,
                FormatError::OutputKind {
                    layer: 0,
                    last: false,
                },
            ),
        ] {
            assert_eq!(with(&|c| c[l0 + 11] = flags), want);
        }
        assert_eq!(
            with(&|c| c[l1 + 11] = 3),
            FormatError::OutputKind {
                layer: 1,
                last: true
            }
        );
        // Reserved bytes and the input rule.
        assert_eq!(
            with(&|c| c[34] = 7),
            FormatError::Reserved {
                offset: 34,
                value: 7
            }
        );
        let p = with(&|c| c[30] = 40);
        assert_eq!(
            p,
            FormatError::InputQuant {
                field: "shift",
                value: 40
            }
        );
        let p = with(&|c| c[28..30].copy_from_slice(&[0, 0]));
        assert_eq!(
            p,
            FormatError::InputQuant {
                field: "mult",
                value: 0
            }
        );
        let p = with(&|c| c[32] = 0x80);
        assert!(matches!(p, FormatError::InputQuant { .. }), "{p}");
        // Bytes between the last layer and the CRC, with a consistent length field.
        let mut c = b.clone();
        c.splice(b.len() - 4..b.len() - 4, [0u8, 0]);
        let total = c.len() as u32;
        c[12..16].copy_from_slice(&total.to_le_bytes());
        resign(&mut c);
        assert_eq!(
            problem(&c),
            FormatError::ExtraBytes {
                at: b.len() - 4,
                end: b.len() - 2
            }
        );
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.tmm");
        let e = Model::load(&missing).unwrap_err();
        assert!(matches!(e, ModelError::Io { .. }));
        assert!(e.to_string().contains("nope.tmm"), "{e}");
        let bad = dir.path().join("bad.tmm");
        let mut b = committed_bytes();
        b[100] ^= 0x10;
        std::fs::write(&bad, &b).unwrap();
        let e = Model::load(&bad).unwrap_err();
        assert!(matches!(
            e.format_error(),
            Some(FormatError::ChecksumMismatch { .. })
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("bad.tmm") && msg.contains("checksum mismatch"),
            "{msg}"
        );
        let e = Model::from_bytes(b"TMACMDL\0\x07\x00").unwrap_err();
        assert_eq!(
            e.to_string(),
            "model: unsupported format version 7 (this build reads version 1)"
        );
    }

    #[test]
    fn validate_rejects_bad_in_memory_models() {
        let mut m = small();
        m.layers[0].weights[13] = 2;
        assert_eq!(
            m.validate(),
            Err(FormatError::WeightValue {
                layer: 0,
                row: 1,
                col: 5,
                value: 2
            })
        );
        m = small();
        m.layers[1].weights.pop();
        assert!(matches!(
            m.validate(),
            Err(FormatError::WeightCount {
                layer: 1,
                len: 23,
                ..
            })
        ));
        m = small();
        m.layers[1].requant = m.layers[0].requant;
        assert_eq!(
            m.validate(),
            Err(FormatError::OutputKind {
                layer: 1,
                last: true
            })
        );
        m = small();
        m.classes = 4;
        assert_eq!(m.validate(), Err(FormatError::Classes { classes: 4, n: 3 }));
        m = small();
        m.layers.clear();
        assert_eq!(m.validate(), Err(FormatError::NoLayers));
    }

    #[test]
    #[should_panic(expected = "invalid model")]
    fn to_bytes_panics_on_an_invalid_model() {
        let mut m = small();
        m.input_len = 4;
        let _ = m.to_bytes();
    }

    #[test]
    fn predict_golden_matches_a_hand_computation() {
        let m = small();
        let x: Vec<i8> = vec![10, -3, 7, 127, -128, 0, 1, 2, 3, 4];
        let logits = m.predict_golden(&x, 2);
        assert_eq!(logits.len(), 6);
        for r in 0..2 {
            let xr = &x[r * 5..(r + 1) * 5];
            let mut h = [0i64; 8];
            for (n, hn) in h.iter_mut().enumerate() {
                let acc: i64 = (0..5)
                    .map(|k| xr[k] as i64 * m.layers[0].weights[k * 8 + n] as i64)
                    .sum();
                // (acc * 3 + 2) >> 2, floor, clamped to [0, 127].
                *hn = ((acc * 3 + 2).div_euclid(4)).clamp(0, 127);
            }
            for c in 0..3 {
                let want: i64 = (0..8)
                    .map(|k| h[k] * m.layers[1].weights[k * 3 + c] as i64)
                    .sum();
                assert_eq!(logits[r * 3 + c] as i64, want);
            }
        }
    }

    #[test]
    fn argmax_lowest_index_wins_ties() {
        assert_eq!(argmax(&[1, 5, 5, 2]), 1);
        assert_eq!(argmax(&[i32::MIN, i32::MIN]), 0);
        assert_eq!(argmax(&[-3, -1, -2]), 1);
        assert_eq!(argmax(&[7]), 0);
        assert_eq!(argmax(&[]), 0);
        assert_eq!(
            accuracy(&[1, 0, 0, 2, 2, 0], &[0, 1, 1], 2),
            Accuracy {
                correct: 2,
                total: 3
            }
        );
    }

    #[test]
    fn input_quant_rule() {
        let q = InputQuant::DIGITS;
        let got: Vec<i8> = [0, 1, 8, 15, 16].iter().map(|&p| q.apply(p)).collect();
        assert_eq!(got, vec![0, 8, 64, 120, 127]);
        assert_eq!(InputQuant::IDENTITY.apply(-200), -128);
        assert_eq!(InputQuant::IDENTITY.apply(42), 42);
        let half = InputQuant {
            shift: 1,
            ..InputQuant::IDENTITY
        };
        assert_eq!((half.apply(3), half.apply(-3)), (2, -1));
    }

    /// The recorded accuracy line of models/digits/README.md: `(correct, total)`.
    fn readme_accuracy() -> (usize, usize) {
        let text = std::fs::read_to_string(root().join("models/digits/README.md")).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("Test accuracy (exact integer pipeline)"))
            .expect("README records the accuracy");
        let frac = line.split("**").nth(1).unwrap().split(' ').next().unwrap();
        let (c, t) = frac.split_once('/').unwrap();
        (c.parse().unwrap(), t.parse().unwrap())
    }

    #[test]
    fn committed_model_reaches_the_recorded_accuracy() {
        let paths = DemoPaths::digits(&root());
        let m = Model::load(&paths.model).unwrap();
        let t = TestSet::load(&paths.test_x, &paths.test_y).unwrap();
        assert_eq!((t.rows, t.cols), (360, 64));
        assert!(t.x.iter().all(|&v| (0..=127).contains(&v)));
        let acc = m.evaluate_golden(&t).unwrap();
        assert!(acc.fraction() >= 0.95, "accuracy {acc}");
        assert_eq!(
            (acc.correct, acc.total),
            readme_accuracy(),
            "accuracy {acc}"
        );
        // Row by row through predict_golden gives the same predictions.
        let first = m.predict_golden(t.row(0), 1);
        assert_eq!(first, m.predict_golden(&t.x, t.rows)[..10].to_vec());
    }

    #[test]
    fn test_set_errors() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DemoPaths::digits(&root());
        let y3 = dir.path().join("y3.npy");
        npy::write_u8_vector(&y3, &[1, 2, 3]).unwrap();
        let e = TestSet::load(&paths.test_x, &y3).unwrap_err();
        assert!(
            matches!(
                e,
                ModelError::TestSetRows {
                    x_rows: 360,
                    y_len: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("y3.npy"));
        // The arguments swapped: labels are not an int8 matrix.
        let e = TestSet::load(&paths.test_y, &paths.test_x).unwrap_err();
        assert!(matches!(e, ModelError::Npy(NpyError::Dtype { .. })), "{e}");
        let m = Model::load(&paths.model).unwrap();
        let t = TestSet {
            x: vec![0; 4],
            labels: vec![0, 1],
            rows: 2,
            cols: 2,
        };
        assert!(matches!(
            m.evaluate_golden(&t),
            Err(ModelError::InputWidth {
                expected: 64,
                found: 2
            })
        ));
        let t = TestSet {
            x: vec![0; 128],
            labels: vec![0, 10],
            rows: 2,
            cols: 64,
        };
        assert!(matches!(
            m.evaluate_golden(&t),
            Err(ModelError::Label {
                row: 1,
                label: 10,
                classes: 10
            })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Arbitrary bytes, with or without a valid CRC, never panic; what loads re-encodes to
        /// the same bytes.
        #[test]
        fn never_panics_on_mutated_files(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
            sign in any::<bool>(),
        ) {
            let mut b = committed_bytes();
            for (i, v) in edits {
                let i = i.index(b.len());
                b[i] = v;
            }
            if truncate {
                b.truncate(cut.index(b.len()));
            }
            if sign && b.len() >= HEADER_LEN + CRC_LEN {
                resign(&mut b);
            }
            if let Ok(m) = Model::from_bytes(&b) {
                prop_assert_eq!(m.to_bytes(), b);
            }
        }

        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = b;
            if b.len() >= 10 {
                b[..8].copy_from_slice(&MAGIC);
                b[8..10].copy_from_slice(&1u16.to_le_bytes());
            }
            let _ = Model::from_bytes(&b);
        }
    }
}
