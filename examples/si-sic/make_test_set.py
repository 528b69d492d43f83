"""Make the held-out DFT test set of the Si + SiC example (frames no run trains on).

For each material, frames come from MD with the *untouched* foundation model
(SevenNet-0; other seeds and temperatures than the loop's) and from strained,
rattled cells. Each is labelled with the example's GPAW preset and carries
``info['subset']`` (``si md-600K``, ``sic strained``, ...), so ``pfd test``
prints errors per material and condition. Job directories stay under
``testset_work/`` (not in git): a rerun reads finished jobs back.

    # writes examples/si-sic/test_dft.extxyz
    OMP_NUM_THREADS=1 python examples/si-sic/make_test_set.py
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
#: per material: (temperature K, pressure bar or None for NVT) of each MD run
RUNS = {
    "si": [(600, None), (1200, 10000.0)],
    "sic": [(900, None), (1800, 10000.0)],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "test_dft.extxyz")
    parser.add_argument("--per-trajectory", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    backend = SevenNetBackend(threads=1)
    calc = backend.calculator(backend.resolve("7net-0"))
    rng = np.random.default_rng(7)
    frames = []
    for k, (name, runs) in enumerate(RUNS.items()):
        atoms = read(HERE / f"{name}.vasp")
        conditions = [(t, p, f"{name} md-{t}K") for t, p in runs]
        frames += md_frames(
            atoms,
            calc,
            conditions,
            per_trajectory=args.per_trajectory,
            seed=500 + 2 * k,
        )
    for name in RUNS:
        frame = perturb(read(HERE / f"{name}.vasp"), rng, 0.05, 0.0)
        frame.set_cell(frame.cell * 1.04, scale_atoms=True)
        frame.info = {"subset": f"{name} strained"}
        frames.append(frame)
    work = HERE / "testset_work"
    labelled = label_to_file(
        frames, LabelerConfig(code="gpaw"), work, args.out, args.workers
    )
    print(f"wrote {len(labelled)} frames to {args.out}")


if __name__ == "__main__":
    main()
