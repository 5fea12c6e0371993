//! One small definition per board: FPGA part, package, speed grade, oscillator, pins of the
//! UART, LEDs and reset button, the design clock and the memory sizes that fit the chip.
//!
//! Adding a board is adding one [`Board`] to [`BOARDS`]. The constraint file (`.pcf` for
//! iCE40, `.lpf` for ECP5) is written from the definition by [`crate::constraints`].

use std::fmt;
use trimac_hdl::Config;

/// FPGA family: decides the synthesis script, the place-and-route tool, the packer and the
/// PLL primitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Lattice iCE40 (yosys `synth_ice40`, nextpnr-ice40, icepack, SB_PLL40).
    Ice40,
    /// Lattice ECP5 (yosys `synth_ecp5`, nextpnr-ecp5, ecppack, EHXPLLL).
    Ecp5,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ice40 => "iCE40",
            Family::Ecp5 => "ECP5",
        })
    }
}

/// How the oscillator reaches the PLL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PllInput {
    /// iCE40: the oscillator pin is the PLL's own pad (`SB_PLL40_PAD`).
    Ice40Pad,
    /// iCE40: the oscillator comes through the fabric (`SB_PLL40_CORE`).
    Ice40Core,
    /// ECP5: `EHXPLLL` fed from the oscillator pin.
    Ecp5,
}

/// A package pin and, for ECP5, its I/O attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pin {
    /// Port name in the board's top module (`clk_osc`, `uart_rx`, `led_g`, ...).
    pub port: &'static str,
    /// Package pin (`35`, `G2`, ...).
    pub site: &'static str,
    /// ECP5 `IOBUF` attributes (`IO_TYPE=LVCMOS33 PULLMODE=DOWN`); ignored on iCE40.
    pub attrs: &'static str,
}

/// A status LED: which pin and which status it shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Led {
    /// The pin.
    pub pin: Pin,
    /// What it shows.
    pub shows: Status,
}

/// What a status LED shows (bit index in the board top's `leds` bus).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Blinks about twice a second while the design clock runs.
    Heartbeat = 0,
    /// Lit for a moment after each received byte.
    Rx = 1,
    /// Lit for a moment after each sent byte.
    Tx = 2,
    /// Lit for a moment after a byte was lost (bad stop bit or overrun).
    Error = 3,
    /// Lit while the design is held in reset (button pressed or PLL not locked).
    Reset = 4,
    /// Lit for a moment after any byte, either way.
    Activity = 5,
}

/// How a bitstream reaches the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Programmer {
    /// openFPGALoader with `-b <board>`.
    OpenFpgaLoader {
        /// openFPGALoader's board name.
        board: &'static str,
    },
    /// openFPGALoader with a cable (`-c <cable>`) for boards it has no name for.
    OpenFpgaLoaderCable {
        /// openFPGALoader's cable name.
        cable: &'static str,
    },
    /// The board's USB DFU bootloader (`dfu-util -D`), e.g. the OrangeCrab's.
    DfuUtil {
        /// `vendor:product` of the bootloader.
        usb_id: &'static str,
    },
}

/// Resources of the FPGA part, for utilization reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    /// 4-input look-up tables (iCE40 logic cells / ECP5 LUT4s).
    pub luts: usize,
    /// Flip-flops.
    pub ffs: usize,
    /// Block RAMs (iCE40 EBR of 4 kbit, ECP5 DP16KD of 18 kbit).
    pub brams: usize,
    /// iCE40 single-port RAMs (256 kbit each); 0 on ECP5.
    pub sprams: usize,
    /// Multipliers (iCE40 SB_MAC16, ECP5 MULT18X18D).
    pub dsps: usize,
}

/// One board.
#[derive(Clone, Debug, PartialEq)]
pub struct Board {
    /// Name on the command line (`icebreaker`, `ulx3s-85f`, ...).
    pub name: &'static str,
    /// Human name.
    pub title: &'static str,
    /// FPGA family.
    pub family: Family,
    /// FPGA part as printed on the chip.
    pub part: &'static str,
    /// nextpnr device option: `--up5k`, `--85k`, `--25k`, ...
    pub device: &'static str,
    /// Package as nextpnr spells it (`sg48`, `CABGA381`, `CSFBGA285`).
    pub package: &'static str,
    /// Speed grade (ECP5: nextpnr `--speed`); `None` for iCE40.
    pub speed: Option<u8>,
    /// Oscillator frequency in Hz.
    pub osc_hz: u64,
    /// Oscillator pin.
    pub osc: Pin,
    /// How the oscillator reaches the PLL.
    pub pll_input: PllInput,
    /// Default design clock (the PLL output) in Hz.
    pub clock_hz: u64,
    /// Default UART baud rate.
    pub baud: u64,
    /// Host to FPGA serial line.
    pub uart_rx: Pin,
    /// FPGA to host serial line.
    pub uart_tx: Pin,
    /// Reset button, if the board has one.
    pub button: Option<Pin>,
    /// The button reads low when pressed.
    pub button_active_low: bool,
    /// Status LEDs.
    pub leds: &'static [Led],
    /// The LEDs light when driven low.
    pub leds_active_low: bool,
    /// The LEDs are the iCE40 UltraPlus RGB driver pins (`SB_RGBA_DRV`, order r, g, b).
    pub leds_rgb_driver: bool,
    /// Outputs the board needs held high (flash chip select, the ULX3S's ESP32 boot pin).
    pub tie_high: &'static [Pin],
    /// Default array shape.
    pub array: (usize, usize),
    /// Weight memory depth (words).
    pub weight_depth: usize,
    /// Activation memory depth (words).
    pub act_depth: usize,
    /// Result memory depth (words).
    pub result_depth: usize,
    /// Accumulator depth (largest M).
    pub max_m: usize,
    /// Block RAM reads through a register, the accumulators' (`Config::registered_acc_reads`),
    /// the host's (`Config::registered_host_reads`), the array's activations'
    /// (`Config::registered_act_reads`) and weights' (`Config::registered_weight_reads`),
    /// and the code bus staged near its rows (`Config::registered_code_bus`): for block RAMs
    /// whose read data arrives late (ECP5), and where flip-flops are cheap.
    pub registered_ram_reads: bool,
    /// Chip resources.
    pub resources: Resources,
    /// How to program it.
    pub programmer: Programmer,
    /// Extra `ecppack` arguments (ECP5).
    pub ecppack_args: &'static [&'static str],
    /// Arrays of at least this many MAC lanes are placed with nextpnr's static placer and
    /// routed with router2 ([`Placer::Static`]) unless the build names a placer; smaller
    /// ones, and every array when `None`, with HeAP ([`Placer::Heap`]).
    pub static_placer_lanes: Option<usize>,
    /// A note printed with build and flash (wiring the UART, jumpers).
    pub note: &'static str,
}

const LVCMOS33: &str = "IO_TYPE=LVCMOS33";
const LVCMOS33_DOWN: &str = "IO_TYPE=LVCMOS33 PULLMODE=DOWN";
const LVCMOS33_UP: &str = "IO_TYPE=LVCMOS33 PULLMODE=UP";

const fn pin(port: &'static str, site: &'static str, attrs: &'static str) -> Pin {
    Pin { port, site, attrs }
}

const fn led(port: &'static str, site: &'static str, attrs: &'static str, shows: Status) -> Led {
    Led {
        pin: pin(port, site, attrs),
        shows,
    }
}

const UP5K: Resources = Resources {
    luts: 5280,
    ffs: 5280,
    brams: 30,
    sprams: 4,
    dsps: 8,
};

const LFE5U_85F: Resources = Resources {
    luts: 83640,
    ffs: 83640,
    brams: 208,
    sprams: 0,
    dsps: 156,
};

const LFE5U_25F: Resources = Resources {
    luts: 24288,
    ffs: 24288,
    brams: 56,
    sprams: 0,
    dsps: 28,
};

/// Every board trimac builds for.
pub const BOARDS: &[Board] = &[
    Board {
        name: "icebreaker",
        title: "1BitSquared iCEBreaker (iCE40UP5K-SG48)",
        family: Family::Ice40,
        part: "iCE40UP5K-SG48",
        device: "up5k",
        package: "sg48",
        speed: None,
        osc_hz: 12_000_000,
        osc: pin("clk_osc", "35", ""),
        pll_input: PllInput::Ice40Pad,
        clock_hz: 36_000_000,
        baud: 3_000_000,
        uart_rx: pin("uart_rx", "6", ""),
        uart_tx: pin("uart_tx", "9", ""),
        button: Some(pin("btn_n", "10", "")),
        button_active_low: true,
        leds: &[
            led("led_g_n", "37", "", Status::Heartbeat),
            led("led_r_n", "11", "", Status::Error),
        ],
        leds_active_low: true,
        leds_rgb_driver: false,
        tie_high: &[],
        array: (8, 4),
        weight_depth: 2048,
        act_depth: 512,
        result_depth: 256,
        max_m: 256,
        registered_ram_reads: false,
        resources: UP5K,
        programmer: Programmer::OpenFpgaLoader {
            board: "icebreaker",
        },
        ecppack_args: &[],
        static_placer_lanes: None,
        note: "UART through the on-board FT2232H (second port, e.g. /dev/ttyUSB1)",
    },
    Board {
        name: "upduino3",
        title: "tinyVision UPduino v3 (iCE40UP5K-SG48)",
        family: Family::Ice40,
        part: "iCE40UP5K-SG48",
        device: "up5k",
        package: "sg48",
        speed: None,
        osc_hz: 12_000_000,
        osc: pin("clk_osc", "20", ""),
        pll_input: PllInput::Ice40Core,
        clock_hz: 36_000_000,
        baud: 3_000_000,
        uart_rx: pin("uart_rx", "15", ""),
        uart_tx: pin("uart_tx", "14", ""),
        button: None,
        button_active_low: false,
        leds: &[
            led("led_r", "41", "", Status::Error),
            led("led_g", "39", "", Status::Heartbeat),
            led("led_b", "40", "", Status::Activity),
        ],
        leds_active_low: false,
        leds_rgb_driver: true,
        tie_high: &[pin("flash_cs_n", "16", "")],
        array: (8, 4),
        weight_depth: 2048,
        act_depth: 512,
        result_depth: 256,
        max_m: 256,
        registered_ram_reads: false,
        resources: UP5K,
        programmer: Programmer::OpenFpgaLoaderCable { cable: "ft232" },
        ecppack_args: &[],
        static_placer_lanes: None,
        note: "short the OSC jumper (12 MHz on pin 20); the FT232H's UART shares the flash \
               SPI lines (RX pin 15, TX pin 14), so flash first, then open the serial port; \
               the board has no button: the design resets when the PLL locks",
    },
    Board {
        name: "ulx3s-85f",
        title: "Radiona ULX3S (LFE5U-85F-6BG381C)",
        family: Family::Ecp5,
        part: "LFE5U-85F-6BG381C",
        device: "85k",
        package: "CABGA381",
        speed: Some(6),
        osc_hz: 25_000_000,
        osc: pin("clk_osc", "G2", LVCMOS33),
        pll_input: PllInput::Ecp5,
        clock_hz: 125_000_000,
        baud: 3_000_000,
        uart_rx: pin("uart_rx", "M1", LVCMOS33),
        uart_tx: pin("uart_tx", "L4", LVCMOS33),
        button: Some(pin("btn_fire1", "R1", LVCMOS33_DOWN)),
        button_active_low: false,
        leds: &ULX3S_LEDS,
        leds_active_low: false,
        leds_rgb_driver: false,
        tie_high: &[pin("wifi_gpio0", "L2", LVCMOS33_UP)],
        array: (32, 32),
        weight_depth: 8192,
        act_depth: 2048,
        result_depth: 512,
        max_m: 512,
        registered_ram_reads: true,
        resources: LFE5U_85F,
        programmer: Programmer::OpenFpgaLoader { board: "ulx3s" },
        ecppack_args: &["--compress"],
        // HeAP packs the 32x32 into a quarter of the chip, where router2 stalls at about
        // 16 000 overused wires; the static placer spreads it (docs/boards.md, tenth round).
        static_placer_lanes: Some(1024),
        note: "UART through the on-board FT231X (/dev/ttyUSB0); FIRE1 resets the design",
    },
    Board {
        name: "ulx3s-25f",
        title: "Radiona ULX3S (LFE5U-25F-6BG381C)",
        family: Family::Ecp5,
        part: "LFE5U-25F-6BG381C",
        device: "25k",
        package: "CABGA381",
        speed: Some(6),
        osc_hz: 25_000_000,
        osc: pin("clk_osc", "G2", LVCMOS33),
        pll_input: PllInput::Ecp5,
        clock_hz: 125_000_000,
        baud: 3_000_000,
        uart_rx: pin("uart_rx", "M1", LVCMOS33),
        uart_tx: pin("uart_tx", "L4", LVCMOS33),
        button: Some(pin("btn_fire1", "R1", LVCMOS33_DOWN)),
        button_active_low: false,
        leds: &ULX3S_LEDS,
        leds_active_low: false,
        leds_rgb_driver: false,
        tie_high: &[pin("wifi_gpio0", "L2", LVCMOS33_UP)],
        array: (16, 8),
        weight_depth: 8192,
        act_depth: 1024,
        result_depth: 512,
        max_m: 512,
        registered_ram_reads: true,
        resources: LFE5U_25F,
        programmer: Programmer::OpenFpgaLoader { board: "ulx3s" },
        ecppack_args: &["--compress"],
        static_placer_lanes: None,
        note: "UART through the on-board FT231X (/dev/ttyUSB0); FIRE1 resets the design",
    },
    Board {
        name: "orangecrab-25f",
        title: "Good Stuff Department OrangeCrab r0.2 (LFE5U-25F-8MG285C)",
        family: Family::Ecp5,
        part: "LFE5U-25F-8MG285C",
        device: "25k",
        package: "CSFBGA285",
        speed: Some(8),
        osc_hz: 48_000_000,
        osc: pin("clk_osc", "A9", LVCMOS33),
        pll_input: PllInput::Ecp5,
        clock_hz: 125_000_000,
        baud: 1_000_000,
        uart_rx: pin("uart_rx", "N17", LVCMOS33_UP),
        uart_tx: pin("uart_tx", "M18", LVCMOS33),
        button: Some(pin("usr_btn_n", "J17", "IO_TYPE=SSTL135_I")),
        button_active_low: true,
        leds: &[
            led("led_r_n", "K4", LVCMOS33, Status::Error),
            led("led_g_n", "M3", LVCMOS33, Status::Heartbeat),
            led("led_b_n", "J3", LVCMOS33, Status::Activity),
        ],
        leds_active_low: true,
        leds_rgb_driver: false,
        tie_high: &[],
        array: (16, 8),
        weight_depth: 8192,
        act_depth: 1024,
        result_depth: 512,
        max_m: 512,
        registered_ram_reads: true,
        resources: LFE5U_25F,
        programmer: Programmer::DfuUtil {
            usb_id: "1209:5af0",
        },
        ecppack_args: &["--compress", "--freq", "38.8"],
        static_placer_lanes: None,
        note: "no on-board USB UART: wire a 3.3 V USB-serial adapter to the Feather pins \
               0 (RX, N17) and 1 (TX, M18); enter the DFU bootloader by holding the button \
               while plugging in",
    },
];

const ULX3S_LEDS: [Led; 5] = [
    led("led0", "B2", LVCMOS33, Status::Heartbeat),
    led("led1", "C2", LVCMOS33, Status::Rx),
    led("led2", "C1", LVCMOS33, Status::Tx),
    led("led3", "D2", LVCMOS33, Status::Error),
    led("led4", "D1", LVCMOS33, Status::Reset),
];

/// The board called `name` (case-insensitive), or an error listing the known boards.
pub fn board(name: &str) -> Result<&'static Board, String> {
    BOARDS
        .iter()
        .find(|b| b.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            format!(
                "unknown board `{name}`; known boards: {}",
                BOARDS.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
            )
        })
}

/// nextpnr's placer, with the router that goes with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placer {
    /// HeAP (nextpnr's default) and router1: the best Fmax where the design routes easily.
    Heap,
    /// The static (electrostatic) placer, which spreads cells to an even density, and
    /// router2: for designs HeAP packs too densely to route.
    Static,
}

impl Placer {
    /// The name `--placer` takes.
    pub fn name(self) -> &'static str {
        match self {
            Placer::Heap => "heap",
            Placer::Static => "static",
        }
    }

    /// Parses a `--placer` value.
    pub fn from_name(name: &str) -> Result<Placer, String> {
        match name {
            "heap" => Ok(Placer::Heap),
            "static" => Ok(Placer::Static),
            _ => Err(format!("unknown placer `{name}`; use heap or static")),
        }
    }

    /// The router nextpnr runs after it.
    pub fn router(self) -> &'static str {
        match self {
            Placer::Heap => "router1",
            Placer::Static => "router2",
        }
    }

    /// The nextpnr arguments that choose it and its [`router`](Placer::router) (none for
    /// HeAP and router1, the defaults).
    pub fn nextpnr_args(self) -> &'static [&'static str] {
        match self {
            Placer::Heap => &[],
            Placer::Static => &["--placer", "static", "--router", "router2"],
        }
    }
}

impl Board {
    /// The placer for an array of `lanes` MAC lanes when the build names none
    /// ([`Board::static_placer_lanes`]).
    pub fn default_placer(&self, lanes: usize) -> Placer {
        match self.static_placer_lanes {
            Some(n) if lanes >= n => Placer::Static,
            _ => Placer::Heap,
        }
    }

    /// The accelerator configuration this board builds for an array of `rows x cols` at
    /// `clock_hz`: the board's memory depths, the design clock, and a frame timeout of 50 ms
    /// (a USB-serial adapter may pause a few milliseconds between its packets).
    pub fn config(
        &self,
        rows: usize,
        cols: usize,
        clock_hz: u64,
    ) -> Result<Config, trimac_hdl::config::ConfigError> {
        let base = Config::new(rows, cols)?;
        let clock = u32::try_from(clock_hz).map_err(|_| {
            trimac_hdl::config::ConfigError(format!("clock {clock_hz} Hz does not fit 32 bits"))
        })?;
        let cfg = Config {
            weight_depth: self.weight_depth,
            act_depth: self.act_depth,
            result_depth: self.result_depth,
            max_m: self.max_m,
            clock_hz: clock,
            frame_timeout_cycles: (clock / 20).max(4096),
            registered_acc_reads: self.registered_ram_reads,
            registered_host_reads: self.registered_ram_reads,
            registered_act_reads: self.registered_ram_reads,
            registered_weight_reads: self.registered_ram_reads,
            registered_code_bus: self.registered_ram_reads,
            lut_range_checks: self.family == Family::Ice40,
            registered_read_strobe: self.family == Family::Ecp5,
            ..base
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every pin of the board's top module, in port order: oscillator, UART, button, LEDs,
    /// tied-high outputs.
    pub fn pins(&self) -> Vec<Pin> {
        let mut v = vec![self.osc, self.uart_rx, self.uart_tx];
        v.extend(self.button);
        v.extend(self.leds.iter().map(|l| l.pin));
        v.extend(self.tie_high.iter().copied());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn boards_are_consistent() {
        let mut names = HashSet::new();
        for b in BOARDS {
            assert!(names.insert(b.name), "duplicate board {}", b.name);
            let pins = b.pins();
            let sites: HashSet<_> = pins.iter().map(|p| p.site).collect();
            let ports: HashSet<_> = pins.iter().map(|p| p.port).collect();
            assert_eq!(sites.len(), pins.len(), "{}: a pin is used twice", b.name);
            assert_eq!(
                ports.len(),
                pins.len(),
                "{}: a port name is used twice",
                b.name
            );
            assert_eq!(b.speed.is_some(), b.family == Family::Ecp5, "{}", b.name);
            // The DP16KD's late read data wants the register; an iCE40 flip-flop would take a
            // logic cell of its own (docs/architecture.md, accumulator lanes).
            assert_eq!(
                b.registered_ram_reads,
                b.family == Family::Ecp5,
                "{}",
                b.name
            );
            let cfg = b.config(4, 4, b.clock_hz).unwrap();
            assert_eq!(
                (
                    cfg.registered_acc_reads,
                    cfg.registered_host_reads,
                    cfg.registered_act_reads,
                    cfg.registered_weight_reads,
                    cfg.registered_code_bus
                ),
                (
                    b.registered_ram_reads,
                    b.registered_ram_reads,
                    b.registered_ram_reads,
                    b.registered_ram_reads,
                    b.registered_ram_reads
                ),
                "{}",
                b.name
            );
            assert_eq!(
                (cfg.lut_range_checks, cfg.registered_read_strobe),
                (b.family == Family::Ice40, b.family == Family::Ecp5),
                "{}",
                b.name
            );
            let (r, c) = b.array;
            let cfg = b.config(r, c, b.clock_hz).unwrap();
            assert_eq!(cfg.clock_hz as u64, b.clock_hz);
            assert!(cfg.frame_timeout_cycles as u64 >= b.clock_hz / 20);
            assert!(trimac_hdl::blocks::uart::divisor(b.clock_hz, b.baud).is_some());
            if b.leds_rgb_driver {
                assert_eq!(b.leds.len(), 3, "{}: the RGB driver has 3 pins", b.name);
            }
        }
        for name in [
            "icebreaker",
            "upduino3",
            "ulx3s-85f",
            "ulx3s-25f",
            "orangecrab-25f",
        ] {
            assert!(board(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn the_ulx3s_85f_places_its_32x32_with_the_static_placer_and_smaller_arrays_with_heap() {
        let b = board("ulx3s-85f").unwrap();
        assert_eq!(b.default_placer(b.array.0 * b.array.1), Placer::Static);
        assert_eq!(b.default_placer(32 * 31), Placer::Heap);
        assert_eq!(b.default_placer(64), Placer::Heap);
        for b in BOARDS.iter().filter(|b| b.name != "ulx3s-85f") {
            assert_eq!(
                b.default_placer(b.array.0 * b.array.1),
                Placer::Heap,
                "{}",
                b.name
            );
        }
        for p in [Placer::Heap, Placer::Static] {
            assert_eq!(Placer::from_name(p.name()), Ok(p));
        }
        assert!(Placer::from_name("sa")
            .unwrap_err()
            .contains("heap or static"));
        assert!(Placer::Heap.nextpnr_args().is_empty());
        assert_eq!(Placer::Static.nextpnr_args()[3], Placer::Static.router());
        assert_eq!(
            Placer::Static.nextpnr_args(),
            ["--placer", "static", "--router", "router2"]
        );
    }

    #[test]
    fn unknown_board_lists_the_known_ones() {
        let e = board("de10-nano").unwrap_err();
        assert!(e.contains("de10-nano") && e.contains("icebreaker") && e.contains("ulx3s-85f"));
        assert_eq!(board("ICEBREAKER").unwrap().name, "icebreaker");
    }
}
