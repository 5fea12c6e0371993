//! The virtual board on a pseudo-terminal, driven through the driver's serial backend exactly
//! as a flashed board would be: GEMM results equal the golden model, also through a dropped
//! byte and a corrupted frame; a board that stops answering or goes away ends in a clear error
//! within a bounded time, never a hang and never a wrong result.

use std::time::{Duration, Instant};
use trimac_driver::client::Accelerator;
use trimac_driver::device::Device;
use trimac_driver::error::DriverError;
use trimac_driver::faults::{Direction, Fault, FaultyStream};
use trimac_driver::gemm::run_gemm;
use trimac_driver::serial::{self, SerialStream};
use trimac_fpga::virtual_board::{calibrate, measure_speed, virtual_config, VirtualBoard};
use trimac_hdl::Config;
use trimac_sim::golden;
use trimac_sim::rtl::{RtlDevice, RtlOptions};

/// A 4x4 virtual board on the rust-hdl simulation, reporting the clock it keeps up with.
fn board() -> VirtualBoard {
    let base = Config {
        weight_depth: 256,
        act_depth: 256,
        result_depth: 256,
        max_m: 64,
        ..Config::new(4, 4).unwrap()
    };
    let mut probe = RtlDevice::new(&base, RtlOptions::default()).unwrap();
    let hz = calibrate(measure_speed(&mut probe, 20_000));
    VirtualBoard::start(virtual_config(&base, hz), |c: &Config| {
        RtlDevice::new(c, RtlOptions::default())
    })
    .unwrap()
}

fn data(m: usize, k: usize, n: usize, seed: i32) -> (Vec<i8>, Vec<i8>) {
    let x = (0..(m * k) as i32)
        .map(|i| ((i * 37 + seed * 11) % 256 - 128) as i8)
        .collect();
    let w = (0..(k * n) as i32)
        .map(|i| ((i * 7 + seed) % 3 - 1) as i8)
        .collect();
    (x, w)
}

fn gemm(dev: &mut dyn Device, (m, k, n): (usize, usize, usize), seed: i32) -> u64 {
    let (x, w) = data(m, k, n, seed);
    let r = run_gemm(dev, &x, &w, (m, k, n), &mut |_, _| {}).unwrap();
    assert_eq!(r.y, golden::gemm(&x, &w, m, k, n), "wrong result");
    r.retries
}

#[test]
fn gemm_over_the_serial_backend_equals_the_golden_model() {
    let vb = board();
    let cfg = vb.config().clone();
    let mut dev = serial::open(vb.path(), serial::DEFAULT_BAUD, &cfg).unwrap();
    assert_eq!(dev.backend(), "serial");
    assert_eq!(dev.config().clock_hz, cfg.clock_hz);
    assert_eq!(gemm(dev.as_mut(), (5, 9, 6), 1), 0);
    // The wrong array is refused with both shapes named.
    drop(dev);
    let e = serial::open(vb.path(), serial::DEFAULT_BAUD, &Config::new(8, 8).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("4x4") && e.contains("8x8"), "{e}");
    let stats = vb.stop().unwrap();
    assert!(stats.replies > 0 && stats.cycles > 0);
}

/// The driver over a fault injector over the serial port.
fn faulty(vb: &VirtualBoard) -> Accelerator<FaultyStream<SerialStream>> {
    let s = SerialStream::open(vb.path(), serial::DEFAULT_BAUD).unwrap();
    let mut acc = Accelerator::connect(FaultyStream::new(s), Some(vb.config())).unwrap();
    let hz = acc.info().config.clock_hz;
    acc.stream_mut().inner_mut().set_clock_hz(hz);
    acc
}

#[test]
fn a_dropped_byte_and_a_corrupted_frame_are_recovered() {
    let vb = board();
    let mut acc = faulty(&vb);
    // A byte of a request lost on the way: the board times the frame out (TRUNCATED) and
    // the driver sends it again.
    acc.stream_mut().add(Fault::drop(Direction::ToDevice, 9));
    assert!(gemm(&mut acc, (3, 8, 4), 2) > 0);
    assert_eq!(acc.stream().injected(), 1);
    // A corrupted request (bad CRC) and a corrupted reply (bad CRC on the host side).
    acc.stream_mut()
        .add(Fault::corrupt(Direction::ToDevice, 20, 0x10));
    acc.stream_mut()
        .add(Fault::corrupt(Direction::FromDevice, 40, 0x04));
    assert!(gemm(&mut acc, (4, 4, 8), 3) > 0);
    assert_eq!(acc.stream().injected(), 3);
    drop(acc);
    vb.stop().unwrap();
}

#[test]
fn a_board_that_stops_answering_is_a_clear_error_in_bounded_time() {
    let vb = board();
    let mut acc = faulty(&vb);
    let timeout = |e: &DriverError| {
        let s = e.to_string();
        s.contains("did not answer") && s.contains("attempt")
    };
    vb.mute(true);
    let t = Instant::now();
    let e = acc.status().unwrap_err();
    assert!(timeout(&e), "{e}");
    assert!(t.elapsed() < Duration::from_secs(120), "{:?}", t.elapsed());
    // Answering again: the same connection works.
    vb.mute(false);
    assert!(acc.status().is_ok());
    // The link goes silent on the host side (a cable pulled mid-request).
    acc.stream_mut().add(Fault::silent(Direction::ToDevice, 3));
    let e = acc.status().unwrap_err();
    assert!(timeout(&e), "{e}");
    drop(acc);
    // The board goes away: the port is closed, an I/O error, no hang.
    let mut dev = serial::open(vb.path(), serial::DEFAULT_BAUD, vb.config()).unwrap();
    vb.stop().unwrap();
    let t = Instant::now();
    let e = dev.status().unwrap_err().to_string();
    assert!(t.elapsed() < Duration::from_secs(120), "{:?}", t.elapsed());
    assert!(e.contains("STATUS"), "{e}");
}
