#!/usr/bin/env bash
# The Si example end to end: install, fine-tune SevenNet-0 on GPAW labels until
# converged, distil it into a DeePMD student, show the run, and test the models
# on held-out DFT frames; run the student in LAMMPS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/pfd run examples/si/pfd.yaml
.venv/bin/pfd status runs/si
echo ">> foundation model (SevenNet-0, untouched) on held-out DFT frames"
.venv/bin/pfd test 7net-0 examples/si/test_dft.extxyz --output runs/si/test_foundation.json
echo ">> fine-tuned model on the same frames"
.venv/bin/pfd test runs/si/final_model.pth examples/si/test_dft.extxyz --output runs/si/test_final.json
echo ">> distilled DeePMD student on the same frames"
.venv/bin/pfd test runs/si/student/graph_c.pb examples/si/test_dft.extxyz --output runs/si/test_student.json
echo ">> the student in LAMMPS: 100 steps of NVT, $(grep -m1 -o '[0-9]* atoms' runs/si/student/lammps/in.lammps)"
# one MPI rank per core, one OpenMP thread each (DeePMD's fastest on CPU)
(cd runs/si/student/lammps && OMP_NUM_THREADS=1 ../../../../.venv/bin/mpirun -np 2 \
  ../../../../.venv/bin/lmp -var STEPS 100 -in in.lammps -log demo.log | grep -E "^Loop time|^Performance")
