"""Make the held-out DFT test set of the Si6 example (frames no run trains on).

Frames come from NVT MD of the cluster with the *untouched* foundation model
(SevenNet-0) at temperatures and seeds the loop does not use, labelled with the
example's GPAW preset (a box with 6 Å of vacuum, Γ only), each with
``info['subset']`` (``md-500K``, ``md-1000K``). Job directories stay under
``testset_work/`` (not in git): a rerun reads finished jobs back.

    # writes examples/molecule/test_dft.extxyz (6 GPAW jobs, ~50 s of one core each)
    OMP_NUM_THREADS=1 python examples/molecule/make_test_set.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ase.io import read

from pfd.config import LabelerConfig
from pfd.models.sevennet import SevenNetBackend
from pfd.testset import label_to_file, md_frames

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "test_dft.extxyz")
    parser.add_argument("--per-trajectory", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    backend = SevenNetBackend(threads=1)
    calc = backend.calculator(backend.resolve("7net-0"))
    conditions = [(500, None, "md-500K"), (1000, None, "md-1000K")]
    frames = md_frames(
        read(HERE / "si6.xyz"), calc, conditions, per_trajectory=args.per_trajectory
    )
    work = HERE / "testset_work"
    labelled = label_to_file(
        frames, LabelerConfig(code="gpaw"), work, args.out, args.workers
    )
    print(f"wrote {len(labelled)} frames to {args.out}")


if __name__ == "__main__":
    main()
