#!/usr/bin/env bash
# Install pfd and everything it needs into ./.venv (idempotent; safe to rerun).
#   - Debian build dependencies of GPAW (libxc, OpenBLAS, FFTW)
#   - Debian's Quantum ESPRESSO 6.7 (pw.x + pseudopotentials) and CP2K 2023.1
#     (cp2k.psmp + GTH/MOLOPT data) for the qe and cp2k labellers
#   - torch==2.13.0 first, so that no multi-GB CUDA build is pulled in
#   - pfd with the SevenNet and CHGNet backends, GPAW labeller, DeePMD-kit (the
#     student; its PyTorch backend also runs DPA-2/DPA-3), Parsl and test tools
#   - .venv-mace: torch==2.13.0 and mace-torch, for model.backend: mace
#     (mace-torch pins e3nn 0.4.4, SevenNet and DeePMD-kit need e3nn >= 0.5, so
#     MACE gets its own environment; PFD_NO_MACE=1 skips it)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
missing=""
for pkg in libxc-dev libopenblas-dev libfftw3-dev \
    quantum-espresso quantum-espresso-data cp2k cp2k-data; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo ">> apt-get install$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    echo ">> creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch" 2>/dev/null || {
    echo ">> pip install torch==2.13.0 (CPU build)"
    $PIP install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
}
echo ">> pip install -e .[sevennet,chgnet,gpaw,parsl,deepmd,abacus,variants,dev]"
GPAW_CONFIG="$PWD/scripts/gpaw_siteconfig.py" \
    $PIP install -q -e ".[sevennet,chgnet,gpaw,parsl,deepmd,abacus,variants,dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import pfd, sevenn, gpaw, torch, deepmd, chgnet, abacuslite; print('>> pfd', \
pfd.__version__, '| torch', torch.__version__, '| sevenn', sevenn.__version__, '| gpaw', \
gpaw.__version__, '| deepmd-kit', deepmd.__version__, '| chgnet', chgnet.__version__)"

if [ "${PFD_NO_MACE:-0}" != 1 ] && ! .venv-mace/bin/python -c "import mace" 2>/dev/null; then
    echo ">> creating .venv-mace: torch==2.13.0 mace-torch==0.3.16 (model.backend: mace)"
    [ -x .venv-mace/bin/python ] || "$PYTHON" -m venv .venv-mace
    .venv-mace/bin/python -m pip install -q torch==2.13.0 mace-torch==0.3.16 2>&1 \
        | grep -v "^WARNING: Location" || true
    .venv-mace/bin/python -c "import mace, e3nn; print('>> mace-torch', \
mace.__version__, '| e3nn', e3nn.__version__)"
fi
