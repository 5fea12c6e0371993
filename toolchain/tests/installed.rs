//! The project toolchain as installed by `scripts/install-toolchain.sh` or
//! `trimac toolchain install`: every tool is reported, and the pinned Verilator is found in
//! the project toolchain and runs. Fails (does not skip) when the toolchain is not installed.

use std::time::Duration;
use trimac_toolchain::{locate, status, Source, Tool, INSTALL_COMMAND, TOOLS};

#[test]
fn status_reports_every_tool_with_version_and_path() {
    let rows = status();
    assert_eq!(rows.len(), TOOLS.len());
    for (row, spec) in rows.iter().zip(TOOLS.iter()) {
        assert_eq!(row.tool, spec.tool);
        assert_eq!(row.pinned, spec.tool.pinned_version().unwrap());
        let line = row.to_string();
        assert!(line.starts_with(spec.name), "{line}");
        assert!(["ok", "missing", "broken"].contains(&row.state()), "{line}");
        if row.path.is_some() {
            assert!(row.version.is_some(), "{line}");
        } else {
            assert!(row.detail.contains(INSTALL_COMMAND), "{line}");
        }
    }
    // The tools the project's own builds and tests need are there.
    for tool in [
        Tool::Verilator,
        Tool::Yosys,
        Tool::NextpnrIce40,
        Tool::NextpnrEcp5,
    ] {
        let row = rows.iter().find(|r| r.tool == tool).unwrap();
        assert!(row.ok, "{row}\n(install with `{INSTALL_COMMAND}`)");
    }
}

#[test]
fn pinned_verilator_runs_from_the_project_toolchain() {
    let v = locate(Tool::Verilator).unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os("TRIMAC_VERILATOR").is_none() {
        assert_eq!(v.source, Source::Project, "{v:?}");
        assert!(v.env.iter().any(|(k, _)| k == "VERILATOR_ROOT"));
    }
    let version = v.version(Duration::from_secs(60)).unwrap();
    assert!(version.contains("rev"), "{version}");
}
