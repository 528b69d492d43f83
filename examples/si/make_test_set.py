"""Make a held-out DFT test set for the Si example (frames no run trains on).

Frames come from MD with the *foundation* model (not the fine-tuned one, and with
other seeds) at 300-1500 K, NVT and NPT at 1 GPa, plus strained and rattled
cells; each is labelled with the same GPAW preset as the example and carries
``info['subset']`` so ``pfd test`` reports errors per subset.

    # writes examples/si/test_dft.extxyz
    OMP_NUM_THREADS=1 python examples/si/make_test_set.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase.io import read

from pfd.config import LabelerConfig
from pfd.models.sevennet import SevenNetBackend
from pfd.structures import perturb
from pfd.testset import label_to_file, md_frames

HERE = Path(__file__).parent
#: (temperature K, pressure bar or None for NVT) of each MD run
RUNS = [(600, None), (1200, None), (300, 10000.0), (1500, 10000.0), (900, 5000.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "test_dft.extxyz")
    parser.add_argument("--per-trajectory", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    si = read(HERE / "si.vasp")
    backend = SevenNetBackend(threads=2)
    calc = backend.calculator(backend.resolve("7net-0"))
    conditions = [(t, p, f"md-{t}K") for t, p in RUNS]
    frames = md_frames(
        si, calc, conditions, per_trajectory=args.per_trajectory, sample_every=150,
        seed=1000,
    )  # fmt: skip
    rng = np.random.default_rng(2024)
    for strain in (-0.04, 0.04):
        frame = perturb(si, rng, 0.04, 0.0)
        frame.set_cell(frame.cell * (1 + strain), scale_atoms=True)
        frame.info = {"subset": "strained"}
        frames.append(frame)
    # one BLAS thread per DFT job (set OMP_NUM_THREADS=1), jobs side by side
    work = args.out.parent / "testset_work"
    labelled = label_to_file(
        frames, LabelerConfig(code="gpaw"), work, args.out, args.workers
    )
    print(f"wrote {len(labelled)} frames to {args.out}")


if __name__ == "__main__":
    main()
