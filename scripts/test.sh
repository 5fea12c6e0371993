#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the pinned open toolchain into
# .toolchain/ (no root), checks formatting and lints, then runs every test of the workspace
# on every backend. Fails (never skips) when a tool or backend is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$(date +%s)
step() { printf '\n== %s (%ds)\n' "$*" "$(( $(date +%s) - start ))"; }

step "toolchain"
bash scripts/install-toolchain.sh

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --release -- -D warnings

step "tests"
cargo test --workspace --release

step "done in $(( $(date +%s) - start )) s"
