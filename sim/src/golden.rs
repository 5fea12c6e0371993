//! The golden model: the exact integer semantics of the accelerator, in plain Rust.
//!
//! Every other representation (rust-hdl simulation, Verilator, a board) must give the same
//! integers as these functions.

/// Requantization parameters of a layer (see docs/protocol.md, "Requantization").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requant {
    /// Fixed-point multiplier.
    pub mult: u16,
    /// Right shift, `0..=31`.
    pub shift: u8,
    /// Clamp at zero instead of -128.
    pub relu: bool,
}

impl Requant {
    /// Requantizes one exact accumulator to int8.
    pub fn apply(&self, acc: i32) -> i8 {
        debug_assert!(self.shift <= 31);
        let p = acc as i64 * self.mult as i64;
        let r = if self.shift > 0 {
            1i64 << (self.shift - 1)
        } else {
            0
        };
        let y = (p + r) >> self.shift;
        let lo = if self.relu { 0 } else { -128 };
        y.clamp(lo, 127) as i8
    }
}

/// `Y = X . W` exactly: `x` is row-major int8 `[m, k]`, `w` row-major ternary `[k, n]`
/// (values in {-1, 0, 1}), the result row-major int32 `[m, n]`.
///
/// # Panics
/// If the slice lengths do not match the shape.
pub fn gemm(x: &[i8], w: &[i8], m: usize, k: usize, n: usize) -> Vec<i32> {
    assert_eq!(
        x.len(),
        m * k,
        "x has {} elements, expected {m}x{k}",
        x.len()
    );
    assert_eq!(
        w.len(),
        k * n,
        "w has {} elements, expected {k}x{n}",
        w.len()
    );
    let mut y = vec![0i32; m * n];
    for r in 0..m {
        let yr = &mut y[r * n..(r + 1) * n];
        for kk in 0..k {
            let a = x[r * k + kk] as i32;
            if a == 0 {
                continue;
            }
            for (yv, &wv) in yr.iter_mut().zip(&w[kk * n..(kk + 1) * n]) {
                match wv {
                    1 => *yv += a,
                    -1 => *yv -= a,
                    _ => {}
                }
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requant_rounds_half_up_and_clamps() {
        let q = Requant {
            mult: 1,
            shift: 1,
            relu: false,
        };
        assert_eq!(q.apply(3), 2); // 1.5 -> 2
        assert_eq!(q.apply(-3), -1); // -1.5 -> -1
        assert_eq!(q.apply(1000), 127);
        assert_eq!(q.apply(-1000), -128);
        let r = Requant {
            mult: 3,
            shift: 0,
            relu: true,
        };
        assert_eq!(r.apply(-5), 0);
        assert_eq!(r.apply(5), 15);
        let big = Requant {
            mult: u16::MAX,
            shift: 31,
            relu: false,
        };
        assert_eq!(big.apply(i32::MIN), -128);
        assert_eq!(big.apply(i32::MAX), 127);
    }

    #[test]
    fn gemm_small() {
        // x = [[1, -128], [127, 0]], w = [[1, -1], [-1, 0]]
        let y = gemm(&[1, -128, 127, 0], &[1, -1, -1, 0], 2, 2, 2);
        assert_eq!(y, vec![129, -1, 127, -127]);
    }
}
