//! `--vcd`: the rust-hdl backend writes a waveform of the session that names the top-level
//! ports and covers every simulated cycle.

use trimac_driver::device::{open, OpenOptions};
use trimac_driver::gemm::run_gemm;
use trimac_hdl::Config;
use trimac_tests::{random_int8, random_ternary};

#[test]
fn sim_backend_writes_a_vcd() {
    let path = std::env::temp_dir().join(format!("trimac-waveform-{}.vcd", std::process::id()));
    let cfg = Config::new(4, 4).unwrap();
    {
        let mut dev = open(
            "sim",
            &cfg,
            &OpenOptions {
                vcd: Some(path.clone()),
            },
        )
        .expect("sim backend");
        let (m, k, n) = (3, 5, 6);
        let y = run_gemm(
            dev.as_mut(),
            &random_int8(1, m * k),
            &random_ternary(2, k * n),
            (m, k, n),
            &mut |_, _| {},
        )
        .expect("gemm");
        assert!(y.cycles > 0);
    }
    let vcd = std::fs::read_to_string(&path).expect("VCD written");
    std::fs::remove_file(&path).ok();
    assert!(vcd.contains("$enddefinitions"), "VCD header");
    for port in ["in_data", "out_valid", "clock"] {
        assert!(vcd.contains(port), "VCD lacks {port}");
    }
    let last_time = vcd
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix('#'))
        .and_then(|t| t.parse::<u64>().ok());
    assert!(last_time.unwrap_or(0) > 1000, "VCD covers the session");
}
