"""Each section of the report: the analyses run for every model, plotted.

A section function returns the JSON-able numbers that ``report.json`` and the
page show; its figure goes to ``out``. DFT runs as another "model" through
:class:`pfd.report.dft.JobCalculator` where a section's settings ask for it.
The vacancy and surface sections are in :mod:`pfd.report.defects`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ase import Atoms

from pfd.analysis import (
    compare_speed,
    diffusion,
    eos_points,
    equation_of_state,
    errors_of,
    md_rdf,
    phonon_bands,
    predict,
)
from pfd.analysis._common import structure_name
from pfd.analysis.errors import errors_by_group
from pfd.config import (
    DiffusionReportConfig,
    EOSReportConfig,
    PhononReportConfig,
    RunConfig,
    SpeedReportConfig,
)
from pfd.report import plots
from pfd.report.dft import DFTJobs, JobCalculator
from pfd.report.models import Model
from pfd.state import RunState

#: LAMMPS MD steps timed per size in the speed section
LAMMPS_STEPS = 20


def slug(name: str) -> str:
    """``name`` as a file-name part."""
    return "".join(c if c.isalnum() else "_" for c in name)


def crystals(structures: list[Atoms]) -> list[tuple[str, Atoms]]:
    """(name, atoms) of each periodic structure."""
    return [(structure_name(a), a) for a in structures if all(a.pbc)]


def errors_section(
    models: list[Model], datasets: dict[str, list[Atoms]], out: Path
) -> dict:
    """RMSE/MAE per data set and model; parity plots of E/atom, F, stress."""
    result: dict[str, dict] = {}
    for dname, frames in datasets.items():
        preds = {m.name: predict(frames, m) for m in models}
        result[dname] = {k: errors_of(p).as_dict() for k, p in preds.items()}
        title = f"parity on {dname} ({len(frames)} frames)"
        plots.parity(title, preds, out / f"parity_{dname}.png")
    return result


def subset_errors_section(
    models: list[Model], datasets: dict[str, list[Atoms]]
) -> dict:
    """``{data set: {subset or material: {model: errors}}}`` of the data sets
    whose frames fall in groups (:func:`pfd.analysis.errors.errors_by_group`)."""
    result: dict[str, dict] = {}
    for dname, frames in datasets.items():
        groups = {m.name: errors_by_group(frames, predict(frames, m)) for m in models}
        names = next(iter(groups.values()), {})
        if len(names) > 1:  # one group: the data set's own errors
            result[dname] = {
                g: {k: found[g].as_dict() for k, found in groups.items()} for g in names
            }
    return result


def learning_curve(state: RunState, config: RunConfig, out: Path) -> dict:
    """New-frame errors of each iteration against the DFT labels it was trained on."""
    keys = ("iteration", "trained_on", "force_rmse_eV_A", "energy_rmse_eV_atom")
    rows = []
    if state.foundation:
        f = state.foundation
        rows.append((0, 0, f["force_rmse_eV_A"], f["energy_rmse_eV_atom"]))
    rows += [
        (r.iteration, r.n_train, r.force_rmse_eV_A, r.energy_rmse_eV_atom)
        for r in state.iterations
        if r.force_rmse_eV_A is not None
    ]
    table = [dict(zip(keys, r, strict=True)) for r in rows]
    conv = config.convergence
    plots.learning_curve(
        table,
        conv.force_rmse_eV_A,
        conv.energy_rmse_eV_atom,
        out / "learning_curve.png",
    )
    return {"rows": table}


def per_crystal(
    models: list[Model],
    structures: list[Atoms],
    analyse: Callable[[Any, Atoms, Any], Any],
    settings: EOSReportConfig | PhononReportConfig,
    jobs: DFTJobs | None,
    prefix: str,
    frames: Callable[[Atoms], list[Atoms]] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{structure: {model: analyse(model, atoms, settings)}}`` of each crystal.

    With ``settings.dft``, DFT too (jobs ``PREFIX-STRUCTURE-k``); the jobs of
    ``frames(atoms)`` (the geometries ``analyse`` asks for, in order) start
    first, side by side, while the models compute.
    """
    result = {}
    for name, atoms in crystals(structures):
        dft = None
        if settings.dft and jobs is not None:
            dft = JobCalculator(jobs, f"{prefix}-{slug(name)}")
            dft.prefetch(frames(atoms) if frames else [])
        found = {m.name: analyse(m, atoms, settings) for m in models}
        if dft is not None:
            found["DFT"] = analyse(dft, atoms, settings)
        result[name] = found
    return result


def eos_section(
    models: list[Model],
    structures: list[Atoms],
    settings: EOSReportConfig,
    jobs: DFTJobs | None,
    out: Path,
) -> dict:
    """E(V) per structure and model (per atom), and DFT at the same volumes."""
    volumes = (settings.points, settings.volume_range)
    found = per_crystal(
        models,
        structures,
        equation_of_state,
        settings,
        jobs,
        "eos",
        lambda atoms: eos_points(atoms, *volumes),
    )
    result = {}
    for name, curves in found.items():
        result[name] = {
            "volumes_A3_atom": next(iter(curves.values())).volumes_A3_atom,
            "energies_eV_atom": {k: c.energies_eV_atom for k, c in curves.items()},
            "fit": {k: asdict(c.fit) for k, c in curves.items()},
        }
        plots.eos(name, curves, out / f"eos_{slug(name)}.png")
    return result


def phonon_section(
    models: list[Model],
    structures: list[Atoms],
    settings: PhononReportConfig,
    jobs: DFTJobs | None,
    out: Path,
) -> dict:
    """Phonon bands per structure and model, and DFT phonons when asked for."""
    found = per_crystal(models, structures, phonon_bands, settings, jobs, "phonon")
    for name, bands in found.items():
        plots.phonons(name, bands, out / f"phonons_{slug(name)}.png")
    return {
        name: {k: b.to_dict() for k, b in bands.items()}
        for name, bands in found.items()
    }


def diffusion_section(
    models: list[Model],
    structures: list[Atoms],
    settings: DiffusionReportConfig,
    temperatures_K: list[float],
    out: Path,
) -> dict:
    """MSD, D and Arrhenius of the fastest model; its RDF beside the teacher's."""
    by_name = {m.name: m for m in models}
    mover = by_name.get("student") or by_name.get("teacher") or models[0]
    atoms = structures[0]
    result = diffusion(mover, atoms, settings, temperatures_K=temperatures_K)
    rdfs = {mover.name: result.rdf}
    teacher = by_name.get("teacher")
    if teacher is not None and teacher is not mover:
        hottest = result.runs[-1].temperature_K
        rdfs["teacher"] = md_rdf(teacher, atoms, hottest, settings)
    plots.diffusion(mover.name, result, rdfs, out / "diffusion.png")
    numbers = result.to_dict()
    numbers["rdf"] = {k: asdict(g) for k, g in rdfs.items()}
    return {"model": mover.name, **numbers}


def speed_section(
    models: list[Model],
    structures: list[Atoms],
    settings: SpeedReportConfig,
    threads: int,
    out: Path,
) -> dict:
    """ms per atom-step of each model; student against teacher at equal size."""
    named = {m.name: m for m in models}
    result = compare_speed(named, structures[0], settings, threads=threads)
    plots.speed(result.ms_per_atom_step, threads, out / "speed.png")
    teacher = result.ms_per_atom_step.get("teacher", {})
    return result.to_dict() | lammps_column(
        named, structures[0], settings, threads, teacher
    )


def lammps_column(
    named: dict[str, Model],
    atoms: Atoms,
    settings: SpeedReportConfig,
    threads: int,
    teacher_ms: dict[int, float],
) -> dict:
    """The student in LAMMPS at the speed section's sizes, and its speed-up over
    the teacher in ASE at the largest size both ran (empty without ``lmp``)."""
    from pfd.analysis.speed import speed_cells
    from pfd.students.lammps import student_lammps_speed

    student = named.get("student")
    if student is None:
        return {}
    from pfd.students.lammps import mpirun_binary

    cells = speed_cells(atoms, settings)[0]
    ranks = threads if mpirun_binary() else 1  # one rank per core, 1 thread each
    table = student_lammps_speed(student.path, cells, LAMMPS_STEPS, threads, ranks)
    common = set(table) & set(teacher_ms)
    size = max(common) if common else None
    return {
        "lammps_ms_per_atom_step": {str(n): v for n, v in table.items()},
        "lammps_ranks": ranks,
        "lammps_equal_size_atoms": size,
        "lammps_speedup": teacher_ms[size] / table[size] if size else None,
    }
