//! `FanoutRegister`: one register built several times, so that each copy drives a share of a
//! signal's loads.
//!
//! A register whose output reaches every lane (a memory address, a run flag) is one net of
//! hundreds of loads across the chip, and nextpnr does not replicate drivers. Synthesis merges
//! flip-flops with the same input, so copies written as ordinary registers would become one
//! again; this block marks each copy's process `(* keep *)`, which yosys honours (measured:
//! two 4-bit copies of one register synthesize to 8 flip-flops with it, 4 without). The
//! copies hold the same value on every cycle: the block changes where the loads hang, not what
//! any of them sees, so the simulation model is one value shown on every output. A single
//! copy is not marked, so synthesis may merge it with a register of the same input (the
//! source it was copied from): one copy costs nothing.

use rust_hdl::prelude::*;

/// Loads one copy of a [`FanoutRegister`] is meant to drive (lanes, rows or memories).
pub const LOADS_PER_COPY: usize = 8;

/// `copies` registers of one input, each on its own output.
#[derive(LogicBlock)]
pub struct FanoutRegister<T: Synth> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Input, registered at every rising edge.
    pub d: Signal<In, T>,
    /// The copies: `d` one cycle later, equal on every cycle (zero before the first edge).
    pub q: Vec<Signal<Out, T>>,
}

impl<T: Synth> FanoutRegister<T> {
    /// `copies` copies (at least one).
    pub fn new(copies: usize) -> Self {
        assert!(copies >= 1, "a fan-out register needs at least one copy");
        Self {
            clock: Default::default(),
            d: Default::default(),
            q: (0..copies).map(|_| Default::default()).collect(),
        }
    }

    /// Copies needed so that each drives at most `per_copy` of `loads` loads.
    pub fn copies_for(loads: usize, per_copy: usize) -> usize {
        assert!(per_copy >= 1, "each copy must drive at least one load");
        loads.div_ceil(per_copy).max(1)
    }
}

impl<T: Synth> Logic for FanoutRegister<T> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            for q in &mut self.q {
                q.next = self.d.val();
            }
        }
    }

    fn connect(&mut self) {
        for q in &mut self.q {
            q.connect();
        }
    }

    fn hdl(&self) -> Verilog {
        copies_verilog(self.q.len(), self.q.len() > 1, |_| "d".into())
    }

    fn timing(&self) -> Vec<TimingInfo> {
        vec![TimingInfo {
            name: "fanout_register".into(),
            clock: "clock".into(),
            inputs: vec!["d".into()],
            outputs: (0..self.q.len()).map(|k| format!("q${k}")).collect(),
        }]
    }
}

/// A bus of `width` signals, each registered in `copies` copies: copy `k` of input `j` is
/// `q[k * width + j]`. The vector form of [`FanoutRegister`], for a bus whose every signal
/// has loads spread over the chip (a column's weight code reaching all of its rows), since
/// hdl_gen cannot index a port vector of a block held in a vector. Copies are kept the same
/// way (`(* keep *)` when there are several).
#[derive(LogicBlock)]
pub struct FanoutBus<T: Synth> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The bus (`width` signals), registered at every rising edge.
    pub d: Vec<Signal<In, T>>,
    /// `copies` copies of the bus, copy after copy: `d[j]` one cycle later at `q[k * width + j]`.
    pub q: Vec<Signal<Out, T>>,
    _width: usize,
}

impl<T: Synth> FanoutBus<T> {
    /// `copies` copies (at least one) of a bus of `width` signals (at least one).
    pub fn new(width: usize, copies: usize) -> Self {
        assert!(width >= 1, "a fan-out bus needs at least one signal");
        assert!(copies >= 1, "a fan-out bus needs at least one copy");
        Self {
            clock: Default::default(),
            d: (0..width).map(|_| Default::default()).collect(),
            q: (0..width * copies).map(|_| Default::default()).collect(),
            _width: width,
        }
    }
}

impl<T: Synth> Logic for FanoutBus<T> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            for (k, q) in self.q.iter_mut().enumerate() {
                q.next = self.d[k % self._width].val();
            }
        }
    }

    fn connect(&mut self) {
        for q in &mut self.q {
            q.connect();
        }
    }

    fn hdl(&self) -> Verilog {
        let width = self._width;
        copies_verilog(self.q.len(), self.q.len() > width, |k| {
            format!("d${}", k % width)
        })
    }

    fn timing(&self) -> Vec<TimingInfo> {
        vec![TimingInfo {
            name: "fanout_bus".into(),
            clock: "clock".into(),
            inputs: (0..self._width).map(|j| format!("d${j}")).collect(),
            outputs: (0..self.q.len()).map(|k| format!("q${k}")).collect(),
        }]
    }
}

/// Verilog of the registers `q$0 .. q$(outputs - 1)`, each loaded from the input named
/// `source(k)` at every rising edge and zero before the first; each process is marked
/// `(* keep *)` when `keep`, so that synthesis cannot merge the copies.
fn copies_verilog(outputs: usize, keep: bool, source: impl Fn(usize) -> String) -> Verilog {
    let mut body = String::from("initial begin\n");
    for k in 0..outputs {
        body.push_str(&format!("   q${k} = 0;\n"));
    }
    body.push_str("end\n");
    let keep = if keep { "(* keep *) " } else { "" };
    for k in 0..outputs {
        let d = source(k);
        body.push_str(&format!("{keep}always @(posedge clock) q${k} <= {d};\n"));
    }
    Verilog::Custom(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::tick;

    #[test]
    fn every_copy_is_the_input_one_cycle_later() {
        let mut r = FanoutRegister::<Bits<16>>::new(3);
        r.connect_all();
        for (k, v) in [0x1234u64, 0xFFFF, 0, 7].into_iter().enumerate() {
            r.d.next = v.into();
            let before: Vec<u64> = r.q.iter().map(|q| q.val().to_u64()).collect();
            let expect_before = if k == 0 {
                0
            } else {
                [0x1234u64, 0xFFFF, 0][k - 1]
            };
            assert!(before.iter().all(|&b| b == expect_before), "{before:?}");
            tick(&mut r, |b| &mut b.clock);
            assert!(r.q.iter().all(|q| q.val().to_u64() == v));
        }
    }

    #[test]
    fn verilog_keeps_each_copy() {
        let r = FanoutRegister::<bool>::new(4);
        let Verilog::Custom(text) = r.hdl() else {
            panic!("custom Verilog expected");
        };
        assert_eq!(
            text.matches("(* keep *) always @(posedge clock)").count(),
            4
        );
        assert!(text.contains("q$3 <= d;"));
        let Verilog::Custom(one) = FanoutRegister::<bool>::new(1).hdl() else {
            panic!("custom Verilog expected");
        };
        assert!(
            !one.contains("keep"),
            "a single copy may merge with its source"
        );
    }

    #[test]
    fn copies_cover_the_loads() {
        assert_eq!(FanoutRegister::<bool>::copies_for(32, 8), 4);
        assert_eq!(FanoutRegister::<bool>::copies_for(33, 8), 5);
        assert_eq!(FanoutRegister::<bool>::copies_for(4, 8), 1);
        assert_eq!(FanoutRegister::<bool>::copies_for(0, 8), 1);
    }

    #[test]
    #[should_panic(expected = "at least one copy")]
    fn refuses_zero_copies() {
        let _ = FanoutRegister::<bool>::new(0);
    }

    #[test]
    fn every_bus_copy_is_its_input_one_cycle_later() {
        let mut b = FanoutBus::<Bits<2>>::new(3, 4);
        b.connect_all();
        for step in 0..5u64 {
            let inputs: Vec<u64> = (0..3).map(|j| (step + j) % 4).collect();
            for (j, &v) in inputs.iter().enumerate() {
                b.d[j].next = v.into();
            }
            tick(&mut b, |b| &mut b.clock);
            for k in 0..4 {
                for (j, &v) in inputs.iter().enumerate() {
                    assert_eq!(b.q[k * 3 + j].val().to_u64(), v, "copy {k} of input {j}");
                }
            }
        }
    }

    #[test]
    fn bus_verilog_keeps_each_copy_of_each_signal() {
        let Verilog::Custom(text) = FanoutBus::<Bits<2>>::new(3, 2).hdl() else {
            panic!("custom Verilog expected");
        };
        assert_eq!(
            text.matches("(* keep *) always @(posedge clock)").count(),
            6
        );
        assert!(text.contains("q$5 <= d$2;"));
        assert!(text.contains("q$3 <= d$0;"));
        let Verilog::Custom(one) = FanoutBus::<bool>::new(3, 1).hdl() else {
            panic!("custom Verilog expected");
        };
        assert!(!one.contains("keep"));
    }

    #[test]
    #[should_panic(expected = "at least one copy")]
    fn bus_refuses_zero_copies() {
        let _ = FanoutBus::<bool>::new(2, 0);
    }
}
