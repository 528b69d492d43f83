"""Make a held-out DFT test set for the Si example (frames no run trains on).

Frames come from MD with the *foundation* model (not the fine-tuned one, and with
other seeds) at 300-1500 K, NVT and NPT at 1 GPa, plus strained and rattled
cells; each is labelled with the same GPAW preset as the example and carries
``info['subset']`` so ``pfd test`` reports errors per subset.

    python examples/si/make_test_set.py            # writes examples/si/test_dft.extxyz
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
from pfd.structures import perturb

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "test_dft.extxyz")
    parser.add_argument("--per-trajectory", type=int, default=2)
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
    labelled = []
    for i, frame in enumerate(frames):
        job = workdir / f"{i:03d}"
        job.mkdir(parents=True, exist_ok=True)
        result = labeler.calculate(frame, str(job))
        result.info = dict(frame.info)
        labelled.append(result)
        print(f"{i + 1}/{len(frames)} {frame.info['subset']}", flush=True)
    write(args.out, labelled)
    print(f"wrote {len(labelled)} frames to {args.out}")


if __name__ == "__main__":
    main()
