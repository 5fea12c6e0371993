//! Bitstream builds for the iCEBreaker and the ULX3S-85F with one seed each: the design fits,
//! a non-empty bitstream is written, timing is met at the design clock, and the report's
//! figures hang together. Needs the open toolchain (`scripts/install-toolchain.sh`): without it
//! the test fails, naming the missing tool and the install command.
//!
//! The iCEBreaker builds its default (8x4 at 36 MHz, the largest array that fits). The ULX3S is
//! built with a 4x8 array at 25 MHz to keep the test to minutes on two cores;
//! docs/boards.md has the figures of the full-size builds.

use std::path::Path;
use trimac_fpga::board::{board, Family};
use trimac_fpga::flow::{build, check_tools, BuildOptions, BuildReport, Progress};

fn build_board(
    name: &str,
    array: Option<(usize, usize)>,
    clock: Option<(u64, u64)>,
    dir: &Path,
) -> BuildReport {
    let b = board(name).unwrap();
    if let Err(e) = check_tools(b.family) {
        panic!("the open toolchain is needed to build bitstreams: {e}");
    }
    let mut opts = BuildOptions::new(b, dir.to_path_buf());
    if let Some((r, c)) = array {
        opts.rows = r;
        opts.cols = c;
    }
    if let Some((hz, baud)) = clock {
        opts.clock_hz = hz;
        opts.baud = baud;
    }
    let mut seeds = 0;
    let report = build(&opts, &mut |p| {
        if let Progress::Seed { .. } = p {
            seeds += 1
        }
    })
    .unwrap_or_else(|e| panic!("trimac build --board {name} failed: {e}"));
    assert_eq!(seeds, 1);
    report
}

fn check(r: &BuildReport, family: Family) {
    assert!(r.timing_met, "{r}");
    assert!(r.fmax_mhz * 1e6 >= r.clock_hz as f64, "{r}");
    assert_eq!(r.fmax_per_seed.len(), 1);
    assert_eq!((r.fmax_mhz_min, r.fmax_mhz_max), (r.fmax_mhz, r.fmax_mhz));
    assert!(r.luts_used > 0 && r.luts_used <= r.luts_total, "{r}");
    assert!(
        r.bram.used <= r.bram.total && r.dsp.used <= r.dsp.total,
        "{r}"
    );
    let size = std::fs::metadata(&r.bitstream).unwrap().len();
    assert!(size > 0 && size == r.bitstream_bytes, "{r}");
    let array = r.array_luts.expect("the array alone is synthesized");
    assert!(array > 0 && array < r.synth.luts, "{r}");
    assert!(r.array_luts_per_lane.unwrap() > 1.0);
    let ext = r
        .bitstream
        .extension()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert_eq!(
        ext,
        match family {
            Family::Ice40 => "bin",
            Family::Ecp5 => "bit",
        }
    );
    // The JSON report has the fields the CLI's --json promises.
    let j: serde_json::Value = serde_json::to_value(r).unwrap();
    for key in [
        "board",
        "array",
        "mac_lanes",
        "luts_used",
        "luts_total",
        "array_luts",
        "fmax_mhz",
        "fmax_mhz_min",
        "fmax_mhz_max",
        "timing_met",
        "bitstream",
    ] {
        assert!(j.get(key).is_some(), "report lacks {key}");
    }
}

#[test]
fn icebreaker_and_ulx3s_85f_bitstreams_fit_and_meet_timing() {
    let dir = tempfile::tempdir().unwrap();
    let ice = build_board("icebreaker", None, None, &dir.path().join("icebreaker"));
    check(&ice, Family::Ice40);
    assert_eq!(ice.part, "iCE40UP5K-SG48");
    assert_eq!(ice.luts_total, 5280);
    // A small non-square array (no requantizer multipliers) at a clock with margin keeps the
    // synthesis short; the full-size figures are in docs/boards.md.
    let ecp5 = build_board(
        "ulx3s-85f",
        Some((4, 8)),
        Some((25_000_000, 1_000_000)),
        &dir.path().join("ulx3s"),
    );
    check(&ecp5, Family::Ecp5);
    assert_eq!(ecp5.mac_lanes, 32);
    assert!(ecp5.luts_total > 80_000);
    // Every block RAM read goes through a fabric register on ECP5 (`registered_ram_reads`),
    // and every one of those registers is merged into its DP16KD.
    assert_eq!(ecp5.bram_output_registers, ecp5.bram.used, "{ecp5}");
    assert_eq!(ice.bram_output_registers, 0);
}
