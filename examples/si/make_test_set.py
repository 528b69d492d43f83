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
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from ase.io import read, write

from pfd.config import ExploreConfig, LabelerConfig
from pfd.explore import MDTask, run_md
from pfd.label import make_labeler
from pfd.models.sevennet import SevenNetBackend
from pfd.structures import perturb

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "test_dft.extxyz")
    parser.add_argument("--per-trajectory", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    si = read(HERE / "si.vasp")
    si.info = {"structure": 0}
    backend = SevenNetBackend(threads=2)
    calc = backend.calculator(backend.resolve("7net-0"))
    cfg = ExploreConfig(steps=300, sample_every=150, displacement_A=0.05, strain=0.02)
    frames = []
    for k, (temp, pressure) in enumerate(
        [(600, None), (1200, None), (300, 10000.0), (1500, 10000.0), (900, 5000.0)]
    ):
        task = MDTask(0, temp, temp, pressure, cfg.steps, 1000 + k)
        traj = run_md(si, calc, task, cfg)
        for frame in traj.frames[-args.per_trajectory :]:
            frame.info["subset"] = f"md-{temp}K"
            frames.append(frame)
    rng = np.random.default_rng(2024)
    for strain in (-0.04, 0.04):
        frame = perturb(si, rng, 0.04, 0.0)
        frame.set_cell(frame.cell * (1 + strain), scale_atoms=True)
        frame.info = {"subset": "strained"}
        frames.append(frame)

    labeler = make_labeler(LabelerConfig(code="gpaw"))
    workdir = args.out.parent / "testset_work"
    jobs = []
    for i, _ in enumerate(frames):
        jobs.append(workdir / f"{i:03d}")
        jobs[-1].mkdir(parents=True, exist_ok=True)
    # one BLAS thread per DFT job (set OMP_NUM_THREADS=1), two jobs side by side
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
        results = list(pool.map(labeler.calculate, frames, [str(j) for j in jobs]))
    labelled = []
    for frame, result in zip(frames, results, strict=True):
        result.info = dict(frame.info)
        labelled.append(result)
    write(args.out, labelled)
    print(f"wrote {len(labelled)} frames to {args.out}")


if __name__ == "__main__":
    main()
