//! Host-side layout of matrices into device words and back (docs/protocol.md, "Layout the
//! device computes with").
//!
//! - weights `W [K, N]` (ternary): word `(nt * k_tiles + kt) * rows + i` holds row
//!   `k = kt * rows + i`, columns `nt * cols .. nt * cols + cols`, code `j` for column
//!   `nt * cols + j` in bits `[2q+1 : 2q]` of byte `b` where `j = 4b + q`;
//! - activations `X [M, K]` (int8): word `m * k_tiles + kt`, byte `i` is `X[m, kt * rows + i]`;
//! - results (int32): word `m * n_tiles + nt`, lane `j` is `Y[m, nt * cols + j]`; int8 outputs
//!   use the same words in activation memory, one byte per lane.
//!
//! Elements beyond `K` or `N` are zero padding.

use crate::error::DriverError;
use std::ops::Range;
use trimac_hdl::protocol::encode_weight;
use trimac_hdl::Config;

/// Tiles of `size` needed to cover `len` elements (`len / size` rounded up).
pub fn tiles(len: usize, size: usize) -> usize {
    len.div_ceil(size)
}

/// Checks that `w` holds `k * n` values in {-1, 0, 1}; the error names the first bad one.
pub fn check_ternary(w: &[i8], k: usize, n: usize) -> Result<(), DriverError> {
    if w.len() != k * n {
        return Err(DriverError::Shape(format!(
            "weights have {} values, a {k}x{n} matrix has {}",
            w.len(),
            k * n
        )));
    }
    match w.iter().position(|v| encode_weight(*v).is_none()) {
        None => Ok(()),
        Some(p) => Err(DriverError::Shape(format!(
            "weight W[{}, {}] = {} is not ternary: weights must be -1, 0 or 1",
            p / n,
            p % n,
            w[p]
        ))),
    }
}

/// Packs all N-tiles of the ternary matrix `w [k, n]` into weight words (link bytes), starting
/// at word 0.
pub fn pack_weights(w: &[i8], k: usize, n: usize, cfg: &Config) -> Result<Vec<u8>, DriverError> {
    pack_weight_tiles(w, k, n, 0..tiles(n, cfg.cols), cfg)
}

/// Packs the N-tiles `tile_range` of `w [k, n]` into weight words: tile `t` becomes the layer's
/// tile `t - tile_range.start`, so the words can be written at any `wt_base`.
pub fn pack_weight_tiles(
    w: &[i8],
    k: usize,
    n: usize,
    tile_range: Range<usize>,
    cfg: &Config,
) -> Result<Vec<u8>, DriverError> {
    check_ternary(w, k, n)?;
    let (rows, cols) = (cfg.rows, cfg.cols);
    let kt = tiles(k, rows);
    let mut out = Vec::with_capacity(tile_range.len() * kt * rows * cfg.weight_word_bytes());
    for t in tile_range {
        for kk in 0..kt * rows {
            let mut word = vec![0u8; cfg.weight_word_bytes()];
            for (j, byte) in (0..cols).map(|j| (j, j / 4)) {
                let col = t * cols + j;
                if kk < k && col < n {
                    let code = encode_weight(w[kk * n + col]).unwrap_or(0);
                    word[byte] |= code << (2 * (j % 4));
                }
            }
            out.extend_from_slice(&word);
        }
    }
    Ok(out)
}

/// Packs the int8 matrix `x [m, k]` into activation words (`m * k_tiles` words).
pub fn pack_activations(x: &[i8], m: usize, k: usize, cfg: &Config) -> Vec<u8> {
    let rows = cfg.rows;
    let kt = tiles(k, rows);
    let mut out = vec![0u8; m * kt * rows];
    for r in 0..m {
        let dst = &mut out[r * kt * rows..r * kt * rows + k];
        for (d, s) in dst.iter_mut().zip(&x[r * k..(r + 1) * k]) {
            *d = *s as u8;
        }
    }
    out
}

/// Unpacks `m * n_tiles` result words (int32 lanes) into the row-major matrix `Y [m, n]`.
pub fn unpack_results(bytes: &[u8], m: usize, n: usize, cfg: &Config) -> Vec<i32> {
    let lanes = unpack_lanes(bytes, m, n, cfg.cols, cfg.result_word_bytes(), 4);
    lanes
        .iter()
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Unpacks `m * n_tiles` int8 output words (in activation memory, one byte per lane) into
/// the row-major matrix `Y [m, n]`.
pub fn unpack_int8(bytes: &[u8], m: usize, n: usize, cfg: &Config) -> Vec<i8> {
    let lanes = unpack_lanes(bytes, m, n, cfg.cols, cfg.act_word_bytes(), 1);
    lanes.iter().map(|b| b[0] as i8).collect()
}

/// The `lane_bytes`-byte lanes of output `(r, c)` for `r < m`, `c < n`, row-major.
fn unpack_lanes(
    bytes: &[u8],
    m: usize,
    n: usize,
    cols: usize,
    word_bytes: usize,
    lane_bytes: usize,
) -> Vec<&[u8]> {
    let nt = tiles(n, cols);
    let mut out = Vec::with_capacity(m * n);
    for r in 0..m {
        for c in 0..n {
            let word = r * nt + c / cols;
            let at = word * word_bytes + (c % cols) * lane_bytes;
            out.push(&bytes[at..at + lane_bytes]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use trimac_hdl::protocol::decode_weight;

    /// Decodes weight words back into `W [k, n]` (the device's view), for round trips.
    fn unpack_weights(words: &[u8], k: usize, n: usize, cfg: &Config) -> Vec<i8> {
        let (rows, cols, wb) = (cfg.rows, cfg.cols, cfg.weight_word_bytes());
        let kt = tiles(k, rows);
        let mut w = vec![0i8; k * n];
        for (kk, row) in w.chunks_mut(n).enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                let word = ((c / cols) * kt + kk / rows) * rows + kk % rows;
                let j = c % cols;
                let code = words[word * wb + j / 4] >> (2 * (j % 4));
                *v = decode_weight(code & 3).unwrap();
            }
        }
        w
    }

    fn ternary(k: usize, n: usize) -> Vec<i8> {
        (0..k * n)
            .map(|i| ((i * 7 + i / 3) % 3) as i8 - 1)
            .collect()
    }

    #[test]
    fn weight_word_bits_follow_protocol() {
        let cfg = Config::new(4, 8).unwrap();
        // W [1, 6]: row 0 = [1, -1, 0, 1, -1, 1]; columns 6, 7 and rows 1..4 are padding.
        let w = [1, -1, 0, 1, -1, 1];
        let words = pack_weights(&w, 1, 6, &cfg).unwrap();
        assert_eq!(words.len(), 4 * 2);
        // byte 0: cols 0..4 = 01, 11, 00, 01 -> 0b01_00_11_01; byte 1: cols 4,5 = 11, 01.
        assert_eq!(&words[..2], &[0b0100_1101, 0b0000_0111]);
        assert!(words[2..].iter().all(|b| *b == 0));
    }

    #[test]
    fn weights_round_trip_with_padding() {
        for (r, c) in [(4, 4), (8, 8), (2, 8), (8, 4)] {
            let cfg = Config::new(r, c).unwrap();
            for (k, n) in [(1, 1), (5, 7), (8, 8), (13, 21), (16, 3)] {
                let w = ternary(k, n);
                let words = pack_weights(&w, k, n, &cfg).unwrap();
                let expect = tiles(n, c) * tiles(k, r) * r * cfg.weight_word_bytes();
                assert_eq!(words.len(), expect);
                assert_eq!(unpack_weights(&words, k, n, &cfg), w, "{r}x{c} k={k} n={n}");
            }
        }
    }

    #[test]
    fn weight_tile_ranges_are_slices_of_the_whole() {
        let cfg = Config::new(4, 4).unwrap();
        let (k, n) = (6, 11);
        let w = ternary(k, n);
        let all = pack_weights(&w, k, n, &cfg).unwrap();
        let per_tile = tiles(k, 4) * 4 * cfg.weight_word_bytes();
        let part = pack_weight_tiles(&w, k, n, 1..3, &cfg).unwrap();
        assert_eq!(part, all[per_tile..3 * per_tile]);
    }

    #[test]
    fn non_ternary_weights_are_named() {
        let cfg = Config::new(4, 4).unwrap();
        let err = pack_weights(&[0, 1, 2, 0], 2, 2, &cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("W[1, 0] = 2"), "{err}");
        assert!(pack_weights(&[0, 1, 1], 2, 2, &cfg).is_err());
    }

    #[test]
    fn activations_pad_k() {
        let cfg = Config::new(4, 4).unwrap();
        let x: Vec<i8> = vec![1, -2, 3, -128, 127, 6];
        let words = pack_activations(&x, 2, 3, &cfg);
        assert_eq!(words, vec![1, 0xfe, 3, 0, 0x80, 127, 6, 0]);
        let words = pack_activations(&x, 1, 6, &cfg);
        assert_eq!(words, vec![1, 0xfe, 3, 0x80, 127, 6, 0, 0]);
    }

    #[test]
    fn results_unpack_drops_padding_lanes() {
        let cfg = Config::new(4, 4).unwrap();
        let (m, n) = (2, 5); // two N-tiles per row, 3 padding lanes in the second.
        let mut bytes = Vec::new();
        for w in 0..m * 2 {
            for j in 0..4 {
                let v = (w * 10 + j) as i32 * if j % 2 == 0 { 1 } else { -1 };
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        let y = unpack_results(&bytes, m, n, &cfg);
        assert_eq!(y, vec![0, -1, 2, -3, 10, 20, -21, 22, -23, 30]);
    }

    #[test]
    fn int8_unpack_reads_one_byte_per_lane() {
        let cfg = Config::new(4, 4).unwrap();
        let bytes = [1u8, 0xff, 3, 4, 5, 6, 7, 8];
        assert_eq!(unpack_int8(&bytes, 2, 3, &cfg), vec![1, -1, 3, 5, 6, 7]);
        assert_eq!(unpack_int8(&bytes, 1, 6, &cfg), vec![1, -1, 3, 4, 5, 6]);
    }
}
