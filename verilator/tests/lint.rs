//! The lint gate: `verilator --lint-only -Wall` on the emitted top-level of every array size
//! in the menu, with only the waivers of lint/waivers.vlt (justified in docs/verilator.md).
//! Any other warning fails. Needs Verilator: the test fails (does not skip) without it and
//! says how to install it.

use std::path::{Path, PathBuf};
use trimac_hdl::config::ARRAY_MENU;
use trimac_hdl::Config;
use trimac_toolchain::Tool;

fn waivers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lint/waivers.vlt")
}

/// Lints `verilog` (written as `top.v` in a fresh directory); returns whether Verilator
/// passed it and everything it printed.
fn lint(verilog: &str, tag: &str) -> (bool, String) {
    let v = trimac_toolchain::locate(Tool::Verilator).unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("trimac-lint-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let top = dir.join("top.v");
    std::fs::write(&top, verilog).unwrap();
    let out = v
        .command()
        .args(["--lint-only", "-Wall"])
        .arg(waivers())
        .arg(&top)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", v.program.display()));
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = out.status.success() && !text.contains("%Warning") && !text.contains("%Error");
    (clean, text)
}

fn lint_size(rows: usize, cols: usize) {
    assert!(ARRAY_MENU.contains(&(rows, cols)));
    let cfg = Config::new(rows, cols).unwrap();
    let (clean, text) = lint(&trimac_hdl::verilog::emit_top(&cfg), &cfg.array_name());
    let first: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('%'))
        .take(20)
        .collect();
    assert!(
        clean,
        "verilator --lint-only -Wall on the {} top-level: unwaived warnings:\n{}",
        cfg.array_name(),
        first.join("\n")
    );
}

#[test]
fn menu_is_what_this_gate_covers() {
    assert_eq!(ARRAY_MENU, [(4, 4), (8, 8), (16, 16), (32, 32)]);
}

#[test]
fn lint_clean_4x4() {
    lint_size(4, 4);
}

#[test]
fn lint_clean_8x8() {
    lint_size(8, 8);
}

#[test]
fn lint_clean_16x16() {
    lint_size(16, 16);
}

#[test]
fn lint_clean_32x32() {
    lint_size(32, 32);
}

#[test]
fn an_unwaived_warning_fails_the_gate() {
    // An undriven wire in the top module: UNDRIVEN is not waived.
    let cfg = Config::new(4, 4).unwrap();
    let verilog = trimac_hdl::verilog::emit_top(&cfg);
    let at = verilog.find(");\n").expect("the top module's port list") + 3;
    let probe = format!(
        "{}    wire [3:0] lint_gate_probe;\n    assign out_data = {{4'b0, lint_gate_probe}};\n{}",
        &verilog[..at],
        &verilog[at..]
    );
    let (clean, text) = lint(&probe, "probe");
    assert!(!clean, "the probe must fail the gate:\n{text}");
    assert!(text.contains("UNDRIVEN"), "{text}");
}
