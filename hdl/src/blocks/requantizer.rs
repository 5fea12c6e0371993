//! `Requantizer`: turns a finished int32 sum into the layer's int8 output, two cycles later.
//!
//! `byte = clamp((value * mult + round) >> shift, lo, 127)` with the product exact (48 bits),
//! `round = 2^(shift-1)` (0 for `shift = 0`), an arithmetic shift and `lo = 0` under ReLU,
//! else -128 (docs/protocol.md, "Requantization"). Only the byte and its address go through
//! the block: the core writes int32 results into their memory straight from the accumulator
//! lane, two cycles sooner, so no 32-bit copy of the value travels beside the arithmetic.
//!
//! The 48-bit arithmetic is beyond rust-hdl's 16-bit multiplier and fast bit vectors, so this
//! block is written directly: [`requantize`] is its simulation model and `hdl()` the same
//! function in Verilog, split over three steps as [`requantize_staged`] shows (and its test
//! proves equal), so that no cycle holds more than one multiplier, one carry chain or one
//! comparison:
//!
//! 1. the two partial products ([`partial_products`]), one block multiplier each, and the
//!    negated clamp thresholds (functions of the shift alone), into registers. The value comes
//!    in as the accumulator lane holds it: its high half without the low half's carry
//!    (`in_high`, signed), that carry (`in_carry`) and the low half (`in_low`). The high
//!    product is `in_high * mult` and the low one `{in_carry, low} * mult`
//!    (17 x 16 bits, unsigned), so both multipliers take their operands straight from the
//!    lane's registers, with no carry select in front of them;
//! 2. the product (one carry chain for the sum), and the product shifted right by the shift's
//!    two low bits (a 4-way select after the chain), the 37 bits of it that hold the byte for
//!    any shift, into registers;
//! 3. (no register) the two clamp decisions, each the sign of `product + negated threshold`
//!    (one carry chain each, from the registered product), beside the nine bits the byte is
//!    made of (bits `shift + 7 ..= shift - 1` of the product: an 8-way select by the shift's
//!    three high bits) and the byte rounded from them; then the byte or its clamp. The
//!    thresholds are read from step 1's registers: they are functions of the shift and ReLU
//!    alone, which hold for the whole run. The outputs leave this
//!    step unregistered, for the memory's write port to register: the result is written at
//!    the same clock edge as when the block had two stages and registered outputs, so the
//!    run takes the same cycles.

use rust_hdl::prelude::*;

/// Cycles from `in_valid` to `out_valid` (the outputs are driven by the second stage's
/// registers, and written by the memory at the end of that cycle).
pub const REQUANT_LATENCY: usize = 2;

/// The requantization function (simulation model of the block; see module docs).
pub fn requantize(value: i32, mult: u16, shift: u8, relu: bool) -> i8 {
    requantize_exact(value as i64, mult, shift, relu)
}

/// [`requantize`] of any value the block's inputs can express ([`SplitValue::value`]: the
/// int32 range and one value past it).
pub fn requantize_exact(value: i64, mult: u16, shift: u8, relu: bool) -> i8 {
    let shift = shift.min(31);
    let product = value * mult as i64;
    let round = if shift > 0 { 1i64 << (shift - 1) } else { 0 };
    let lo = if relu { 0 } else { -128 };
    ((product + round) >> shift).clamp(lo, 127) as i8
}

/// A value as the accumulator lane holds it: `(high, carry, low)` with
/// `value = high * 2^16 + carry * 2^16 + low`, `high` signed and `low` unsigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitValue {
    /// High half without the low half's carry (signed).
    pub high: i16,
    /// The low half's carry into the high half.
    pub carry: bool,
    /// Low half (unsigned).
    pub low: u16,
}

impl SplitValue {
    /// `value` split with the given carry: `high = (value >> 16) - carry`. `None` when that
    /// does not fit 16 bits (`carry` with `value < -2^31 + 2^16`).
    pub fn new(value: i32, carry: bool) -> Option<SplitValue> {
        let high = (value >> 16) as i16;
        let high = if carry { high.checked_sub(1)? } else { high };
        Some(SplitValue {
            high,
            carry,
            low: value as u16,
        })
    }

    /// The exact value, `high * 2^16 + carry * 2^16 + low` (one more than `i32::MAX` can
    /// hold only for `high = i16::MAX` with the carry, which no run reaches: see
    /// [`Requantizer`]).
    pub fn value(self) -> i64 {
        ((self.high as i64) << 16) + ((self.carry as i64) << 16) + self.low as i64
    }
}

/// Step 1 of the Verilog: `(low, high)` with `low = {carry, low} * mult` (unsigned, 33 bits)
/// and `high = high * mult` (signed, fits 32 bits), so that `value * mult = high * 2^16 + low`.
pub fn partial_products(v: SplitValue, mult: u16) -> (u64, i32) {
    let low = ((v.carry as u64) << 16 | v.low as u64) * mult as u64;
    let high = v.high as i32 * mult as i32;
    (low, high)
}

/// Step 1's thresholds, negated: `(-t_hi, -t_lo)`. The result clamps to 127 when
/// `product >= t_hi` and to the low bound when `product < t_lo`.
pub fn negated_thresholds(shift: u8, relu: bool) -> (i64, i64) {
    let shift = shift.min(31);
    let round = if shift > 0 { 1i64 << (shift - 1) } else { 0 };
    let lo: i64 = if relu { 0 } else { -128 };
    // (p + round) >> s > 127  <=>  p >= 128 * 2^s - round;  (p + round) >> s < lo  <=>
    // p < lo * 2^s - round.
    (round - (128i64 << shift), round - (lo << shift))
}

/// Bits of the product step 2 keeps: the byte's nine bits start at bit `4 * (shift / 4)`
/// of them, at most 28.
pub const STAGE2_BITS: u32 = 37;

/// Step 2 of the Verilog: `(part, product)`. `part` holds bits `36 + s ..= s - 1` of the
/// product for `s = shift % 4` (bit 0 is 0 for `s = 0`).
pub fn requantize_stage2(low: u64, high: i32, shift: u8) -> (u64, i64) {
    let shift = shift.min(31);
    let product = ((high as i64) << 16) + low as i64;
    (
        (((product << 1) >> (shift % 4)) as u64) & ((1 << STAGE2_BITS) - 1),
        product,
    )
}

/// Step 3 of the Verilog: the clamp decisions (`product >= t_hi`, `product < t_lo`), the
/// window (bits `shift + 7 ..= shift - 1` of the product, from `part` at bit
/// `4 * (shift / 4)`), the byte rounded from it (its bits 8..=1 plus its bit 0, the
/// product's bit `shift - 1`), or clamped.
pub fn requantize_stage3(
    part: u64,
    product: i64,
    neg_t_hi: i64,
    neg_t_lo: i64,
    shift: u8,
    relu: bool,
) -> i8 {
    let clamp_hi = product + neg_t_hi >= 0;
    let clamp_lo = product + neg_t_lo < 0;
    let window = ((part >> (shift.min(31) / 4 * 4)) & 0x1FF) as u16;
    let body = (window >> 1) as u8;
    let round_bit = (window & 1) as u8;
    if clamp_hi {
        127
    } else if clamp_lo {
        if relu {
            0
        } else {
            -128
        }
    } else {
        body.wrapping_add(round_bit) as i8
    }
}

/// [`requantize`] of `v.value()` computed as the Verilog does, over its three steps.
pub fn requantize_staged(v: SplitValue, mult: u16, shift: u8, relu: bool) -> i8 {
    let (low, high) = partial_products(v, mult);
    let (neg_t_hi, neg_t_lo) = negated_thresholds(shift, relu);
    let (part, product) = requantize_stage2(low, high, shift);
    requantize_stage3(part, product, neg_t_hi, neg_t_lo, shift, relu)
}

/// Requantizer for one lane: two register stages, outputs straight from the second.
///
/// It requantizes `in_high * 2^16 + in_carry * 2^16 + low` exactly ([`SplitValue::value`]),
/// which is the lane's int32 sum except for `in_high = i16::MAX` with the carry, where the
/// lane's 16-bit high half wraps. No run gets there: a sum is at most `128 * K` in
/// magnitude, and `K` at most the weight memory's depth (<= 65536), so below 2^23.
#[derive(LogicBlock, Default)]
pub struct Requantizer {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// A value arrives this cycle.
    pub in_valid: Signal<In, bool>,
    /// The int32 sum's low half (unsigned).
    pub in_low: Signal<In, Bits<16>>,
    /// The sum's high half without the low half's carry (signed): `in_high + in_carry` is
    /// the sum's high half.
    pub in_high: Signal<In, Bits<16>>,
    /// The low half's carry into the high half.
    pub in_carry: Signal<In, bool>,
    /// Its output address (passed through).
    pub in_addr: Signal<In, Bits<16>>,
    /// Multiplier (unsigned). Held for the whole run.
    pub mult: Signal<In, Bits<16>>,
    /// Right shift, 0..=31. Held for the whole run.
    pub shift: Signal<In, Bits<5>>,
    /// Clamp at zero instead of -128. Held for the whole run.
    pub relu: Signal<In, bool>,
    /// Output valid, `REQUANT_LATENCY` cycles after `in_valid` (unregistered: for a memory's
    /// write enable).
    pub out_valid: Signal<Out, bool>,
    /// The requantized int8 (unregistered).
    pub out_byte: Signal<Out, Bits<8>>,
    /// The address, delayed (unregistered).
    pub out_addr: Signal<Out, Bits<16>>,
    // Simulation state: stage 1 and stage 2, as the Verilog's registers.
    _q: Stage1,
    _s: Stage2,
}

/// The registers of step 1 (simulation model).
#[derive(Clone, Copy, Default)]
struct Stage1 {
    valid: bool,
    addr: u16,
    low: u64,
    high: i32,
    neg_t_hi: i64,
    neg_t_lo: i64,
    shift: u8,
    relu: bool,
}

/// The registers of step 2 (simulation model), with the byte step 3 makes of them: step 3
/// reads nothing else, so the model computes it once per edge.
#[derive(Clone, Copy, Default)]
struct Stage2 {
    valid: bool,
    addr: u16,
    byte: i8,
}

impl Logic for Requantizer {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            let q = self._q;
            let (part, product) = requantize_stage2(q.low, q.high, q.shift);
            self._s = Stage2 {
                valid: q.valid,
                addr: q.addr,
                byte: requantize_stage3(part, product, q.neg_t_hi, q.neg_t_lo, q.shift, q.relu),
            };
            let split = SplitValue {
                high: self.in_high.val().to_u64() as u16 as i16,
                carry: self.in_carry.val(),
                low: self.in_low.val().to_u64() as u16,
            };
            let (low, high) = partial_products(split, self.mult.val().to_u64() as u16);
            let shift = self.shift.val().to_u64() as u8;
            let relu = self.relu.val();
            let (neg_t_hi, neg_t_lo) = negated_thresholds(shift, relu);
            self._q = Stage1 {
                valid: self.in_valid.val(),
                addr: self.in_addr.val().to_u64() as u16,
                low,
                high,
                neg_t_hi,
                neg_t_lo,
                shift,
                relu,
            };
            // The outputs change only here (they are the stage-2 registers and step 3).
            let s = self._s;
            self.out_valid.next = s.valid;
            self.out_addr.next = (s.addr as u64).into();
            self.out_byte.next = (s.byte as u8 as u64).into();
        }
    }

    fn connect(&mut self) {
        self.out_valid.connect();
        self.out_byte.connect();
        self.out_addr.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(
            "\
reg q_valid;
reg [15:0] q_addr;
reg [32:0] q_low;
reg signed [31:0] q_high;
reg signed [48:0] q_neg_t_hi;
reg signed [48:0] q_neg_t_lo;
reg [4:0] q_shift;
reg q_relu;
reg s_valid;
reg [15:0] s_addr;
reg [36:0] s_part;
reg [2:0] s_coarse;
reg [47:0] s_product;
reg s_relu;
// Step 1: the partial products, one block multiplier each, from the lane's registers (the
// low half with its carry, 17 x 16 unsigned; the high half without it, signed); the
// thresholds, negated.
wire [32:0] low_product = {in_carry, in_low} * mult;
wire signed [31:0] high_product = $signed(in_high) * $signed({1'b0, mult});
wire signed [48:0] round = (shift == 5'd0) ? 49'sd0 : (49'sd1 <<< (shift - 5'd1));
wire signed [48:0] neg_t_hi = round - (49'sd128 <<< shift);
wire signed [48:0] neg_t_lo = relu ? round : round + (49'sd128 <<< shift);
// Step 2: the product (its carry chain), and the product shifted by the shift's two low bits
// (a 4-way select).
wire [47:0] product = {q_high, 16'd0} + {15'd0, q_low};
wire [48:0] shifted = {product, 1'b0} >> q_shift[1:0];
// Step 3: the product's bits shift + 7 ..= shift - 1 (an 8-way select by the shift's high
// bits), the byte rounded from them, or clamped.
wire [36:0] window_wide = s_part >> {s_coarse, 2'd0};
wire [8:0] window = window_wide[8:0];
wire [7:0] body = window[8:1] + {7'd0, window[0]};
// The clamp decisions: the signs of product - t_hi and product - t_lo (49 bits:
// |product| < 2^47, |t| <= 2^38), one carry chain each. The thresholds are step 1's registers
// (functions of the shift and ReLU, which hold for the whole run).
wire [48:0] product_x = {s_product[47], s_product};
wire [48:0] hi_diff = product_x + q_neg_t_hi;
wire [48:0] lo_diff = product_x + q_neg_t_lo;
wire clamp_hi = ~hi_diff[48];
wire clamp_lo = lo_diff[48];
wire [7:0] clamped = clamp_hi ? 8'd127 : clamp_lo ? (s_relu ? 8'd0 : 8'h80) : body;
initial begin
   q_valid = 0; q_addr = 0; q_low = 0; q_high = 0; q_neg_t_hi = 0; q_neg_t_lo = 0;
   q_shift = 0; q_relu = 0;
   s_valid = 0; s_addr = 0; s_part = 0; s_coarse = 0; s_product = 0;
   s_relu = 0;
end
always @(*) begin
   out_valid = s_valid;
   out_addr = s_addr;
   out_byte = clamped;
end
always @(posedge clock) begin
   s_valid <= q_valid;
   s_addr <= q_addr;
   s_part <= shifted[36:0];
   s_coarse <= q_shift[4:2];
   s_product <= product;
   s_relu <= q_relu;
   q_valid <= in_valid;
   q_addr <= in_addr;
   q_low <= low_product;
   q_high <= high_product;
   q_neg_t_hi <= neg_t_hi;
   q_neg_t_lo <= neg_t_lo;
   q_shift <= shift;
   q_relu <= relu;
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
                "in_low".into(),
                "in_high".into(),
                "in_carry".into(),
                "in_addr".into(),
                "mult".into(),
                "shift".into(),
                "relu".into(),
            ],
            outputs: vec!["out_valid".into(), "out_byte".into(), "out_addr".into()],
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::tick;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = i32> {
        prop_oneof![
            any::<i32>(),
            -70_000i32..70_000,
            Just(i32::MIN),
            Just(i32::MAX),
            Just(0),
        ]
    }

    fn multiplier() -> impl Strategy<Value = u16> {
        prop_oneof![any::<u16>(), Just(0), Just(1), Just(u16::MAX)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// The Verilog's three-step arithmetic equals the function, with the value split
        /// either way and shifts out of range included.
        #[test]
        fn staged_equals_the_function(v in value(), carry in any::<bool>(), m in multiplier(), s in 0u8..=40, relu in any::<bool>()) {
            let split = SplitValue::new(v, carry).unwrap_or(SplitValue::new(v, false).unwrap());
            prop_assert_eq!(split.value(), v as i64);
            prop_assert_eq!(requantize_staged(split, m, s, relu), requantize(v, m, s, relu));
        }

        /// Every split the inputs can express, the one past `i32::MAX` included.
        #[test]
        fn staged_equals_the_exact_function(high in any::<i16>(), carry in any::<bool>(), low in any::<u16>(), m in multiplier(), s in 0u8..=40, relu in any::<bool>()) {
            let split = SplitValue { high, carry, low };
            prop_assert_eq!(requantize_staged(split, m, s, relu), requantize_exact(split.value(), m, s, relu));
        }

        /// The partial products are exact in their widths and sum to the whole product.
        #[test]
        fn partial_products_sum_to_the_product(high in any::<i16>(), carry in any::<bool>(), low in any::<u16>(), m in multiplier()) {
            let split = SplitValue { high, carry, low };
            let (low, high) = partial_products(split, m);
            prop_assert!(low < 1 << 33);
            prop_assert_eq!(((high as i64) << 16) + low as i64, split.value() * m as i64);
        }
    }

    #[test]
    fn staged_equals_the_function_at_every_threshold() {
        // The values on both sides of every clamp and rounding boundary, for every shift.
        for shift in 0u8..=31 {
            for relu in [false, true] {
                for mult in [1u16, 3, 255, 32768, u16::MAX] {
                    let (neg_hi, neg_lo) = negated_thresholds(shift, relu);
                    let (hi, lo) = (-neg_hi, -neg_lo);
                    let step = 1i64 << shift;
                    for target in [hi, lo, hi - step / 2, lo + step / 2, 0] {
                        let centre = target / mult as i64;
                        for v in centre - 2..=centre + 2 {
                            let v = v.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
                            for carry in [false, true] {
                                let Some(split) = SplitValue::new(v, carry) else {
                                    continue;
                                };
                                assert_eq!(
                                    requantize_staged(split, mult, shift, relu),
                                    requantize(v, mult, shift, relu),
                                    "{v} * {mult} >> {shift}, relu {relu}, carry {carry}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn partial_products_are_exact_at_the_extremes() {
        for v in [
            i32::MIN,
            i32::MIN + 1,
            -65536,
            -65535,
            -1,
            0,
            1,
            65535,
            65536,
            i32::MAX,
        ] {
            for m in [0u16, 1, 2, 32768, u16::MAX] {
                for carry in [false, true] {
                    let Some(split) = SplitValue::new(v, carry) else {
                        assert!(carry && v >> 16 == -32768, "{v}");
                        continue;
                    };
                    let (low, high) = partial_products(split, m);
                    assert_eq!(
                        ((high as i64) << 16) + low as i64,
                        v as i64 * m as i64,
                        "{v} * {m}, carry {carry}"
                    );
                    assert_eq!(
                        high as i64,
                        ((v as i64 >> 16) - carry as i64) * m as i64,
                        "{v} * {m}: high"
                    );
                }
            }
        }
    }

    #[test]
    fn function_rounds_half_up_and_clamps() {
        assert_eq!(requantize(3, 1, 1, false), 2);
        assert_eq!(requantize(-3, 1, 1, false), -1);
        assert_eq!(requantize(i32::MIN, u16::MAX, 0, false), -128);
        assert_eq!(requantize(i32::MAX, u16::MAX, 31, false), 127);
        assert_eq!(requantize(-1000, 7, 3, true), 0);
        assert_eq!(requantize(100, 3, 2, true), 75);
        // One past i32::MAX (the split `i16::MAX` with the carry) clamps high.
        assert_eq!(requantize_exact(1 << 31, 1, 24, false), 127);
        assert_eq!(requantize_exact(1 << 31, 1, 25, false), 64);
    }

    #[test]
    fn block_has_two_cycles_latency() {
        let mut q = Requantizer::default();
        q.connect_all();
        q.mult.next = 3.into();
        q.shift.next = 2.into();
        q.in_valid.next = true;
        // 100 as the lane would hold it with a carry: high half -1, carry, low half 100.
        q.in_low.next = 100.into();
        q.in_high.next = 0xFFFF.into();
        q.in_carry.next = true;
        q.in_addr.next = 9.into();
        tick(&mut q, |b| &mut b.clock);
        assert!(!q.out_valid.val());
        q.in_valid.next = false;
        tick(&mut q, |b| &mut b.clock);
        assert!(q.out_valid.val());
        assert_eq!(q.out_byte.val(), Bits::<8>::from(75));
        assert_eq!(q.out_addr.val(), Bits::<16>::from(9));
        tick(&mut q, |b| &mut b.clock);
        assert!(!q.out_valid.val());
    }
}
