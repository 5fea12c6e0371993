//! `LaneRam`: a simple dual-port synchronous RAM of runtime depth, one per array lane.
//!
//! rust-hdl's own `RAM` fixes the depth to a power of two through a const generic and
//! simulates through a `BTreeMap`; the accelerator needs depths from the [`Config`] and fast
//! simulation, so this block keeps a `Vec` and emits the same inferable Verilog pattern
//! (registered read, synchronous write) that yosys maps to block RAM.
//!
//! **Read and write of one address in one cycle.** The design never uses the word read in a
//! cycle that also writes its address (an accumulator lane's last write of a row lands two
//! cycles after its token and the row comes back at least four cycles later, runs never write
//! the region they read, and the host's reads and writes are separate frames), so the memory is marked `no_rw_check`: yosys then maps it to bare block RAM instead
//! of adding a comparator and a bypass multiplexer to every read port (which sat on the
//! iCE40's critical path). What such a read returns is left open, and the two simulations
//! take the two answers: the emitted Verilog returns the old word (Verilator), this model the
//! new one (rust-hdl). The differential suite holds both to the golden model bit for bit, so
//! it fails if any result ever depended on a read that collided with a write.
//!
//! **No power-up value on the read register in synthesis.** A block RAM's output register
//! cannot be initialised, so yosys honours `read_data = 0` by adding a flip-flop that is 0 until
//! the first clock and a multiplexer on every read bit: one net of 258 loads on the iCEBreaker,
//! on the accumulator's critical path. Nothing reads a RAM before the first clock (the board
//! top holds reset until the PLL locks), so the initial value is kept for simulators only
//! (`ifndef SYNTHESIS`; yosys defines `SYNTHESIS`, Verilator does not and zero-initialises).
//!
//! [`Config`]: crate::Config

use rust_hdl::prelude::*;

/// Address width of every on-chip memory port (depths are at most 65536 words).
pub const ADDR_BITS: usize = 16;

/// A RAM with one synchronous read port and one synchronous write port on one clock.
#[derive(LogicBlock)]
pub struct LaneRam<D: Synth> {
    /// Clock of both ports.
    pub clock: Signal<In, Clock>,
    /// Read address; the word appears on `read_data` after the next rising edge.
    pub read_address: Signal<In, Bits<ADDR_BITS>>,
    /// Registered read data.
    pub read_data: Signal<Out, D>,
    /// Write address.
    pub write_address: Signal<In, Bits<ADDR_BITS>>,
    /// Data written at the rising edge when `write_enable` is high.
    pub write_data: Signal<In, D>,
    /// Write strobe.
    pub write_enable: Signal<In, bool>,
    _mem: Vec<D>,
    _collisions: u64,
}

impl<D: Synth> LaneRam<D> {
    /// A RAM of `depth` words, all zero.
    pub fn new(depth: usize) -> Self {
        Self::with_contents(depth, &[])
    }

    /// A RAM of `depth` words whose first words are `init` (a ROM when never written).
    pub fn with_contents(depth: usize, init: &[D]) -> Self {
        assert!(
            (1..=1 << ADDR_BITS).contains(&depth),
            "RAM depth {depth} out of range"
        );
        assert!(init.len() <= depth, "more initial words than the RAM holds");
        let mut mem = vec![D::default(); depth];
        mem[..init.len()].copy_from_slice(init);
        Self {
            clock: Default::default(),
            read_address: Default::default(),
            read_data: Default::default(),
            write_address: Default::default(),
            write_data: Default::default(),
            write_enable: Default::default(),
            _mem: mem,
            _collisions: 0,
        }
    }

    /// Depth in words.
    pub fn depth(&self) -> usize {
        self._mem.len()
    }

    /// The word at `address` in this simulation (zero beyond the depth), for tests that
    /// check what a block wrote and when.
    pub fn word(&self, address: usize) -> D {
        self._mem.get(address).copied().unwrap_or_default()
    }

    /// Clock edges so far (in this simulation) at which the read address was the address
    /// being written: what such a read returns is left open (see the module docs), so a block
    /// that uses its reads tests that this stays zero.
    pub fn collisions(&self) -> u64 {
        self._collisions
    }
}

impl<D: Synth> Logic for LaneRam<D> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            // Write first: a read of the address written this cycle returns the new word (the
            // Verilog returns the old one; see the module docs).
            if self.write_enable.val() {
                if self.write_address.val() == self.read_address.val() {
                    self._collisions += 1;
                }
                let wa = self.write_address.val().index();
                if let Some(w) = self._mem.get_mut(wa) {
                    *w = self.write_data.val();
                }
            }
            let ra = self.read_address.val().index();
            self.read_data.next = self._mem.get(ra).copied().unwrap_or_default();
        }
    }

    fn connect(&mut self) {
        self.read_data.connect();
    }

    fn hdl(&self) -> Verilog {
        let init: String = self
            ._mem
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != D::default())
            .map(|(i, v)| format!("   mem[{i}] = {};\n", v.verilog()))
            .collect();
        Verilog::Custom(format!(
            "\
(* no_rw_check *)
reg [{msb}:0] mem [0:{last}];
integer i;
initial begin
   for (i = 0; i <= {last}; i = i + 1) mem[i] = 0;
{init}`ifndef SYNTHESIS
   read_data = 0;
`endif
end

always @(posedge clock) begin
   read_data <= mem[read_address];
   if (write_enable) mem[write_address] <= write_data;
end
",
            msb = D::BITS - 1,
            last = self._mem.len() - 1,
        ))
    }

    fn timing(&self) -> Vec<TimingInfo> {
        vec![TimingInfo {
            name: "lane_ram".into(),
            clock: "clock".into(),
            inputs: vec![
                "read_address".into(),
                "write_address".into(),
                "write_data".into(),
                "write_enable".into(),
            ],
            outputs: vec!["read_data".into()],
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::tick;

    #[test]
    fn reads_back_what_was_written_one_cycle_later() {
        let mut ram = LaneRam::<Bits<8>>::with_contents(8, &[Bits::from(7)]);
        ram.connect_all();
        ram.write_address.next = 3.into();
        ram.write_data.next = 0x5a.into();
        ram.write_enable.next = true;
        ram.read_address.next = 0.into();
        tick(&mut ram, |r| &mut r.clock);
        assert_eq!(ram.read_data.val(), Bits::<8>::from(7));
        ram.write_enable.next = false;
        ram.read_address.next = 3.into();
        tick(&mut ram, |r| &mut r.clock);
        assert_eq!(ram.read_data.val(), Bits::<8>::from(0x5a));
        // Out-of-range addresses read zero and ignore writes instead of panicking.
        ram.read_address.next = 100.into();
        ram.write_address.next = 100.into();
        ram.write_enable.next = true;
        tick(&mut ram, |r| &mut r.clock);
        assert_eq!(ram.read_data.val(), Bits::<8>::from(0));
    }

    #[test]
    fn a_read_that_collides_with_a_write_is_left_open_to_synthesis() {
        let mut ram = LaneRam::<Bits<8>>::with_contents(4, &[Bits::from(1)]);
        ram.connect_all();
        ram.write_address.next = 0.into();
        ram.write_data.next = 9.into();
        ram.write_enable.next = true;
        ram.read_address.next = 0.into();
        tick(&mut ram, |r| &mut r.clock);
        assert_eq!(
            ram.read_data.val(),
            Bits::<8>::from(9),
            "the model writes first"
        );
        assert_eq!(ram.collisions(), 1);
        ram.read_address.next = 1.into();
        tick(&mut ram, |r| &mut r.clock);
        assert_eq!(ram.collisions(), 1, "other addresses do not count");
        match ram.hdl() {
            Verilog::Custom(v) => {
                assert!(v.contains("(* no_rw_check *)\nreg [7:0] mem [0:3];"), "{v}");
                assert!(v.contains("read_data <= mem[read_address];"), "{v}");
                // The power-up value is for simulators only (see the module docs).
                assert!(
                    v.contains("`ifndef SYNTHESIS\n   read_data = 0;\n`endif"),
                    "{v}"
                );
            }
            _ => panic!("LaneRam writes its own Verilog"),
        }
    }
}
