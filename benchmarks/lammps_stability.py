"""Is the distilled student stable in long LAMMPS runs beyond its training data?

Two runs of the run's student (its committee beside it, so LAMMPS writes
``model_devi.out``) on a supercell of ≥ ``--natoms`` atoms of the first
structure, ``--steps`` steps each:

- NVT at ``--hot`` x the highest temperature the run explored or distilled at;
- NPT at the highest pressure it explored, at the highest temperature.

Positions are dumped every ``--dump-every`` steps. A run is stable when it
finishes, no two atoms come closer than 0.6x the sum of their covalent radii
in any dump (pfd's MD guard), and the temperature after the first 10 % of the
run stays within 0.5-1.5x the target. Printed per run: wall time, ms per
atom-step, temperature and volume ranges, closest contact, and the committee's
max force deviation (max, mean, share of frames above the run's threshold).

    python benchmarks/lammps_stability.py runs/si                 # both runs
    python benchmarks/lammps_stability.py runs/si --only nvt --steps 2000

Cost: 10 000 steps of 4096 Si atoms took ~20 min per run on 2 cores (2 MPI
ranks of 1 thread, 0.029 ms/atom-step).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np


def _hottest_and_pressure(run: Path) -> tuple[float, float | None]:
    """The hottest temperature and highest pressure of the run's exploration
    and of its teacher's MD for distillation (:func:`pfd.teacher.md_settings`)."""
    from pfd.state import recorded_config
    from pfd.teacher import md_settings

    config = recorded_config(run)
    both = [config.explore, md_settings(config.distill, config.explore)]
    temps = [t for c in both for t in c.temperatures_K]
    temps += [t for c in both for r in c.ramps for t in (r.start_K, r.stop_K)]
    pressures = [p for c in both for p in c.pressures_bar if p is not None]
    return max(temps), (max(pressures) if pressures else None)


def _thermo(log: str) -> np.ndarray:
    """Rows of LAMMPS' thermo table (step temp pe ke etotal press vol)."""
    rows = []
    for block in re.findall(r"\n\s*Step .*?\n(.*?)\nLoop time", log, re.S):
        for line in block.splitlines():
            parts = line.split()
            if len(parts) == 7:
                rows.append([float(x) for x in parts])
    return np.array(rows)


def stability_run(run: Path, name: str, temperature_K: float, pressure_bar, args):
    from ase.io import read

    from pfd.distillation import student_model
    from pfd.structures import too_close
    from pfd.students import make_student
    from pfd.students.committee import recorded_committee
    from pfd.students.deepmd import dp_env
    from pfd.students.lammps import lammps_binary, mpirun_binary, write_lammps_input

    config = json.loads((run / "config.json").read_text())
    atoms = read(config["structures"][0]["path"])
    committee = recorded_committee(run)
    models = committee.members if committee else [student_model(run)]
    from deepmd.infer import DeepPot

    type_map = DeepPot(str(models[0])).get_type_map()
    student = make_student("deepmd", type_map=type_map)
    out = run / "stability" / name
    write_lammps_input(
        atoms, student, models, type_map, out,
        natoms=args.natoms, steps=args.steps, temperature_K=temperature_K,
        pressure_bar=pressure_bar, dump_every=args.dump_every, seed=7,
    )  # fmt: skip
    command = [lammps_binary(), "-in", "in.lammps", "-log", "log.lammps"]
    if args.ranks > 1:
        command = [mpirun_binary(), "-np", str(args.ranks), *command]
    t0 = time.perf_counter()
    proc = subprocess.run(
        command, cwd=out, capture_output=True, text=True, env=dp_env(1), check=False
    )
    wall = time.perf_counter() - t0
    log = (out / "log.lammps").read_text() if (out / "log.lammps").exists() else ""
    natoms = int(re.search(r"(\d+) atoms", (out / "in.lammps").read_text())[1])
    thermo = _thermo(log)
    done = proc.returncode == 0 and len(thermo) and thermo[-1, 0] >= args.steps
    after = thermo[thermo[:, 0] >= 0.1 * args.steps] if len(thermo) else thermo
    temps = after[:, 1] if len(after) else np.array([np.nan])
    closest, broken = np.inf, None
    dumps = read(out / "dump.lammpstrj", ":", format="lammps-dump-text") if (
        out / "dump.lammpstrj"
    ).exists() else []  # fmt: skip
    from ase.neighborlist import neighbor_list

    for k, frame in enumerate(dumps):
        frame.set_chemical_symbols([type_map[t - 1] for t in frame.numbers])
        closest = min(closest, float(neighbor_list("d", frame, 3.0).min()))
        if broken is None and too_close(frame, 0.6):
            broken = k * args.dump_every
    low, high = 0.5 * temperature_K, 1.5 * temperature_K
    in_bounds = bool(np.all((temps > low) & (temps < high)))
    stable = bool(done) and broken is None and in_bounds
    devi_path = out / "model_devi.out"
    devi = np.loadtxt(devi_path, ndmin=2) if devi_path.exists() else None
    threshold = committee.threshold_eV_A if committee else None
    row = {
        "run": name,
        "natoms": natoms,
        "steps": int(thermo[-1, 0]) if len(thermo) else 0,
        "temperature_K": temperature_K,
        "pressure_bar": pressure_bar,
        "stable": stable,
        "finished": bool(done),
        "wall_s": wall,
        "ms_atom_step": 1000 * wall / max(args.steps, 1) / natoms,
        "T_range_K": [float(np.nanmin(temps)), float(np.nanmax(temps))],
        "volume_range_A3": [float(thermo[:, 6].min()), float(thermo[:, 6].max())]
        if len(thermo)
        else None,
        "closest_A": closest,
        "too_close_at_step": broken,
        "max_devi_f": None
        if devi is None
        else {
            "max": float(devi[:, 4].max()),
            "mean": float(devi[:, 4].mean()),
            "threshold": threshold,
            "above": float(np.mean(devi[:, 4] > threshold)) if threshold else None,
        },
    }
    if proc.returncode:
        row["error"] = (proc.stdout + proc.stderr)[-600:]
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--natoms", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--hot", type=float, default=1.2, help="x the hottest T")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks, 1 thread each")
    parser.add_argument("--dump-every", type=int, default=1000)
    parser.add_argument("--only", choices=["nvt", "npt"])
    args = parser.parse_args(argv)
    run = args.run_dir.resolve()
    hottest, pressure = _hottest_and_pressure(run)
    plans = [("nvt", args.hot * hottest, None)]
    if pressure is not None:
        plans.append(("npt", hottest, pressure))
    rows = []
    for name, temp, p in plans:
        if args.only and name != args.only:
            continue
        at = f"{temp:g} K" + (f", {p:g} bar" if p else "")
        print(f"{name}: {at} ...", flush=True)
        rows.append(stability_run(run, name, temp, p, args))
        print(json.dumps(rows[-1], indent=1), flush=True)
    (run / "stability" / "stability.json").write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
