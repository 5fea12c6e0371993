//! `Requantizer`: turns a finished int32 sum into the layer's output, two cycles later.
//!
//! `byte = clamp((value * mult + round) >> shift, lo, 127)` with the product exact (48 bits),
//! `round = 2^(shift-1)` (0 for `shift = 0`), an arithmetic shift and `lo = 0` under ReLU,
//! else -128 (docs/protocol.md, "Requantization"). The raw value travels alongside with the
//! same latency, so int32 and int8 runs take the same number of cycles.
//!
//! The 48-bit arithmetic is beyond rust-hdl's 16-bit multiplier and fast bit vectors, so this
//! block is written directly: [`requantize`] is its simulation model and `hdl()` the same
//! function in Verilog.

use crate::config::ACC_BITS;
use rust_hdl::prelude::*;

/// Cycles from `in_valid` to `out_valid`.
pub const REQUANT_LATENCY: usize = 2;

/// The requantization function (simulation model of the block; see module docs).
pub fn requantize(value: i32, mult: u16, shift: u8, relu: bool) -> i8 {
    let shift = shift.min(31);
    let product = value as i64 * mult as i64;
    let round = if shift > 0 { 1i64 << (shift - 1) } else { 0 };
    let lo = if relu { 0 } else { -128 };
    ((product + round) >> shift).clamp(lo, 127) as i8
}

/// Two-stage requantizer for one lane.
#[derive(LogicBlock, Default)]
pub struct Requantizer {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// A value arrives this cycle.
    pub in_valid: Signal<In, bool>,
    /// The int32 sum.
    pub in_value: Signal<In, Bits<ACC_BITS>>,
    /// Its output address (passed through).
    pub in_addr: Signal<In, Bits<16>>,
    /// Multiplier (unsigned).
    pub mult: Signal<In, Bits<16>>,
    /// Right shift, 0..=31.
    pub shift: Signal<In, Bits<5>>,
    /// Clamp at zero instead of -128.
    pub relu: Signal<In, bool>,
    /// Output valid, `REQUANT_LATENCY` cycles after `in_valid`.
    pub out_valid: Signal<Out, bool>,
    /// The int32 value, delayed.
    pub out_raw: Signal<Out, Bits<ACC_BITS>>,
    /// The requantized int8.
    pub out_byte: Signal<Out, Bits<8>>,
    /// The address, delayed.
    pub out_addr: Signal<Out, Bits<16>>,
    _stage: (bool, u32, u16, i8),
}

impl Logic for Requantizer {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            let (valid, raw, addr, byte) = self._stage;
            self.out_valid.next = valid;
            self.out_raw.next = (raw as u64).into();
            self.out_addr.next = (addr as u64).into();
            self.out_byte.next = (byte as u8 as u64).into();
            let value = self.in_value.val().to_u64() as u32;
            self._stage = (
                self.in_valid.val(),
                value,
                self.in_addr.val().to_u64() as u16,
                requantize(
                    value as i32,
                    self.mult.val().to_u64() as u16,
                    self.shift.val().to_u64() as u8,
                    self.relu.val(),
                ),
            );
        }
    }

    fn connect(&mut self) {
        self.out_valid.connect();
        self.out_raw.connect();
        self.out_byte.connect();
        self.out_addr.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(
            "\
reg s_valid;
reg [31:0] s_raw;
reg [15:0] s_addr;
reg [7:0] s_byte;
wire signed [48:0] product = $signed(in_value) * $signed({1'b0, mult});
wire signed [48:0] round = (shift == 5'd0) ? 49'sd0 : (49'sd1 <<< (shift - 5'd1));
wire signed [48:0] scaled = (product + round) >>> shift;
wire signed [48:0] lo = relu ? 49'sd0 : -49'sd128;
wire [7:0] clamped = (scaled > 49'sd127) ? 8'd127 : (scaled < lo) ? lo[7:0] : scaled[7:0];
initial begin
   s_valid = 0; s_raw = 0; s_addr = 0; s_byte = 0;
   out_valid = 0; out_raw = 0; out_addr = 0; out_byte = 0;
end
always @(posedge clock) begin
   out_valid <= s_valid;
   out_raw <= s_raw;
   out_addr <= s_addr;
   out_byte <= s_byte;
   s_valid <= in_valid;
   s_raw <= in_value;
   s_addr <= in_addr;
   s_byte <= clamped;
end
"
            .into(),
        )
    }

    fn timing(&self) -> Vec<TimingInfo> {
        vec![TimingInfo {
            name: "requantizer".into(),
            clock: "clock".into(),
            inputs: vec![
                "in_valid".into(),
                "in_value".into(),
                "in_addr".into(),
                "mult".into(),
                "shift".into(),
                "relu".into(),
            ],
            outputs: vec![
                "out_valid".into(),
                "out_raw".into(),
                "out_byte".into(),
                "out_addr".into(),
            ],
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::tick;

    #[test]
    fn function_rounds_half_up_and_clamps() {
        assert_eq!(requantize(3, 1, 1, false), 2);
        assert_eq!(requantize(-3, 1, 1, false), -1);
        assert_eq!(requantize(i32::MIN, u16::MAX, 0, false), -128);
        assert_eq!(requantize(i32::MAX, u16::MAX, 31, false), 127);
        assert_eq!(requantize(-1000, 7, 3, true), 0);
        assert_eq!(requantize(100, 3, 2, true), 75);
    }

    #[test]
    fn block_has_two_cycles_latency() {
        let mut q = Requantizer::default();
        q.connect_all();
        q.mult.next = 3.into();
        q.shift.next = 2.into();
        q.in_valid.next = true;
        q.in_value.next = 100.into();
        q.in_addr.next = 9.into();
        tick(&mut q, |b| &mut b.clock);
        assert!(!q.out_valid.val());
        q.in_valid.next = false;
        tick(&mut q, |b| &mut b.clock);
        assert!(q.out_valid.val());
        assert_eq!(q.out_byte.val(), Bits::<8>::from(75));
        assert_eq!(q.out_raw.val(), Bits::<32>::from(100));
        assert_eq!(q.out_addr.val(), Bits::<16>::from(9));
        tick(&mut q, |b| &mut b.clock);
        assert!(!q.out_valid.val());
    }
}
