"""Does the committee's deviation find the frames the student gets wrong?

Trains (or reuses) a committee of students on a finished run's teacher frames
(``pfd distill RUN_DIR`` with ``distill.committee`` members, members 2..N
trained ``--steps`` steps), then on both DFT test sets of the Si example prints
per subset the shipped student's force RMSE beside the committee's max force
deviation (DeePMD's ``max_devi_f``: mean and max over frames); over the union
of the sets, how many of the top 20 % frames by deviation are among the top
20 % by force error; and, for each frame of a phase the run never saw
(beta-tin, liquid), whether its deviation is above the run's flag threshold.

    python benchmarks/committee.py runs/si               # 4 members, 4000 steps
    python benchmarks/committee.py runs/si --members 3 --steps 3000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from ase.io import read

ROOT = Path(__file__).resolve().parent.parent
SETS = [
    ROOT / "examples" / "si" / "test_dft.extxyz",
    ROOT / "examples" / "si" / "broad_test_dft.extxyz",
]
#: subsets of phases the run never saw: each frame should be flagged
UNSEEN = ("beta-tin", "liquid")
TOP = 0.2


def train_committee(run_dir: Path, members: int, steps: int) -> float:
    """``pfd distill RUN_DIR`` with a committee (finished parts reused); seconds."""
    from pfd.distillation import run_distill
    from pfd.progress import Reporter
    from pfd.state import recorded_config

    config = recorded_config(run_dir)
    distill = config.distill.model_copy(
        update={"committee": members, "committee_steps": steps}
    )
    t0 = time.perf_counter()
    run_distill(config.model_copy(update={"distill": distill}), Reporter())
    return time.perf_counter() - t0


def score(run_dir: Path, sets: list[Path], threads: int) -> dict:
    """Per frame: the student's force errors and the committee's deviation."""
    from pfd.analysis.errors import predict
    from pfd.calculators import load_calculator
    from pfd.students.committee import deviation, recorded_committee

    committee = recorded_committee(run_dir)
    student = load_calculator(committee.members[0], threads=threads)
    rows = []
    for path in sets:
        frames = read(path, ":")
        dev = deviation(committee.members, frames, threads=threads)
        for atoms, pred, d, e in zip(
            frames,
            predict(frames, student),
            dev.max_force_eV_A,
            dev.energy_eV_atom,
            strict=True,
        ):
            diff = pred.forces[1] - pred.forces[0]
            rows.append(
                {
                    "set": path.stem,
                    "subset": str(atoms.info.get("subset", "all")),
                    "natoms": len(atoms),
                    "force_rmse_eV_A": float(np.sqrt(np.mean(diff**2))),
                    "max_force_error_eV_A": float(np.linalg.norm(diff, axis=1).max()),
                    "max_devi_f_eV_A": float(d),
                    "devi_e_eV_atom": float(e),
                }
            )
    return {
        "members": [str(m) for m in committee.members],
        "threshold_eV_A": committee.threshold_eV_A,
        "threshold_from": committee.threshold_from,
        "frames": rows,
    }


def report(result: dict, like_training: str) -> None:
    """The table, the overlap and the flags (``like_training``: that set's name)."""
    from pfd.students.committee import ranking

    rows, threshold = result["frames"], result["threshold_eV_A"]
    print(f"committee: {', '.join(Path(m).name for m in result['members'])}")
    print("per subset: frames | student F RMSE eV/Å | max_devi_f mean / max eV/Å")
    for key in dict.fromkeys((r["set"], r["subset"]) for r in rows):
        sub = [r for r in rows if (r["set"], r["subset"]) == key]
        err = np.sqrt(np.mean([r["force_rmse_eV_A"] ** 2 for r in sub]))
        dev = [r["max_devi_f_eV_A"] for r in sub]
        name = f"{key[0]}/{key[1]}"
        print(
            f"  {name:36s} {len(sub):3d} | {err:6.3f} | "
            f"{np.mean(dev):.3f} / {np.max(dev):.3f}"
        )
    dev = [r["max_devi_f_eV_A"] for r in rows]
    for key, label in (("force_rmse_eV_A", "force RMSE"),
                       ("max_force_error_eV_A", "max atomic force error")):  # fmt: skip
        rank = ranking(np.array(dev), np.array([r[key] for r in rows]), TOP)
        print(
            f"top {TOP:.0%} by deviation vs top {TOP:.0%} by {label} over "
            f"{len(rows)} frames: {rank['top_shared']}/{rank['top_n']} shared "
            f"(Spearman {rank['spearman']:.2f})"
        )
    held = [r["max_devi_f_eV_A"] for r in rows if r["set"] == like_training]
    alt = 2 * np.percentile(held, 95)
    print(
        f"threshold {threshold:.3f} eV/Å ({result['threshold_from']}); "
        f"2x the 95th percentile on {like_training}: {alt:.3f}"
    )
    for r in rows:
        if r["subset"] in UNSEEN:
            flag = "FLAGGED" if r["max_devi_f_eV_A"] > threshold else "not flagged"
            print(
                f"  {r['subset']:9s} {r['natoms']:3d} atoms: max_devi_f "
                f"{r['max_devi_f_eV_A']:.3f} eV/Å, student F RMSE "
                f"{r['force_rmse_eV_A']:.3f}: {flag}"
            )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4000, help="of members 2..N")
    parser.add_argument(
        "--data", type=Path, action="append", help="test sets, training-like first"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS"):
        os.environ[var] = str(args.threads)
    run_dir = args.run_dir.resolve()
    check_file = run_dir / "student" / "check.json"
    before = json.loads(check_file.read_text())  # a rerun records reuse times
    seconds = train_committee(run_dir, args.members, args.steps)
    took = json.loads(check_file.read_text())["committee"]["seconds"]
    print(
        f"committee ready in {seconds:.0f} s; per member (trained, or reused): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in took.items())
        + f" ({args.steps} steps); the shipped student, as first recorded: "
        f"{before['seconds']['train_round_1']:.0f} s, {before['steps']} steps"
    )
    sets = args.data or SETS
    result = score(run_dir, sets, args.threads)
    result |= {"train_seconds": took, "steps": args.steps}
    report(result, sets[0].stem)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
