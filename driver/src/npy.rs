//! Reading and writing the `.npy` matrices the CLI and the demo use, on the `npyz` crate.
//!
//! Readers are strict: the dtype, the number of dimensions, the memory order and the exact data
//! length are checked, and every problem (a truncated or malformed file included) comes back as
//! an [`NpyError`] naming the file, never as a panic. The whole file is read into memory and its
//! preamble and shape are checked before `npyz` parses it, so a hostile header cannot make it
//! allocate or multiply beyond what the file holds.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use npyz::{DType, Order, TypeChar, WriterBuilder};

/// A dense row-major matrix: element `(r, c)` is `data[r * cols + c]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix<T> {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// The `rows * cols` elements, row after row.
    pub data: Vec<T>,
}

impl<T> Matrix<T> {
    /// Row `r` as a slice.
    ///
    /// # Panics
    /// If `r >= rows` or `data` is shorter than `rows * cols`.
    pub fn row(&self, r: usize) -> &[T] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// Why an `.npy` file could not be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// Opening, reading or writing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a well-formed `.npy` file (bad magic, unparsable or truncated header,
    /// data shorter or longer than the shape says, ...).
    #[error("{}: not a valid .npy file: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The element type is not the one required.
    #[error("{}: dtype {found}, expected {expected}", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The dtype as written in the file, e.g. `'<f8'`.
        found: String,
        /// What the reader needs, e.g. `int8 ('|i1')`.
        expected: &'static str,
    },
    /// The array has the wrong number of dimensions.
    #[error("{}: shape {found:?}, expected {expected}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The shape as written in the file.
        found: Vec<u64>,
        /// What the reader needs, e.g. `a 2-D array`.
        expected: &'static str,
    },
    /// A 2-D array stored in Fortran (column-major) order.
    #[error(
        "{}: stored in Fortran order; save it in C order (numpy.ascontiguousarray)",
        path.display()
    )]
    FortranOrder {
        /// The file.
        path: PathBuf,
    },
    /// The array has no elements.
    #[error("{}: empty array of shape {shape:?}", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// The shape as written in the file.
        shape: Vec<u64>,
    },
    /// A weight matrix holds a value other than -1, 0 or 1.
    #[error(
        "{}: value {value} at (row {row}, col {col}) is not a ternary weight (-1, 0 or 1)",
        path.display()
    )]
    NotTernary {
        /// The file.
        path: PathBuf,
        /// Row of the first bad value.
        row: usize,
        /// Column of the first bad value.
        col: usize,
        /// The value.
        value: i8,
    },
    /// A matrix to be written has `data.len() != rows * cols`.
    #[error(
        "{}: cannot write a {rows}x{cols} matrix from {len} elements",
        path.display()
    )]
    DataLength {
        /// The file.
        path: PathBuf,
        /// Rows claimed.
        rows: usize,
        /// Columns claimed.
        cols: usize,
        /// Elements present.
        len: usize,
    },
}

/// Reads a 2-D C-order int8 (`|i1`) array.
pub fn read_i8_matrix(path: &Path) -> Result<Matrix<i8>, NpyError> {
    let (shape, data) = read_array::<i8>(path, TypeChar::Int, 1, "int8 ('|i1')")?;
    matrix(path, shape, data)
}

/// Reads a 2-D C-order int8 array whose every value is -1, 0 or 1 (a ternary weight matrix);
/// the error for any other value names the first one and its position.
pub fn read_ternary_matrix(path: &Path) -> Result<Matrix<i8>, NpyError> {
    let m = read_i8_matrix(path)?;
    if let Some(i) = m.data.iter().position(|v| !(-1..=1).contains(v)) {
        return Err(NpyError::NotTernary {
            path: path.to_path_buf(),
            row: i / m.cols,
            col: i % m.cols,
            value: m.data[i],
        });
    }
    Ok(m)
}

/// Reads a 2-D C-order int32 (`<i4`) array.
pub fn read_i32_matrix(path: &Path) -> Result<Matrix<i32>, NpyError> {
    let (shape, data) = read_array::<i32>(path, TypeChar::Int, 4, "int32 ('<i4')")?;
    matrix(path, shape, data)
}

/// Reads a non-empty 1-D uint8 (`|u1`) array, e.g. class labels.
pub fn read_u8_vector(path: &Path) -> Result<Vec<u8>, NpyError> {
    let (shape, data) = read_array::<u8>(path, TypeChar::Uint, 1, "uint8 ('|u1')")?;
    if shape.len() != 1 {
        return Err(NpyError::Shape {
            path: path.to_path_buf(),
            found: shape,
            expected: "a 1-D array",
        });
    }
    Ok(data)
}

/// Writes `m` as a 2-D C-order int32 (`<i4`) array.
pub fn write_i32_matrix(path: &Path, m: &Matrix<i32>) -> Result<(), NpyError> {
    write_matrix(path, m)
}

/// Writes `m` as a 2-D C-order int8 (`|i1`) array.
pub fn write_i8_matrix(path: &Path, m: &Matrix<i8>) -> Result<(), NpyError> {
    write_matrix(path, m)
}

/// Writes `v` as a 1-D uint8 (`|u1`) array.
pub fn write_u8_vector(path: &Path, v: &[u8]) -> Result<(), NpyError> {
    let io = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(io)?;
    let mut w = npyz::WriteOptions::<u8>::new()
        .default_dtype()
        .shape(&[v.len() as u64])
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(io)?;
    w.extend(v.iter().copied()).map_err(io)?;
    w.finish().map_err(io)
}

fn write_matrix<T: npyz::AutoSerialize + Copy>(path: &Path, m: &Matrix<T>) -> Result<(), NpyError> {
    if m.rows.checked_mul(m.cols) != Some(m.data.len()) {
        return Err(NpyError::DataLength {
            path: path.to_path_buf(),
            rows: m.rows,
            cols: m.cols,
            len: m.data.len(),
        });
    }
    let io = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(io)?;
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(&[m.rows as u64, m.cols as u64])
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(io)?;
    w.extend(m.data.iter().copied()).map_err(io)?;
    w.finish().map_err(io)
}

/// Checks that `shape` is 2-D and in C order (already checked: non-empty) and builds the matrix.
fn matrix<T>(path: &Path, shape: Vec<u64>, data: Vec<T>) -> Result<Matrix<T>, NpyError> {
    match shape[..] {
        [rows, cols] => Ok(Matrix {
            // Both fit: their product is the length of `data`.
            rows: rows as usize,
            cols: cols as usize,
            data,
        }),
        _ => Err(NpyError::Shape {
            path: path.to_path_buf(),
            found: shape,
            expected: "a 2-D array",
        }),
    }
}

/// Reads a whole `.npy` file of element type `(kind, size)`; returns its shape and data.
///
/// Checks, in order: the preamble and header, the dtype, C order (for 2 or more dimensions),
/// at least one element, and that the data is exactly as long as the shape says.
fn read_array<T: npyz::Deserialize>(
    path: &Path,
    kind: TypeChar,
    size: u64,
    expected: &'static str,
) -> Result<(Vec<u64>, Vec<T>), NpyError> {
    let bad = |reason: String| NpyError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let data_start = check_preamble(&bytes).map_err(bad)?;
    let header = npyz::NpyHeader::from_reader(&bytes[..data_start])
        .map_err(|e| bad(format!("bad header: {e}")))?;

    let dtype = header.dtype();
    let ok = matches!(&dtype, DType::Plain(t) if t.type_char() == kind && t.size_field() == size);
    if !ok {
        return Err(NpyError::Dtype {
            path: path.to_path_buf(),
            found: dtype.descr(),
            expected,
        });
    }
    let shape = header.shape().to_vec();
    if shape.len() >= 2 && header.order() == Order::Fortran {
        return Err(NpyError::FortranOrder {
            path: path.to_path_buf(),
        });
    }
    if shape.contains(&0) {
        return Err(NpyError::Empty {
            path: path.to_path_buf(),
            shape,
        });
    }
    // `check_preamble` made sure the product fits in u64.
    let needed = shape.iter().product::<u64>().checked_mul(size);
    let have = (bytes.len() - data_start) as u64;
    match needed {
        Some(n) if n == have => {}
        Some(n) if n < have => {
            return Err(bad(format!(
                "{} bytes after the data of shape {shape:?}",
                have - n
            )))
        }
        _ => {
            return Err(bad(format!(
                "truncated: shape {shape:?} needs {} data bytes, the file has {have}",
                needed.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
            )))
        }
    }
    let data = npyz::NpyFile::with_header(header, &bytes[data_start..])
        .into_vec::<T>()
        .map_err(|e| bad(format!("bad data: {e}")))?;
    Ok((shape, data))
}

/// Checks the magic, version and header length, and that the shape's element count fits in a
/// u64 (npyz multiplies it out unchecked). Returns the offset of the data.
fn check_preamble(b: &[u8]) -> Result<usize, String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if b.len() < 10 || !b.starts_with(MAGIC) {
        return Err(if b.starts_with(MAGIC) || MAGIC.starts_with(b) {
            format!("truncated: {} bytes", b.len())
        } else {
            "missing the \\x93NUMPY magic".to_string()
        });
    }
    let (prefix, header_len) = match (b[6], b[7]) {
        (1, 0) => (10, u16::from_le_bytes([b[8], b[9]]) as usize),
        (2, 0) | (3, 0) if b.len() >= 12 => {
            (12, u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize)
        }
        (2, 0) | (3, 0) => return Err(format!("truncated: {} bytes", b.len())),
        (major, minor) => return Err(format!("unsupported format version {major}.{minor}")),
    };
    let data_start = prefix + header_len;
    if data_start > b.len() {
        return Err(format!(
            "truncated header: {header_len} header bytes announced, {} present",
            b.len() - prefix
        ));
    }
    let text = String::from_utf8_lossy(&b[prefix..data_start]);
    let dims = shape_dims(&text).ok_or("cannot find a shape tuple in the header")?;
    let mut count: u64 = 1;
    for d in dims {
        // Dimensions that are not plain u64 are left to npyz to reject.
        if let Ok(d) = d.parse::<u64>() {
            count = count
                .checked_mul(d)
                .ok_or("shape has more than 2^64 elements")?;
        }
    }
    Ok(data_start)
}

/// The comma-separated items of the `'shape': (...)` tuple (or list) of a header dict.
fn shape_dims(text: &str) -> Option<Vec<&str>> {
    let at = text.find("'shape'").or_else(|| text.find("\"shape\""))?;
    let rest = text[at + 7..].trim_start().strip_prefix(':')?.trim_start();
    let close = match rest.chars().next()? {
        '(' => ')',
        '[' => ']',
        _ => return None,
    };
    let inner = &rest[1..rest.find(close)?];
    Some(
        inner
            .split(',')
            .map(|s| s.trim().trim_end_matches(['L', 'l']))
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1.0 `.npy` file with the given header fields and raw data bytes.
    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(data);
        b
    }

    fn file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn i8_bytes(v: &[i8]) -> Vec<u8> {
        v.iter().map(|&x| x as u8).collect()
    }

    #[test]
    fn reads_a_c_order_int8_matrix() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(
            &dir,
            "a.npy",
            &npy("|i1", false, "(2, 3)", &i8_bytes(&[1, -2, 3, -128, 127, 0])),
        );
        let m = read_i8_matrix(&p).unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        assert_eq!(m.data, vec![1, -2, 3, -128, 127, 0]);
        assert_eq!(m.row(1), &[-128, 127, 0]);
        // Endianness is irrelevant for one byte: '<i1' is accepted too.
        let p = file(&dir, "b.npy", &npy("<i1", false, "(1, 1)", &[5]));
        assert_eq!(read_i8_matrix(&p).unwrap().data, vec![5]);
    }

    #[test]
    fn int8_roundtrip_through_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.npy");
        let m = Matrix {
            rows: 3,
            cols: 2,
            data: vec![-1, 0, 1, 1, 0, -1],
        };
        write_i8_matrix(&p, &m).unwrap();
        assert_eq!(read_i8_matrix(&p).unwrap(), m);
        assert_eq!(read_ternary_matrix(&p).unwrap(), m);
    }

    #[test]
    fn i32_roundtrip_and_bad_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("y.npy");
        let m = Matrix {
            rows: 2,
            cols: 2,
            data: vec![i32::MIN, -1, 0, i32::MAX],
        };
        write_i32_matrix(&p, &m).unwrap();
        assert_eq!(read_i32_matrix(&p).unwrap(), m);
        // An int32 file is not an int8 one.
        let e = read_i8_matrix(&p).unwrap_err();
        assert!(
            matches!(&e, NpyError::Dtype { found, .. } if found == "'<i4'"),
            "{e}"
        );
        let bad = Matrix {
            rows: 2,
            cols: 3,
            data: vec![0; 5],
        };
        let e = write_i32_matrix(&p, &bad).unwrap_err();
        assert!(matches!(e, NpyError::DataLength { len: 5, .. }), "{e}");
        // Writing into a missing directory is an I/O error naming the path.
        let q = dir.path().join("no/such/dir/y.npy");
        let e = write_i32_matrix(&q, &m).unwrap_err();
        assert!(matches!(e, NpyError::Io { .. }));
        assert!(e.to_string().contains("no/such/dir"), "{e}");
    }

    #[test]
    fn u8_vector_roundtrip_and_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.npy");
        write_u8_vector(&p, &[0, 9, 255]).unwrap();
        assert_eq!(read_u8_vector(&p).unwrap(), vec![0, 9, 255]);
        let p2 = file(&dir, "l2.npy", &npy("|u1", false, "(1, 2)", &[1, 2]));
        let e = read_u8_vector(&p2).unwrap_err();
        assert!(matches!(e, NpyError::Shape { .. }), "{e}");
        let p3 = file(&dir, "l3.npy", &npy("|i1", false, "(2,)", &[1, 2]));
        assert!(matches!(read_u8_vector(&p3), Err(NpyError::Dtype { .. })));
        // A 1-D array may carry either order flag.
        let p4 = file(&dir, "l4.npy", &npy("|u1", true, "(2,)", &[1, 2]));
        assert_eq!(read_u8_vector(&p4).unwrap(), vec![1, 2]);
    }

    #[test]
    fn rejects_non_ternary_values_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(
            &dir,
            "w.npy",
            &npy("|i1", false, "(2, 3)", &i8_bytes(&[1, 0, -1, 0, 1, 2])),
        );
        let e = read_ternary_matrix(&p).unwrap_err();
        assert!(
            matches!(
                e,
                NpyError::NotTernary {
                    row: 1,
                    col: 2,
                    value: 2,
                    ..
                }
            ),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains("w.npy") && msg.contains("row 1, col 2") && msg.contains("value 2"));
        let p = file(
            &dir,
            "w2.npy",
            &npy("|i1", false, "(1, 2)", &i8_bytes(&[-2, 5])),
        );
        assert!(matches!(
            read_ternary_matrix(&p),
            Err(NpyError::NotTernary {
                row: 0,
                col: 0,
                value: -2,
                ..
            })
        ));
    }

    #[test]
    fn rejects_wrong_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        for (descr, size) in [("<f4", 4), ("<f8", 8), ("|u1", 1), ("<i2", 2), ("|b1", 1)] {
            let p = file(
                &dir,
                "d.npy",
                &npy(descr, false, "(2, 2)", &vec![0; 4 * size]),
            );
            let e = read_i8_matrix(&p).unwrap_err();
            assert!(
                matches!(&e, NpyError::Dtype { found, .. } if found.contains(descr)),
                "{descr}: {e}"
            );
            assert!(e.to_string().contains("d.npy"));
        }
        let p = file(&dir, "f.npy", &npy("<f8", false, "(1, 1)", &[0; 8]));
        assert!(matches!(read_i32_matrix(&p), Err(NpyError::Dtype { .. })));
    }

    #[test]
    fn rejects_wrong_dimensions_order_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        for shape in ["(4,)", "(1, 2, 2)", "()"] {
            let p = file(
                &dir,
                "s.npy",
                &npy(
                    "|i1",
                    false,
                    shape,
                    &[0; 4][..if shape == "()" { 1 } else { 4 }],
                ),
            );
            let e = read_i8_matrix(&p).unwrap_err();
            assert!(matches!(e, NpyError::Shape { .. }), "{shape}: {e}");
            assert!(e.to_string().contains("2-D"), "{e}");
        }
        let p = file(&dir, "f.npy", &npy("|i1", true, "(2, 2)", &[0; 4]));
        let e = read_i8_matrix(&p).unwrap_err();
        assert!(matches!(e, NpyError::FortranOrder { .. }), "{e}");
        for shape in ["(0, 64)", "(3, 0)", "(0,)"] {
            let p = file(&dir, "e.npy", &npy("|i1", false, shape, &[]));
            let e = read_i8_matrix(&p).unwrap_err();
            assert!(matches!(e, NpyError::Empty { .. }), "{shape}: {e}");
        }
        let p = file(&dir, "e.npy", &npy("|u1", false, "(0,)", &[]));
        assert!(matches!(read_u8_vector(&p), Err(NpyError::Empty { .. })));
    }

    #[test]
    fn rejects_malformed_files_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let good = npy("|i1", false, "(2, 3)", &[0; 6]);
        let malformed = |name: &str, bytes: &[u8]| {
            let p = file(&dir, name, bytes);
            let e = read_i8_matrix(&p).unwrap_err();
            assert!(matches!(e, NpyError::Malformed { .. }), "{name}: {e}");
            assert!(e.to_string().contains(name), "{e}");
            e.to_string()
        };
        malformed("empty.npy", &[]);
        assert!(malformed("short.npy", &good[..5]).contains("truncated"));
        malformed("magic.npy", b"PK\x03\x04 this is a zip file");
        // Every truncation, in the preamble, the header or the data.
        for len in 0..good.len() {
            malformed("cut.npy", &good[..len]);
        }
        assert!(malformed("long.npy", &[&good[..], &[0]].concat()).contains("after the data"));
        let mut v9 = good.clone();
        v9[6] = 9;
        assert!(malformed("version.npy", &v9).contains("version"));
        let mut huge = good.clone();
        huge[8] = 0xff;
        huge[9] = 0xff;
        assert!(malformed("hlen.npy", &huge).contains("header"));
        malformed("text.npy", &npy("|i1", false, "(2, 3", &[0; 6]));
        malformed("noshape.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': '|i1'}");
        malformed("neg.npy", &npy("|i1", false, "(-2, 3)", &[0; 6]));
        malformed("dtype.npy", &npy("|q9", false, "(2, 3)", &[0; 6]));
        // Dimensions whose product overflows must not panic in npyz.
        let e = malformed(
            "overflow.npy",
            &npy("|i1", false, "(4294967296, 4294967296)", &[0; 6]),
        );
        assert!(e.contains("2^64"), "{e}");
        malformed("big.npy", &npy("|i1", false, "(65536, 65536)", &[0; 6]));
        let e = read_i8_matrix(&dir.path().join("missing.npy")).unwrap_err();
        assert!(matches!(e, NpyError::Io { .. }) && e.to_string().contains("missing.npy"));
    }

    #[test]
    fn reads_header_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = npy("|i1", false, "(1, 2)", &[1, 2]);
        let hlen = u16::from_le_bytes([v1[8], v1[9]]) as u32;
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        v2.extend_from_slice(&hlen.to_le_bytes());
        v2.extend_from_slice(&v1[10..]);
        let p = file(&dir, "v2.npy", &v2);
        assert_eq!(read_i8_matrix(&p).unwrap().data, vec![1, 2]);
    }
}
