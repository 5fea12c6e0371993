//! PLL parameters and the vendor PLL primitives wrapped as rust-hdl black boxes.
//!
//! [`ice40_pll`] searches the iCE40 `SB_PLL40` dividers the way `icepll` does, and
//! [`ecp5_pll`] the ECP5 `EHXPLLL` dividers the way `ecppll` does. [`Pll`] is the black box:
//! in simulation it passes the oscillator through (and is always locked); in Verilog it
//! instantiates the primitive with the computed parameters.

use rust_hdl::prelude::*;

/// Dividers of an iCE40 PLL in SIMPLE feedback mode:
/// `f_out = f_in * (divf + 1) / ((divr + 1) * 2^divq)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ice40PllParams {
    /// Reference divider, 0..=15.
    pub divr: u8,
    /// Feedback divider, 0..=127.
    pub divf: u8,
    /// Output divider (power of two), 1..=6.
    pub divq: u8,
    /// Loop filter range, from the phase detector frequency.
    pub filter_range: u8,
    /// Output frequency in Hz.
    pub f_out: u64,
}

/// Dividers of an ECP5 `EHXPLLL` with CLKOP feedback:
/// `f_out = f_in * clkfb_div / clki_div`, `f_vco = f_out * clkop_div`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecp5PllParams {
    /// Input divider, 1..=128.
    pub clki_div: u32,
    /// Feedback divider, 1..=80.
    pub clkfb_div: u32,
    /// Output divider, 1..=128.
    pub clkop_div: u32,
    /// Output frequency in Hz.
    pub f_out: u64,
}

impl Ecp5PllParams {
    /// Coarse phase of CLKOP for a 0 degree output (as `ecppll` writes it).
    pub fn clkop_cphase(&self) -> u32 {
        (self.clkop_div - 1) / 2
    }
}

/// The iCE40 PLL dividers whose output is closest to `target_hz` from `f_in_hz`, within the
/// datasheet limits (phase detector 10-133 MHz, VCO 533-1066 MHz, output 16-275 MHz).
pub fn ice40_pll(f_in_hz: u64, target_hz: u64) -> Result<Ice40PllParams, String> {
    if !(10_000_000..=133_000_000).contains(&f_in_hz) {
        return Err(format!(
            "iCE40 PLL input {} MHz is outside 10-133 MHz",
            mhz(f_in_hz)
        ));
    }
    if !(16_000_000..=275_000_000).contains(&target_hz) {
        return Err(format!(
            "iCE40 PLL output {} MHz is outside 16-275 MHz",
            mhz(target_hz)
        ));
    }
    let mut best: Option<Ice40PllParams> = None;
    for divr in 0u8..=15 {
        let f_pfd = f_in_hz as f64 / (divr as f64 + 1.0);
        if !(10e6..=133e6).contains(&f_pfd) {
            continue;
        }
        for divf in 0u8..=127 {
            let f_vco = f_pfd * (divf as f64 + 1.0);
            if !(533e6..=1066e6).contains(&f_vco) {
                continue;
            }
            for divq in 1u8..=6 {
                let f_out = (f_vco / (1u64 << divq) as f64).round() as u64;
                let better = match &best {
                    None => true,
                    Some(b) => f_out.abs_diff(target_hz) < b.f_out.abs_diff(target_hz),
                };
                if better {
                    best = Some(Ice40PllParams {
                        divr,
                        divf,
                        divq,
                        filter_range: filter_range(f_pfd),
                        f_out,
                    });
                }
            }
        }
    }
    best.ok_or_else(|| format!("no iCE40 PLL setting reaches {} MHz", mhz(target_hz)))
}

fn filter_range(f_pfd: f64) -> u8 {
    match f_pfd {
        f if f < 17e6 => 1,
        f if f < 26e6 => 2,
        f if f < 44e6 => 3,
        f if f < 66e6 => 4,
        f if f < 101e6 => 5,
        _ => 6,
    }
}

/// The ECP5 PLL dividers whose output is closest to `target_hz` from `f_in_hz`, within the
/// datasheet limits (phase detector 3.125-400 MHz, VCO 400-800 MHz); among equally close
/// settings, the one whose VCO is nearest 600 MHz.
pub fn ecp5_pll(f_in_hz: u64, target_hz: u64) -> Result<Ecp5PllParams, String> {
    if !(8_000_000..=400_000_000).contains(&f_in_hz) {
        return Err(format!(
            "ECP5 PLL input {} MHz is outside 8-400 MHz",
            mhz(f_in_hz)
        ));
    }
    if !(3_125_000..=400_000_000).contains(&target_hz) {
        return Err(format!(
            "ECP5 PLL output {} MHz is outside 3.125-400 MHz",
            mhz(target_hz)
        ));
    }
    let mut best: Option<(u64, u64, Ecp5PllParams)> = None;
    for clki_div in 1u32..=128 {
        let f_pfd = f_in_hz as f64 / clki_div as f64;
        if !(3.125e6..=400e6).contains(&f_pfd) {
            continue;
        }
        for clkfb_div in 1u32..=80 {
            let f_out = f_pfd * clkfb_div as f64;
            for clkop_div in 1u32..=128 {
                let f_vco = f_out * clkop_div as f64;
                if !(400e6..=800e6).contains(&f_vco) {
                    continue;
                }
                let out = f_out.round() as u64;
                let key = (out.abs_diff(target_hz), (f_vco - 600e6).abs() as u64);
                if best.as_ref().is_none_or(|b| key < (b.0, b.1)) {
                    best = Some((
                        key.0,
                        key.1,
                        Ecp5PllParams {
                            clki_div,
                            clkfb_div,
                            clkop_div,
                            f_out: out,
                        },
                    ));
                }
            }
        }
    }
    best.map(|b| b.2)
        .ok_or_else(|| format!("no ECP5 PLL setting reaches {} MHz", mhz(target_hz)))
}

fn mhz(hz: u64) -> String {
    format!("{:.3}", hz as f64 / 1e6)
}

/// Which primitive a [`Pll`] instantiates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PllKind {
    /// `SB_PLL40_PAD`: the input is the PLL's own package pin.
    Ice40Pad(Ice40PllParams),
    /// `SB_PLL40_CORE`: the input comes through the fabric.
    Ice40Core(Ice40PllParams),
    /// `EHXPLLL`.
    Ecp5(Ecp5PllParams),
}

impl PllKind {
    /// The output frequency in Hz.
    pub fn f_out(&self) -> u64 {
        match self {
            PllKind::Ice40Pad(p) | PllKind::Ice40Core(p) => p.f_out,
            PllKind::Ecp5(p) => p.f_out,
        }
    }
}

/// A vendor PLL as a black box: `clock_out` from `clock_in`, and `locked`.
#[derive(LogicBlock)]
pub struct Pll {
    /// Oscillator.
    pub clock_in: Signal<In, Clock>,
    /// Design clock.
    pub clock_out: Signal<Out, Clock>,
    /// High once the output is stable.
    pub locked: Signal<Out, bool>,
    _kind: PllKind,
}

impl Pll {
    /// A PLL of the given kind and parameters.
    pub fn new(kind: PllKind) -> Pll {
        Pll {
            clock_in: Default::default(),
            clock_out: Default::default(),
            locked: Default::default(),
            _kind: kind,
        }
    }

    /// The primitive instance, connecting `clock_in`, `clock_out` and `locked`.
    pub fn instance(&self) -> String {
        match self._kind {
            PllKind::Ice40Pad(p) => ice40_instance("SB_PLL40_PAD", "PACKAGEPIN", &p),
            PllKind::Ice40Core(p) => ice40_instance("SB_PLL40_CORE", "REFERENCECLK", &p),
            PllKind::Ecp5(p) => format!(
                "\
(* FREQUENCY_PIN_CLKOP=\"{out}\" *)
(* ICP_CURRENT=\"12\" *) (* LPF_RESISTOR=\"8\" *) (* MFG_ENABLE_FILTEROPAMP=\"1\" *) (* MFG_GMCREF_SEL=\"2\" *)
EHXPLLL #(
    .PLLRST_ENA(\"DISABLED\"), .INTFB_WAKE(\"DISABLED\"), .STDBY_ENABLE(\"DISABLED\"),
    .DPHASE_SOURCE(\"DISABLED\"), .OUTDIVIDER_MUXA(\"DIVA\"), .OUTDIVIDER_MUXB(\"DIVB\"),
    .OUTDIVIDER_MUXC(\"DIVC\"), .OUTDIVIDER_MUXD(\"DIVD\"),
    .CLKI_DIV({clki}), .CLKOP_ENABLE(\"ENABLED\"), .CLKOP_DIV({op}), .CLKOP_CPHASE({cphase}),
    .CLKOP_FPHASE(0), .FEEDBK_PATH(\"CLKOP\"), .CLKFB_DIV({fb})
) pll_i (
    .RST(1'b0), .STDBY(1'b0), .CLKI(clock_in), .CLKOP(clock_out), .CLKFB(clock_out),
    .CLKINTFB(), .PHASESEL0(1'b0), .PHASESEL1(1'b0), .PHASEDIR(1'b1), .PHASESTEP(1'b1),
    .PHASELOADREG(1'b1), .PLLWAKESYNC(1'b0), .ENCLKOP(1'b0), .LOCK(locked)
);
",
                out = p.f_out as f64 / 1e6,
                clki = p.clki_div,
                op = p.clkop_div,
                cphase = p.clkop_cphase(),
                fb = p.clkfb_div,
            ),
        }
    }
}

fn ice40_instance(primitive: &str, input: &str, p: &Ice40PllParams) -> String {
    format!(
        "\
{primitive} #(
    .FEEDBACK_PATH(\"SIMPLE\"),
    .DIVR(4'd{divr}), .DIVF(7'd{divf}), .DIVQ(3'd{divq}), .FILTER_RANGE(3'd{fr})
) pll_i (
    .{input}(clock_in), .PLLOUTGLOBAL(clock_out), .LOCK(locked),
    .RESETB(1'b1), .BYPASS(1'b0)
);
",
        divr = p.divr,
        divf = p.divf,
        divq = p.divq,
        fr = p.filter_range,
    )
}

impl Logic for Pll {
    fn update(&mut self) {
        self.clock_out.next = self.clock_in.val();
        self.locked.next = true;
    }

    fn connect(&mut self) {
        self.clock_out.connect();
        self.locked.connect();
    }

    fn hdl(&self) -> Verilog {
        // The primitives are in yosys' cell libraries (synth_ice40, synth_ecp5 read them).
        Verilog::Wrapper(Wrapper {
            code: self.instance(),
            cores: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice40_48_mhz_from_12_matches_icepll() {
        // icepll -i 12 -o 48: DIVR 0, DIVF 63, DIVQ 4, FILTER_RANGE 1.
        let p = ice40_pll(12_000_000, 48_000_000).unwrap();
        assert_eq!((p.divr, p.divf, p.divq, p.filter_range), (0, 63, 4, 1));
        assert_eq!(p.f_out, 48_000_000);
        assert!(ice40_pll(12_000_000, 300_000_000).is_err());
        assert!(ice40_pll(1_000_000, 48_000_000).is_err());
        // Not every frequency is reachable exactly: the closest one is chosen.
        let p = ice40_pll(12_000_000, 50_000_000).unwrap();
        assert!(p.f_out.abs_diff(50_000_000) <= 250_000, "{p:?}");
    }

    #[test]
    fn ecp5_125_mhz_from_25_matches_ecppll() {
        // ecppll -i 25 -o 125: CLKI_DIV 1, CLKFB_DIV 5, CLKOP_DIV 5, CLKOP_CPHASE 2.
        let p = ecp5_pll(25_000_000, 125_000_000).unwrap();
        assert_eq!((p.clki_div, p.clkfb_div, p.clkop_div), (1, 5, 5));
        assert_eq!(p.clkop_cphase(), 2);
        assert_eq!(p.f_out, 125_000_000);
        let p = ecp5_pll(48_000_000, 125_000_000).unwrap();
        assert!(p.f_out.abs_diff(125_000_000) <= 200_000, "{p:?}");
        let vco = p.f_out * p.clkop_div as u64;
        assert!((400_000_000..=800_000_000).contains(&vco));
        assert!(ecp5_pll(25_000_000, 500_000_000).is_err());
    }

    #[test]
    fn black_box_passes_the_clock_in_simulation_and_instantiates_the_primitive() {
        let p = ice40_pll(12_000_000, 48_000_000).unwrap();
        let mut pll = Pll::new(PllKind::Ice40Pad(p));
        pll.connect_all();
        pll.clock_in.next = true.into();
        assert!(simulate(&mut pll, 100));
        assert!(pll.clock_out.val().clk && pll.locked.val());
        let v = pll.instance();
        assert!(
            v.contains("SB_PLL40_PAD") && v.contains(".DIVF(7'd63)"),
            "{v}"
        );
        let e = Pll::new(PllKind::Ecp5(ecp5_pll(25_000_000, 125_000_000).unwrap()));
        assert!(e.instance().contains(".CLKFB_DIV(5)"));
    }
}
