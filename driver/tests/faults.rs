//! Recovery from link faults, against the reference device: damaged or lost bytes in either
//! direction end in exact results after retries; a silent device ends in a clear, prompt
//! error; a device of another protocol version is refused.

use std::time::{Duration, Instant};
use trimac_driver::client::{Accelerator, DeviceInfo, MAX_ATTEMPTS};
use trimac_driver::device::Device;
use trimac_driver::error::DriverError;
use trimac_driver::faults::{Direction, Fault, FaultyStream};
use trimac_driver::gemm::{run_gemm, GemmReport};
use trimac_driver::mlp::{golden_logits, run_mlp};
use trimac_driver::model::{InputQuant, Layer, Model};
use trimac_hdl::protocol::{frame, Status, REPLY_SYNC};
use trimac_hdl::Config;
use trimac_sim::golden::{gemm, Requant};
use trimac_sim::reference::ReferenceDevice;
use trimac_sim::stream::{ByteStream, LinkError};

use Direction::{FromDevice, ToDevice};

type Faulty = Accelerator<FaultyStream<ReferenceDevice>>;

const M: usize = 5;
const K: usize = 6;
const N: usize = 7;

fn cfg() -> Config {
    Config::new(4, 4).unwrap()
}

fn connect() -> Faulty {
    let cfg = cfg();
    Accelerator::connect(FaultyStream::new(ReferenceDevice::new(&cfg)), Some(&cfg)).unwrap()
}

fn x() -> Vec<i8> {
    (0..M * K).map(|i| (i as i32 * 37 - 100) as i8).collect()
}

fn w() -> Vec<i8> {
    (0..K * N).map(|i| (i % 3) as i8 - 1).collect()
}

fn gemm_on(dev: &mut Faulty) -> Result<GemmReport, DriverError> {
    run_gemm(dev, &x(), &w(), (M, K, N), &mut |_, _| {})
}

/// Runs the test GEMM with `faults` scheduled from now; checks the result is exact, every
/// fault fired and at least one retry happened.
fn recovers(faults: &[Fault]) {
    let mut dev = connect();
    for f in faults {
        dev.stream_mut().add(*f);
    }
    let report = gemm_on(&mut dev).unwrap_or_else(|e| panic!("{faults:?}: {e}"));
    assert_eq!(report.y, gemm(&x(), &w(), M, K, N), "{faults:?}");
    assert_eq!(dev.stream().injected(), faults.len(), "{faults:?}");
    assert!(report.retries >= 1, "{faults:?}");
}

/// Bytes of the GEMM's first request (the activation WRITE): 6 framing + 3 header + data.
fn first_frame_len() -> u64 {
    (6 + 3 + M * K.div_ceil(4) * 4) as u64
}

#[test]
fn corrupted_request_bytes_are_resent() {
    // Every byte of the first request, one at a time: sync, opcode, length, header, data, CRC.
    for at in 0..first_frame_len() {
        recovers(&[Fault::corrupt(ToDevice, at, 0x24)]);
    }
}

#[test]
fn corrupted_reply_bytes_are_resent() {
    // The first reply (6 bytes) and the READ reply's first bytes further on.
    for at in 0..6 {
        recovers(&[Fault::corrupt(FromDevice, at, 0x81)]);
    }
    for at in [12, 13, 14, 15, 20, 40] {
        recovers(&[Fault::corrupt(FromDevice, at, 0x01)]);
    }
}

#[test]
fn dropped_request_bytes_end_in_truncated_and_are_resent() {
    for at in [0, 1, 3, 4, 10, first_frame_len() - 1, first_frame_len() + 5] {
        recovers(&[Fault::drop(ToDevice, at)]);
    }
}

#[test]
fn dropped_reply_bytes_are_resent() {
    for at in [0, 1, 2, 5, 7, 30] {
        recovers(&[Fault::drop(FromDevice, at)]);
    }
}

#[test]
fn damaged_write_header_cannot_corrupt_the_result() {
    // Corrupt the memory id of the weight WRITE (the second request): its words land in the
    // activation memory before the CRC fails. The result must still be exact.
    let mem_byte = first_frame_len() + 4;
    recovers(&[Fault::corrupt(ToDevice, mem_byte, 0x01)]);
    // Same with the address and the length of the weight WRITE.
    recovers(&[Fault::corrupt(ToDevice, mem_byte + 1, 0x02)]);
    recovers(&[Fault::corrupt(ToDevice, first_frame_len() + 2, 0x04)]);
}

#[test]
fn several_faults_in_one_gemm() {
    recovers(&[
        Fault::corrupt(ToDevice, 3, 0x10),
        Fault::drop(FromDevice, 2),
        Fault::drop(ToDevice, 200),
        Fault::corrupt(FromDevice, 30, 0x40),
    ]);
}

#[test]
fn mlp_recovers_from_faults() {
    let model = Model {
        layers: vec![
            Layer {
                k: 9,
                n: 6,
                weights: (0..54).map(|i| (i % 3) as i8 - 1).collect(),
                requant: Some(Requant {
                    mult: 200,
                    shift: 8,
                    relu: true,
                }),
            },
            Layer {
                k: 6,
                n: 3,
                weights: (0..18).map(|i| ((i * 5) % 3) as i8 - 1).collect(),
                requant: None,
            },
        ],
        input_len: 9,
        classes: 3,
        input_quant: InputQuant::default(),
    };
    let x: Vec<i8> = (0..9 * 4).map(|i| (i * 29) as i8).collect();
    let golden = golden_logits(&model, &x, 4).unwrap();
    for at in [4, 5, 6, 30, 60, 100] {
        let mut dev = connect();
        dev.stream_mut().add(Fault::corrupt(ToDevice, at, 0x01));
        dev.stream_mut().add(Fault::drop(FromDevice, at / 2));
        let r = run_mlp(&mut dev, &model, &x, 4, &mut |_, _| {}).unwrap();
        assert_eq!(r.logits, golden, "fault at {at}");
        assert_eq!(dev.stream().injected(), 2, "fault at {at}");
        assert!(r.retries >= 1, "fault at {at}");
    }
}

#[test]
fn silent_device_ends_in_a_prompt_timeout_error() {
    for direction in [ToDevice, FromDevice] {
        let mut dev = connect();
        dev.stream_mut().add(Fault::silent(direction, 20));
        let start = Instant::now();
        let err = gemm_on(&mut dev).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        let text = err.to_string();
        assert!(
            matches!(err, DriverError::Link { attempts, .. } if attempts == MAX_ATTEMPTS),
            "{text}"
        );
        assert!(text.contains("did not answer"), "{text}");
    }
}

#[test]
fn a_link_that_keeps_failing_gives_up_after_bounded_attempts() {
    let mut dev = connect();
    // Damage the status byte of every reply for a while.
    for i in 0..200u64 {
        dev.stream_mut()
            .add(Fault::corrupt(FromDevice, 1 + 6 * i, 0x01));
    }
    let before = dev.stats().retries;
    let err = dev.reset().unwrap_err();
    assert_eq!(dev.stats().retries - before, (MAX_ATTEMPTS - 1) as u64);
    assert!(err.to_string().contains("RESET"), "{err}");
}

/// A device that answers everything with one fixed INFO payload.
struct FakeInfo {
    reply: Vec<u8>,
    queued: Vec<u8>,
}

impl ByteStream for FakeInfo {
    fn send(&mut self, _bytes: &[u8]) -> Result<(), LinkError> {
        self.queued
            .extend(frame(REPLY_SYNC, Status::Ok as u8, &self.reply));
        Ok(())
    }
    fn recv(&mut self, n: usize, idle_cycles: u64) -> Result<Vec<u8>, LinkError> {
        if self.queued.len() < n {
            return Err(LinkError::Timeout {
                missing: n,
                waited: format!("{idle_cycles} cycles"),
            });
        }
        Ok(self.queued.drain(..n).collect())
    }
    fn cycles(&self) -> Option<u64> {
        None
    }
    fn backend(&self) -> &'static str {
        "fake"
    }
}

fn fake(info: &DeviceInfo) -> FakeInfo {
    FakeInfo {
        reply: info.encode(),
        queued: Vec::new(),
    }
}

#[test]
fn other_protocol_versions_are_refused() {
    let info = DeviceInfo {
        protocol_version: 2,
        psum_bits: 16,
        config: cfg(),
    };
    let err = Accelerator::connect(fake(&info), None).err().unwrap();
    let text = err.to_string();
    assert!(matches!(err, DriverError::ConfigMismatch(_)), "{text}");
    assert!(
        text.contains("protocol v2") && text.contains("v1"),
        "{text}"
    );
}

#[test]
fn fake_device_info_round_trips() {
    let info = DeviceInfo {
        protocol_version: 1,
        psum_bits: 16,
        config: Config {
            max_m: 77,
            clock_hz: 12_345_678,
            ..Config::new(16, 8).unwrap()
        },
    };
    let dev = Accelerator::connect(fake(&info), None).unwrap();
    assert_eq!(Device::info(&dev), &info);
    let shape = Accelerator::connect(fake(&info), Some(&Config::new(8, 8).unwrap()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        shape.contains("device is 16x8 protocol v1, you asked for 8x8"),
        "{shape}"
    );
}
