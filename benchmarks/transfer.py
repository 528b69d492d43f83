"""Errors of a run's models where users go: per subset of DFT test sets.

The foundation model (untouched but for its per-element energy zero, refitted
to the run's own DFT labels as the loop does before training), the fine-tuned
teacher and the student, side by side on every ``info['subset']`` of each test
set: the example's held-out MD frames and the broad set of phases, defects,
surfaces, a melt and large strains that the loop never explores. A teacher
worse than the foundation on a subset has forgotten there.

    python benchmarks/transfer.py runs/si
    python benchmarks/transfer.py runs/si --data examples/si/broad_test_dft.extxyz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ase.io import read

import pfd
from pfd.analysis.errors import evaluate_by_subset
from pfd.models import make_backend
from pfd.state import recorded_config

ROOT = Path(__file__).resolve().parent.parent
SETS = [
    ROOT / "examples" / "si" / "test_dft.extxyz",
    ROOT / "examples" / "si" / "broad_test_dft.extxyz",
]


def models(run_dir: Path, threads: int) -> dict[str, object]:
    """Calculators of the run's foundation (E0 refitted), teacher and student."""
    config = recorded_config(run_dir)
    layout = pfd.RunLayout(run_dir)
    backend = make_backend(config.model.model_copy(update={"threads": threads}))
    foundation = backend.resolve(config.model.checkpoint)
    dft = read(layout.dft, ":")
    refit = backend.refit_e0(foundation, dft, layout.root / "transfer" / "e0.pth")
    out = {
        "foundation (E0 refit)": backend.calculator(refit),
        "teacher": backend.calculator(layout.final_model),
    }
    student = layout.student / "graph_c.pb"
    if student.exists():
        out["student"] = pfd.load_calculator(student, threads=threads)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data", type=Path, action="append", help="test sets")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    calcs = models(args.run_dir.resolve(), args.threads)
    table: dict[str, dict[str, dict]] = {}
    for path in args.data or SETS:
        frames = read(path, ":")
        for name, calc in calcs.items():
            for subset, errs in evaluate_by_subset(frames, calc).items():
                key = f"{path.stem}/{subset}"
                table.setdefault(key, {})[name] = errs.as_dict()
    names = list(calcs)
    ratio = "student" in calcs
    print(
        "F RMSE eV/Å | E RMSE meV/atom per subset: " + " | ".join(names)
        + (" | student/teacher F, E" if ratio else "")
    )  # fmt: skip
    for key, row in table.items():
        n = next(iter(row.values()))["n_frames"]
        cells = [_cell(row[m]) for m in names]
        if ratio:
            cells.append(_ratio(row["student"], row["teacher"]))
        print(f"{key:40s} ({n:2d}) " + " | ".join(cells))
    if ratio:
        _student_verdict(table)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return table


def _ratio(student: dict, teacher: dict) -> str:
    force = student["force_rmse_eV_A"] / teacher["force_rmse_eV_A"]
    energy = student["energy_rmse_eV_atom"] / max(teacher["energy_rmse_eV_atom"], 1e-9)
    return f"{force:.2f}x, {energy:.2f}x"


def _student_verdict(table: dict[str, dict[str, dict]]) -> None:
    """Issue #16's bar per test set: student energy within 3x the teacher's on
    every subset, force within 1.5x overall, no subset above 50 meV/atom."""
    for stem in dict.fromkeys(k.split("/")[0] for k in table):
        rows = {k.split("/", 1)[1]: v for k, v in table.items() if k.startswith(stem)}
        subsets = {k: v for k, v in rows.items() if k != "all"}
        worse = [
            k for k, v in subsets.items() if _e(v["student"]) > 3 * _e(v["teacher"])
        ]
        off = [k for k, v in subsets.items() if _e(v["student"]) > 50]
        student, teacher = rows["all"]["student"], rows["all"]["teacher"]
        force = student["force_rmse_eV_A"] / teacher["force_rmse_eV_A"]
        print(
            f"{stem}: student force {force:.2f}x the teacher's overall (bar 1.5x); "
            f"energy above 3x the teacher's on {worse or 'no subset'}; "
            f"above 50 meV/atom on {off or 'no subset'}"
        )


def _e(errs: dict) -> float:
    return errs["energy_rmse_eV_atom"] * 1e3


def _cell(errs: dict) -> str:
    return f"{errs['force_rmse_eV_A']:.3f} / {errs['energy_rmse_eV_atom'] * 1e3:.1f}"


if __name__ == "__main__":
    main()
