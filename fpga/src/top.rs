//! The board top-level: PLL, reset synchroniser, UART around the accelerator, status LEDs.
//!
//! ```text
//!  clk_osc --> Pll --clock--> everything below
//!  button, locked --> reset synchroniser --> SerialTop.reset
//!  uart_rx --> SerialTop (UartRx -> Top -> UartTx) --> uart_tx
//!  strobes --> LED stretchers --> led_* (one per [`crate::board::Status`])
//! ```
//!
//! [`BoardTop`] is the part written in rust-hdl (and simulated like every other block); its
//! ports are board-independent. [`board_verilog`] adds a thin Verilog module `board` whose
//! ports are the board's own pins: it inverts active-low buttons and LEDs, drives the iCE40
//! UltraPlus RGB LED driver where the board's LEDs hang on it, and holds tie-high pins high.

use crate::board::{Board, Family, PllInput};
use crate::pll::{ecp5_pll, ice40_pll, Pll, PllKind};
use rust_hdl::prelude::*;
use trimac_hdl::blocks::uart::{divisor, SerialTop};
use trimac_hdl::Config;

/// Width of the LED stretch counters: a strobe lights its LED for `2^STRETCH_BITS` cycles
/// (87 ms at 48 MHz).
pub const STRETCH_BITS: usize = 22;

/// Bit of the free-running counter that drives the heartbeat LED (written as a literal in
/// `update`: the Verilog generator does not resolve constants in bit selects).
pub const HEARTBEAT_BIT: usize = 25;

/// Board-independent top-level: the accelerator behind a UART, with its clock and reset.
#[derive(LogicBlock)]
pub struct BoardTop {
    /// Oscillator.
    pub clk_osc: Signal<In, Clock>,
    /// Reset button, high when pressed.
    pub button: Signal<In, bool>,
    /// Serial line from the host.
    pub uart_rx: Signal<In, bool>,
    /// Serial line to the host.
    pub uart_tx: Signal<Out, bool>,
    /// Status LED [`crate::board::Status::Heartbeat`], high = lit.
    pub led_heartbeat: Signal<Out, bool>,
    /// Status LED [`crate::board::Status::Rx`].
    pub led_rx: Signal<Out, bool>,
    /// Status LED [`crate::board::Status::Tx`].
    pub led_tx: Signal<Out, bool>,
    /// Status LED [`crate::board::Status::Error`].
    pub led_error: Signal<Out, bool>,
    /// Status LED [`crate::board::Status::Reset`].
    pub led_reset: Signal<Out, bool>,
    /// Status LED [`crate::board::Status::Activity`].
    pub led_activity: Signal<Out, bool>,
    pll: Pll,
    serial: SerialTop,
    /// Reset synchroniser: shifts in ones once the PLL is locked and the button released.
    run: DFF<Bits<3>>,
    heartbeat: DFF<Bits<32>>,
    rx_led: DFF<Bits<STRETCH_BITS>>,
    tx_led: DFF<Bits<STRETCH_BITS>>,
    err_led: DFF<Bits<STRETCH_BITS>>,
    /// The UART's byte-received, byte-sent and byte-lost pulses, a cycle late (no eye sees
    /// it), so their logic does not chain into the LED counters.
    rx_pulse: DFF<bool>,
    tx_pulse: DFF<bool>,
    err_pulse: DFF<bool>,
    clock: Signal<Local, Clock>,
    reset: Signal<Local, bool>,
}

/// What a board top-level is built from, with the numbers derived from the board.
#[derive(Clone, Debug, PartialEq)]
pub struct TopPlan {
    /// The accelerator configuration (its `clock_hz` is the PLL's actual output).
    pub config: Config,
    /// The PLL.
    pub pll: PllKind,
    /// UART clock cycles per bit.
    pub uart_divisor: usize,
    /// Baud rate the divisor gives.
    pub baud_actual: f64,
}

impl TopPlan {
    /// Plans a board top for an array of `rows x cols` at (about) `clock_hz` with a UART at
    /// `baud`. Fails with a message naming the limit when the PLL cannot make the clock or the
    /// UART cannot make the baud rate within 2 %.
    pub fn new(
        board: &Board,
        rows: usize,
        cols: usize,
        clock_hz: u64,
        baud: u64,
    ) -> Result<TopPlan, String> {
        let pll = match board.pll_input {
            PllInput::Ice40Pad => PllKind::Ice40Pad(ice40_pll(board.osc_hz, clock_hz)?),
            PllInput::Ice40Core => PllKind::Ice40Core(ice40_pll(board.osc_hz, clock_hz)?),
            PllInput::Ecp5 => PllKind::Ecp5(ecp5_pll(board.osc_hz, clock_hz)?),
        };
        let f = pll.f_out();
        if f.abs_diff(clock_hz) * 100 > clock_hz {
            return Err(format!(
                "the {} PLL cannot make {:.3} MHz from the {:.3} MHz oscillator (closest: \
                 {:.3} MHz)",
                board.family,
                clock_hz as f64 / 1e6,
                board.osc_hz as f64 / 1e6,
                f as f64 / 1e6
            ));
        }
        let config = board
            .config(rows, cols, f)
            .map_err(|e| format!("array {rows}x{cols}: {e}"))?;
        let (uart_divisor, err) = divisor(f, baud).ok_or_else(|| {
            format!(
                "{baud} baud is out of reach at {:.3} MHz (4 to 65535 clock cycles per bit)",
                f as f64 / 1e6
            )
        })?;
        if err.abs() > 0.02 {
            return Err(format!(
                "{baud} baud at {:.3} MHz is off by {:.1} % (more than the 2 % a UART \
                 tolerates): pick another --baud or --freq",
                f as f64 / 1e6,
                err * 100.0
            ));
        }
        Ok(TopPlan {
            config,
            pll,
            uart_divisor,
            baud_actual: f as f64 / uart_divisor as f64,
        })
    }
}

impl BoardTop {
    /// The board top-level of `plan`.
    pub fn new(plan: &TopPlan) -> BoardTop {
        BoardTop {
            clk_osc: Default::default(),
            button: Default::default(),
            uart_rx: Default::default(),
            uart_tx: Default::default(),
            led_heartbeat: Default::default(),
            led_rx: Default::default(),
            led_tx: Default::default(),
            led_error: Default::default(),
            led_reset: Default::default(),
            led_activity: Default::default(),
            pll: Pll::new(plan.pll),
            serial: SerialTop::new(&plan.config, plan.uart_divisor),
            run: Default::default(),
            heartbeat: Default::default(),
            rx_led: Default::default(),
            tx_led: Default::default(),
            err_led: Default::default(),
            rx_pulse: Default::default(),
            tx_pulse: Default::default(),
            err_pulse: Default::default(),
            clock: Default::default(),
            reset: Default::default(),
        }
    }
}

impl Logic for BoardTop {
    #[hdl_gen]
    fn update(&mut self) {
        self.pll.clock_in.next = self.clk_osc.val();
        self.clock.next = self.pll.clock_out.val();
        dff_setup!(
            self, clock, run, heartbeat, rx_led, tx_led, err_led, rx_pulse, tx_pulse, err_pulse
        );
        // Reset: held until the PLL is locked and the button released, then released
        // synchronously three cycles later.
        self.run.d.next = (self.run.q.val() << 1) | bits::<3>(1);
        if !self.pll.locked.val() | self.button.val() {
            self.run.d.next = bits::<3>(0);
        }
        self.reset.next = self.run.q.val() != bits::<3>(7);
        self.serial.clock.next = self.clock.val();
        self.serial.reset.next = self.reset.val();
        self.serial.rx.next = self.uart_rx.val();
        self.uart_tx.next = self.serial.tx.val();
        // LEDs.
        self.rx_pulse.d.next = self.serial.rx_strobe.val();
        self.tx_pulse.d.next = self.serial.tx_strobe.val();
        self.err_pulse.d.next = self.serial.rx_error.val();
        self.heartbeat.d.next = self.heartbeat.q.val() + 1;
        self.rx_led.d.next = self.rx_led.q.val();
        if self.rx_led.q.val().any() {
            self.rx_led.d.next = self.rx_led.q.val() - 1;
        }
        if self.rx_pulse.q.val() {
            self.rx_led.d.next = !bits::<STRETCH_BITS>(0);
        }
        self.tx_led.d.next = self.tx_led.q.val();
        if self.tx_led.q.val().any() {
            self.tx_led.d.next = self.tx_led.q.val() - 1;
        }
        if self.tx_pulse.q.val() {
            self.tx_led.d.next = !bits::<STRETCH_BITS>(0);
        }
        self.err_led.d.next = self.err_led.q.val();
        if self.err_led.q.val().any() {
            self.err_led.d.next = self.err_led.q.val() - 1;
        }
        if self.err_pulse.q.val() {
            self.err_led.d.next = !bits::<STRETCH_BITS>(0);
        }
        self.led_heartbeat.next = self.heartbeat.q.val().get_bit(25);
        self.led_rx.next = self.rx_led.q.val().any();
        self.led_tx.next = self.tx_led.q.val().any();
        self.led_error.next = self.err_led.q.val().any();
        self.led_reset.next = self.reset.val();
        self.led_activity.next = self.rx_led.q.val().any() | self.tx_led.q.val().any();
    }
}

/// The Verilog module `board` around `top` (the [`BoardTop`]): the board's pins as ports.
pub fn board_wrapper(board: &Board) -> String {
    let mut ports = vec![
        format!("input {}", board.osc.port),
        format!("input {}", board.uart_rx.port),
        format!("output {}", board.uart_tx.port),
    ];
    if let Some(b) = board.button {
        ports.push(format!("input {}", b.port));
    }
    ports.extend(board.leds.iter().map(|l| format!("output {}", l.pin.port)));
    ports.extend(board.tie_high.iter().map(|p| format!("output {}", p.port)));
    let button = match board.button {
        Some(b) if board.button_active_low => format!("~{}", b.port),
        Some(b) => b.port.to_string(),
        None => "1'b0".to_string(),
    };
    let mut body = format!(
        "\
    wire [5:0] leds;
    top core (
        .clk_osc({osc}), .button({button}), .uart_rx({rx}), .uart_tx({tx}),
        .led_heartbeat(leds[0]), .led_rx(leds[1]), .led_tx(leds[2]), .led_error(leds[3]),
        .led_reset(leds[4]), .led_activity(leds[5])
    );
",
        osc = board.osc.port,
        rx = board.uart_rx.port,
        tx = board.uart_tx.port,
    );
    if board.leds_rgb_driver {
        // SB_RGBA_DRV: RGB0/1/2 are package pins 39/40/41 of the SG48.
        let by_site = |site: &str| {
            board
                .leds
                .iter()
                .find(|l| l.pin.site == site)
                .map(|l| (l.pin.port, l.shows as usize))
        };
        let (p0, s0) = by_site("39").unwrap_or(("", 0));
        let (p1, s1) = by_site("40").unwrap_or(("", 0));
        let (p2, s2) = by_site("41").unwrap_or(("", 0));
        body.push_str(&format!(
            "\
    SB_RGBA_DRV #(
        .CURRENT_MODE(\"0b1\"), .RGB0_CURRENT(\"0b000001\"), .RGB1_CURRENT(\"0b000001\"),
        .RGB2_CURRENT(\"0b000001\")
    ) rgb (
        .CURREN(1'b1), .RGBLEDEN(1'b1),
        .RGB0PWM(leds[{s0}]), .RGB1PWM(leds[{s1}]), .RGB2PWM(leds[{s2}]),
        .RGB0({p0}), .RGB1({p1}), .RGB2({p2})
    );
"
        ));
    } else {
        let inv = if board.leds_active_low { "~" } else { "" };
        for l in board.leds {
            body.push_str(&format!(
                "    assign {} = {inv}leds[{}];\n",
                l.pin.port, l.shows as usize
            ));
        }
    }
    for p in board.tie_high {
        body.push_str(&format!("    assign {} = 1'b1;\n", p.port));
    }
    format!(
        "\n// The {} ({}) pins around the trimac board top-level.\nmodule board({});\n{body}endmodule\n",
        board.title,
        match board.family {
            Family::Ice40 => "iCE40",
            Family::Ecp5 => "ECP5",
        },
        ports.join(", ")
    )
}

/// The complete Verilog of a board build: rust-hdl's `top` (the [`BoardTop`] of `plan`) and
/// the `board` module around it.
pub fn board_verilog(board: &Board, plan: &TopPlan) -> String {
    let mut top = BoardTop::new(plan);
    top.connect_all();
    let mut v = trimac_hdl::verilog::share_identical_modules(&generate_verilog(&top));
    v.push_str(&board_wrapper(board));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::{board, BOARDS};

    #[test]
    fn every_board_plans_its_default_build() {
        for b in BOARDS {
            let plan = TopPlan::new(b, b.array.0, b.array.1, b.clock_hz, b.baud).unwrap();
            let f = plan.config.clock_hz as u64;
            assert!(
                f.abs_diff(b.clock_hz) * 100 <= b.clock_hz,
                "{}: {f}",
                b.name
            );
            let w = board_wrapper(b);
            for p in b.pins() {
                assert!(w.contains(p.port), "{}: {}", b.name, p.port);
            }
        }
        let ib = board("icebreaker").unwrap();
        let plan = TopPlan::new(ib, 4, 4, 48_000_000, 3_000_000).unwrap();
        assert_eq!(plan.uart_divisor, 16);
        // Out-of-reach requests name the limit.
        let e = TopPlan::new(ib, 4, 4, 48_000_000, 20_000_000).unwrap_err();
        assert!(e.contains("baud"), "{e}");
        let e = TopPlan::new(ib, 4, 4, 400_000_000, 3_000_000).unwrap_err();
        assert!(e.contains("MHz"), "{e}");
        let e = TopPlan::new(ib, 4, 6, 48_000_000, 3_000_000).unwrap_err();
        assert!(e.contains("4x6"), "{e}");
    }

    #[test]
    fn verilog_has_the_pll_the_uart_and_the_pins() {
        let b = board("ulx3s-85f").unwrap();
        let plan = TopPlan::new(b, 4, 4, b.clock_hz, b.baud).unwrap();
        let v = board_verilog(b, &plan);
        assert!(v.contains("EHXPLLL") && v.contains("module board("));
        assert!(v.contains("assign wifi_gpio0 = 1'b1;"));
        let up = board("upduino3").unwrap();
        let plan = TopPlan::new(up, 4, 4, up.clock_hz, up.baud).unwrap();
        let v = board_verilog(up, &plan);
        assert!(v.contains("SB_PLL40_CORE") && v.contains("SB_RGBA_DRV"));
        assert!(v.contains(".button(1'b0)"));
        // The 16 PEs share a handful of module definitions (rust-hdl writes one per PE).
        let pes = |v: &str| {
            v.lines()
                .filter(|l| l.starts_with("module top$serial$top$core$array$pes$"))
                .count()
        };
        let mut top = BoardTop::new(&plan);
        top.connect_all();
        assert_eq!(
            pes(&generate_verilog(&top)),
            16 * 6,
            "rust-hdl's own output"
        );
        assert!(pes(&v) <= 4 * 6, "PE modules not shared: {}", pes(&v));
    }

    /// Steps the board top by hand: the PLL passes the oscillator through in simulation.
    fn tick(top: &mut BoardTop) {
        for level in [true, false] {
            top.clk_osc.next = level.into();
            assert!(simulate(top, 10_000));
        }
    }

    #[test]
    fn leaves_reset_and_answers_info_over_the_uart() {
        use trimac_hdl::blocks::uart::{UartRx, UartTx};
        use trimac_hdl::protocol::{self, Opcode, REPLY_SYNC, REQUEST_SYNC};
        let b = board("icebreaker").unwrap();
        // 4 MHz design clock in name only: the simulation runs the oscillator's edges.
        let mut plan = TopPlan::new(b, 4, 4, b.clock_hz, b.baud).unwrap();
        plan.uart_divisor = 4;
        plan.config.frame_timeout_cycles = 4096;
        let mut top = BoardTop::new(&plan);
        top.connect_all();
        top.uart_rx.next = true;
        top.button.next = true;
        tick(&mut top);
        assert!(
            top.led_reset.val(),
            "held in reset while the button is down"
        );
        top.button.next = false;
        for _ in 0..4 {
            tick(&mut top);
        }
        assert!(!top.led_reset.val(), "out of reset");
        let mut host_tx = UartTx::new(4);
        let mut host_rx = UartRx::new(4);
        host_tx.connect_all();
        host_rx.connect_all();
        let frame = protocol::frame(REQUEST_SYNC, Opcode::Info as u8, &[]);
        let (mut sent, mut reply) = (0, vec![]);
        for _ in 0..100 * 40 {
            host_tx.valid.next = sent < frame.len();
            host_tx.data.next = (frame.get(sent).copied().unwrap_or(0) as u64).into();
            assert!(simulate(&mut host_tx, 1000));
            if host_tx.valid.val() && host_tx.ready.val() {
                sent += 1;
            }
            top.uart_rx.next = host_tx.tx.val();
            host_rx.rx.next = top.uart_tx.val();
            for level in [true, false] {
                host_tx.clock.next = level.into();
                host_rx.clock.next = level.into();
                assert!(simulate(&mut host_tx, 1000) && simulate(&mut host_rx, 1000));
            }
            tick(&mut top);
            if host_rx.valid.val() {
                reply.push(host_rx.data.val().to_u64() as u8);
            }
        }
        assert_eq!(reply.len(), 6 + protocol::INFO_LEN, "{reply:?}");
        assert_eq!(reply[0], REPLY_SYNC);
        assert!(top.led_rx.val() && top.led_tx.val(), "rx and tx LEDs lit");
    }
}
