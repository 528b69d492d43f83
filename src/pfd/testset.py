"""Held-out DFT test sets for examples and benchmarks: frames no run trains on.

Frames come from MD with a given model (the untouched foundation, so that no
fine-tuned model chose them) at conditions and seeds of one's choosing, and are
labelled with a labeller's settings, one DFT job per frame under a work
directory that a rerun reads back (:class:`pfd.report.dft.DFTJobs`). Each frame
carries ``info['subset']``, so ``pfd test`` and the report give errors per
subset.
"""

from __future__ import annotations

from pathlib import Path

from ase import Atoms
from ase.io import write

from pfd.config import ExploreConfig, LabelerConfig
from pfd.explore import MDTask, run_md

#: one MD run: (temperature K, pressure bar or None for NVT, subset name)
Condition = tuple[float, float | None, str]


def md_frames(
    atoms: Atoms,
    calc,
    conditions: list[Condition],
    *,
    steps: int = 300,
    per_trajectory: int = 2,
    sample_every: int | None = None,
    seed: int = 500,
) -> list[Atoms]:
    """The last ``per_trajectory`` frames of a run at each condition, frames
    ``sample_every`` steps apart (default ``steps // per_trajectory``), each
    tagged with its subset."""
    cfg = ExploreConfig(
        steps=steps,
        sample_every=sample_every or max(1, steps // per_trajectory),
        displacement_A=0.05,
        strain=0.02 if all(atoms.pbc) else 0.0,
    )
    start = atoms.copy()
    start.info = {"structure": 0}
    frames = []
    for k, (temp, pressure, subset) in enumerate(conditions):
        task = MDTask(0, temp, temp, pressure, steps, seed + k)
        for frame in run_md(start, calc, task, cfg).frames[-per_trajectory:]:
            frame.info = {"subset": subset}
            frames.append(frame)
    return frames


def label_to_file(
    frames: list[Atoms], labeler: LabelerConfig, workdir: Path, out: Path, workers: int
) -> list[Atoms]:
    """Label ``frames`` (jobs ``workdir/NNN``, ``workers`` side by side) and
    write them, with their ``info``, to ``out`` (extxyz)."""
    from pfd.label import make_labeler
    from pfd.report.dft import DFTJobs

    jobs = DFTJobs(make_labeler(labeler), workdir, workers)
    try:
        futures = [jobs.submit(frame, f"{i:03d}") for i, frame in enumerate(frames)]
        labelled = []
        for frame, future in zip(frames, futures, strict=True):
            result = future.result()
            result.info = dict(frame.info)
            labelled.append(result)
    finally:
        jobs.close()
    write(out, labelled)
    return labelled
