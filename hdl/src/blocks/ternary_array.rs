//! `TernaryArray`: a `rows x cols` weight-stationary grid of [`Pe`]s.
//!
//! Activations enter each row from the left (row `i` one cycle behind row `i - 1`) and move
//! right one PE per cycle; partial sums start at zero in the top row and move down one PE per
//! cycle, leaving the bottom of column `j` as `sum_i w[i][j] * a[i]`. The shadow weights are
//! written one row at a time from the `code_in` bus, by the row's load strobe.
//!
//! Each row's load strobe comes in a cycle ahead (`load_next`) and is registered in one copy
//! per [`LOADS_PER_COPY`] columns ([`FanoutBus`]), so no strobe net spans a whole row.
//!
//! With staged codes (`Config::registered_code_bus`), the code bus is registered once more,
//! in one copy per [`LOADS_PER_COPY`] rows ([`FanoutBus`]): each copy sits near its rows,
//! so no code net spans the whole column, and `code_in` then comes with `load_next`, not after it.
//!
//! Every PE but the first of its row swaps early (from its left neighbour's `swap_in`), and
//! row `i`'s partial sums are [`Pe::width_for_row`]`(i)` bits wide (see [`Pe`]): the same
//! sums from fewer LUTs and flip-flops.

use super::fanout::{FanoutBus, FanoutRegister, LOADS_PER_COPY};
use super::pe::Pe;
use crate::config::PSUM_BITS;
use rust_hdl::prelude::*;

const _: () = assert!(LOADS_PER_COPY == 8);

/// The PE grid.
#[derive(LogicBlock)]
pub struct TernaryArray {
    /// Array clock.
    pub clock: Signal<In, Clock>,
    /// Activation entering each row (one per row).
    pub act_in: Vec<Signal<In, Bits<8>>>,
    /// Tile-start flag entering each row with its activation (one per row).
    pub swap_in: Vec<Signal<In, bool>>,
    /// Shadow-weight write strobe of each row, a cycle ahead (one per row): row `i`'s shadows
    /// take `code_in` at the edge after the one that registers `load_next[i]` high.
    pub load_next: Vec<Signal<In, bool>>,
    /// Weight code bus, one code per column, written into the row whose `load_next` was high
    /// a cycle before (with staged codes, the row whose `load_next` is high in the same cycle).
    pub code_in: Vec<Signal<In, Bits<2>>>,
    /// Column sums leaving the bottom row (one per column).
    pub psum_out: Vec<Signal<Out, Bits<PSUM_BITS>>>,
    pes: Vec<Pe>,
    // The load strobes, registered: copy `k` of row `i` (at `q[k * rows + i]`) drives the
    // row's PEs `8k .. 8k + 7`.
    load_fan: FanoutBus<bool>,
    // The staged code bus: a copy of `code_in` per `LOADS_PER_COPY` rows (a single copy,
    // which nothing reads and synthesis drops, without staged codes).
    code_stage: FanoutBus<Bits<2>>,
    // 1 with staged codes, else 0.
    _code_staged: usize,
    _rows: usize,
    _cols: usize,
    _cols_upto2: usize,
}

impl TernaryArray {
    /// A `rows x cols` array, its code bus staged or not.
    pub fn new(rows: usize, cols: usize, staged_codes: bool) -> Self {
        assert!(rows >= 1 && cols >= 1, "array must have at least one PE");
        assert!(
            128 * rows < 1 << (PSUM_BITS - 1),
            "{rows} rows overflow the {PSUM_BITS}-bit partial sums"
        );
        Self {
            clock: Default::default(),
            act_in: (0..rows).map(|_| Default::default()).collect(),
            swap_in: (0..rows).map(|_| Default::default()).collect(),
            load_next: (0..rows).map(|_| Default::default()).collect(),
            code_in: (0..cols).map(|_| Default::default()).collect(),
            psum_out: (0..cols).map(|_| Default::default()).collect(),
            pes: (0..rows * cols)
                .map(|k| Pe::new(Pe::width_for_row(k / cols), k % cols > 0))
                .collect(),
            load_fan: FanoutBus::new(
                rows,
                FanoutRegister::<bool>::copies_for(cols, LOADS_PER_COPY),
            ),
            code_stage: FanoutBus::new(
                cols,
                if staged_codes {
                    FanoutRegister::<bool>::copies_for(rows, LOADS_PER_COPY)
                } else {
                    1
                },
            ),
            _code_staged: usize::from(staged_codes),
            _rows: rows,
            _cols: cols,
            _cols_upto2: cols.min(2),
        }
    }
}

impl Logic for TernaryArray {
    // `c` and `r` are one-iteration loops: the Verilog generator evaluates index expressions
    // knowing only loop variables, so the array shape is brought in that way.
    #[hdl_gen]
    fn update(&mut self) {
        self.code_stage.clock.next = self.clock.val();
        for j in 0..self._cols {
            self.code_stage.d[j].next = self.code_in[j].val();
        }
        self.load_fan.clock.next = self.clock.val();
        for i in 0..self._rows {
            self.load_fan.d[i].next = self.load_next[i].val();
        }
        for c in self._cols..(self._cols + 1) {
            for r in self._rows..(self._rows + 1) {
                for i in 0..self._rows {
                    for j in 0..self._cols {
                        self.pes[i * c + j].clock.next = self.clock.val();
                        // Copy `j / 8` of the row's strobe (8 is `LOADS_PER_COPY`).
                        self.pes[i * c + j].load.next = self.load_fan.q[(j / 8) * r + i].val();
                        self.pes[i * c + j].code_in.next = self.code_in[j].val();
                    }
                    // Staged codes: row i takes its column's code from copy `i / 8` (hdl_gen
                    // takes no constants in an index: 8 is `LOADS_PER_COPY`).
                    for _s in 0..self._code_staged {
                        for j in 0..self._cols {
                            self.pes[i * c + j].code_in.next =
                                self.code_stage.q[(i / 8) * c + j].val();
                        }
                    }
                    self.pes[i * c].act_in.next = self.act_in[i].val();
                    self.pes[i * c].swap_in.next = self.swap_in[i].val();
                    self.pes[i * c].swap_pre.next = false;
                    for j in 1..self._cols {
                        self.pes[i * c + j].act_in.next = self.pes[i * c + j - 1].act_out.val();
                        self.pes[i * c + j].swap_in.next = self.pes[i * c + j - 1].swap_out.val();
                    }
                    // One cycle ahead: what the left neighbour sees now (taken from its
                    // source, not from the neighbour's input, so it settles in one pass).
                    for j in 1..self._cols_upto2 {
                        self.pes[i * c + j].swap_pre.next = self.swap_in[i].val();
                    }
                    for j in 2..self._cols {
                        self.pes[i * c + j].swap_pre.next = self.pes[i * c + j - 2].swap_out.val();
                    }
                }
                for j in 0..self._cols {
                    self.pes[j].psum_in.next = bits::<PSUM_BITS>(0);
                    self.psum_out[j].next = self.pes[(r - 1) * c + j].psum_out.val();
                }
                for i in 1..self._rows {
                    for j in 0..self._cols {
                        self.pes[i * c + j].psum_in.next = self.pes[(i - 1) * c + j].psum_out.val();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::tick;
    use crate::protocol::encode_weight;

    /// Drives tiles back to back (period `max(m, rows, cols)`) and checks every column sum.
    /// With `staged` codes, each row's codes go onto `code_in` a cycle before its `load`.
    fn run_tiles(rows: usize, cols: usize, tiles: &[(Vec<i8>, Vec<i8>)], m: usize, staged: bool) {
        let mut arr = TernaryArray::new(rows, cols, staged);
        arr.connect_all();
        let period = m.max(rows).max(cols);
        let total = tiles.len() * period + rows + cols + 3;
        let mut expected: Vec<(usize, usize, i16)> = vec![]; // (tick, col, value)
        for (t, (x, w)) in tiles.iter().enumerate() {
            let start = t * period + 2; // weights load at start-1+i, activation row i at start+m+i
            for mm in 0..m {
                for j in 0..cols {
                    let y: i32 = (0..rows)
                        .map(|i| x[mm * rows + i] as i32 * w[i * cols + j] as i32)
                        .sum();
                    expected.push((start + mm + rows - 1 + j, j, y as i16));
                }
            }
        }
        let mut checked = 0;
        for tick_no in 0..total {
            for i in 0..rows {
                arr.act_in[i].next = 0.into();
                arr.swap_in[i].next = false;
                arr.load_next[i].next = false;
            }
            for (t, (x, w)) in tiles.iter().enumerate() {
                let start = t * period + 2;
                // Row i's shadow is written at start - 1 + i, before its swap at start + i: its
                // strobe goes in a cycle before that.
                if tick_no + 2 >= start && tick_no + 2 < start + rows {
                    arr.load_next[tick_no + 2 - start].next = true;
                }
                let lead = 1 + usize::from(staged);
                if tick_no + lead >= start && tick_no + lead < start + rows {
                    let i = tick_no + lead - start;
                    for j in 0..cols {
                        arr.code_in[j].next =
                            (encode_weight(w[i * cols + j]).unwrap() as u64).into();
                    }
                }
                for i in 0..rows {
                    if tick_no >= start + i && tick_no < start + i + m {
                        let mm = tick_no - start - i;
                        arr.act_in[i].next = (x[mm * rows + i] as u8 as u64).into();
                        arr.swap_in[i].next = mm == 0;
                    }
                }
            }
            tick(&mut arr, |a| &mut a.clock);
            for &(when, j, y) in expected.iter().filter(|e| e.0 == tick_no) {
                assert_eq!(
                    arr.psum_out[j].val().index() as u16 as i16,
                    y,
                    "tick {when} col {j}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, expected.len());
    }

    fn pattern(n: usize, seed: i32, f: impl Fn(i32) -> i8) -> Vec<i8> {
        (0..n as i32).map(|v| f(v * 7919 + seed * 104729)).collect()
    }

    #[test]
    fn back_to_back_tiles_match_golden_sums() {
        for (rows, cols, m) in [(4, 4, 6), (4, 4, 1), (8, 4, 3), (3, 5, 9)] {
            let tiles: Vec<_> = (0..3)
                .map(|t| {
                    let x = pattern(m * rows, t, |v| (v.rem_euclid(256) - 128) as i8);
                    let w = pattern(rows * cols, t + 11, |v| (v.rem_euclid(3) - 1) as i8);
                    (x, w)
                })
                .collect();
            run_tiles(rows, cols, &tiles, m, false);
            run_tiles(rows, cols, &tiles, m, true);
        }
    }

    #[test]
    fn staged_codes_reach_every_row_group() {
        // 32 rows: four copies of the code bus, each feeding 8 rows.
        let (rows, cols, m) = (32, 4, 3);
        let tiles: Vec<_> = (0..3)
            .map(|t| {
                let x = pattern(m * rows, t, |v| (v.rem_euclid(256) - 128) as i8);
                let w = pattern(rows * cols, t + 5, |v| (v.rem_euclid(3) - 1) as i8);
                (x, w)
            })
            .collect();
        run_tiles(rows, cols, &tiles, m, true);
    }

    #[test]
    fn load_copies_reach_every_column_group() {
        // 20 columns: three copies of each row's strobe, the last feeding 4 columns.
        let (rows, cols, m) = (3, 20, 2);
        let tiles: Vec<_> = (0..3)
            .map(|t| {
                let x = pattern(m * rows, t, |v| (v.rem_euclid(256) - 128) as i8);
                let w = pattern(rows * cols, t + 3, |v| (v.rem_euclid(3) - 1) as i8);
                (x, w)
            })
            .collect();
        run_tiles(rows, cols, &tiles, m, false);
        run_tiles(rows, cols, &tiles, m, true);
    }

    #[test]
    fn extreme_values() {
        let (rows, cols, m) = (8, 4, 2);
        let x = vec![-128i8; m * rows];
        let tiles = vec![
            (x.clone(), vec![-1i8; rows * cols]),
            (vec![127i8; m * rows], vec![-1i8; rows * cols]),
            (x, vec![0i8; rows * cols]),
        ];
        run_tiles(rows, cols, &tiles, m, false);
        run_tiles(rows, cols, &tiles, m, true);
    }
}
