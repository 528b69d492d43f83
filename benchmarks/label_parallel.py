"""Wall time of labelling the same Si frames one at a time vs side by side.

    .venv/bin/python benchmarks/label_parallel.py [--frames 6] [--workers 2]

Prints both wall times and their ratio (target on a 2-core machine: ~0.5).
Uses the Si example's GPAW preset on perturbed 8-atom diamond cells, through
the same runner ``pfd run`` uses (one process and one BLAS thread per job).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

from pfd.config import LabelerConfig
from pfd.db import RunDB
from pfd.label import make_labeler
from pfd.label.runner import label_frames
from pfd.structures import perturb


def timed(frames, workers: int, root: Path) -> float:
    db = RunDB(root / f"w{workers}.db")
    for k, atoms in enumerate(frames):
        db.add_pending(atoms, uid=f"f{k}", iteration=0, stage="init", source="bench")
    labeler = make_labeler(LabelerConfig(code="gpaw"))
    t0 = time.perf_counter()
    stats = label_frames(
        db,
        labeler,
        0,
        root / f"jobs{workers}",
        workers=workers,
        timeout_s=None,
        max_attempts=1,
    )
    assert stats.labelled == len(frames), stats
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    si = bulk("Si", "diamond", 5.43, cubic=True)
    frames = [perturb(si, rng, 0.05, 0.02) for _ in range(args.frames)]
    with tempfile.TemporaryDirectory() as tmp:
        serial = timed(frames, 1, Path(tmp))
        parallel = timed(frames, args.workers, Path(tmp))
    print(f"{'frames':>8} {'workers':>8} {'wall s':>8} {'s/frame':>8}")
    print(f"{args.frames:>8} {1:>8} {serial:>8.1f} {serial / args.frames:>8.1f}")
    per_frame = parallel / args.frames
    print(f"{args.frames:>8} {args.workers:>8} {parallel:>8.1f} {per_frame:>8.1f}")
    print(f"parallel / serial wall time: {parallel / serial:.2f}")


if __name__ == "__main__":
    main()
