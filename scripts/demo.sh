#!/usr/bin/env bash
# The Si example end to end: install, fine-tune SevenNet-0 on GPAW labels until
# converged, show the run, and test the final model on held-out DFT frames.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/pfd run examples/si/pfd.yaml
.venv/bin/pfd status runs/si
echo ">> foundation model (SevenNet-0, untouched) on held-out DFT frames"
.venv/bin/pfd test 7net-0 examples/si/test_dft.extxyz --output runs/si/test_foundation.json
echo ">> fine-tuned model on the same frames"
.venv/bin/pfd test runs/si/final_model.pth examples/si/test_dft.extxyz --output runs/si/test_final.json
