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
from ase.io import read, write

from pfd.config import ExploreConfig, LabelerConfig
from pfd.explore import MDTask, run_md
from pfd.label import make_labeler
from pfd.models.sevennet import SevenNetBackend
from pfd.report.dft import DFTJobs
from pfd.structures import perturb

HERE = Path(__file__).parent
#: (file, temperature K, pressure bar or None for NVT) of each MD run
RUNS = [
    ("si.vasp", 600, None),
    ("si.vasp", 1200, 10000.0),
    ("sic.vasp", 900, None),
    ("sic.vasp", 1800, 10000.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "test_dft.extxyz")
    parser.add_argument("--per-trajectory", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    backend = SevenNetBackend(threads=1)
    calc = backend.calculator(backend.resolve("7net-0"))
    cfg = ExploreConfig(steps=300, sample_every=150, displacement_A=0.05, strain=0.02)
    frames = []
    for k, (path, temp, pressure) in enumerate(RUNS):
        atoms = read(HERE / path)
        atoms.info = {"structure": 0}
        traj = run_md(
            atoms, calc, MDTask(0, temp, temp, pressure, cfg.steps, 500 + k), cfg
        )
        for frame in traj.frames[-args.per_trajectory :]:
            frame.info = {"subset": f"{Path(path).stem} md-{temp}K"}
            frames.append(frame)
    rng = np.random.default_rng(7)
    for path in ("si.vasp", "sic.vasp"):
        frame = perturb(read(HERE / path), rng, 0.05, 0.0)
        frame.set_cell(frame.cell * 1.04, scale_atoms=True)
        frame.info = {"subset": f"{Path(path).stem} strained"}
        frames.append(frame)

    jobs = DFTJobs(
        make_labeler(LabelerConfig(code="gpaw")), HERE / "testset_work", args.workers
    )
    try:
        futures = [jobs.submit(frame, f"{i:03d}") for i, frame in enumerate(frames)]
        labelled = []
        for frame, future in zip(frames, futures, strict=True):
            result = future.result()
            result.info = dict(frame.info)
            labelled.append(result)
    finally:
        jobs.close()
    write(args.out, labelled)
    print(f"wrote {len(labelled)} frames to {args.out}")


if __name__ == "__main__":
    main()
