"""The vacancy and surface sections: each model relaxes, DFT at the teacher's atoms.

Both compare models and DFT in one cell: the DFT reference is single points
of the perfect cell (or bulk crystal) and of the teacher-relaxed defect (or
slab), which bounds DFT's own relaxed value from above. A section submits its
DFT jobs and returns :class:`Later`; :mod:`pfd.report.build` finishes it once
the other such sections have submitted theirs, so their jobs run side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ase import Atoms

from pfd.analysis._common import relax_positions, structure_name
from pfd.analysis.surface import (
    J_M2_PER_EV_A2,
    slab_energy,
    surface_area,
    surface_energy,
    surface_slabs,
)
from pfd.analysis.vacancy import formation_energy, vacancy_energy, vacancy_supercell
from pfd.config import VacancyReportConfig
from pfd.config.report import SurfaceReportConfig
from pfd.report.dft import DFTJobs, JobCalculator
from pfd.report.models import Model
from pfd.report.sections import slug

REFERENCE = "teacher"  # the model whose relaxed atoms DFT is run at
DEFAULT_CUT = "the default [1, 0, 0] (no variants.surfaces; report.surfaces.miller)"


@dataclass(frozen=True)
class Later:
    """A section's numbers once its DFT jobs are done: ``finish()``."""

    finish: Callable[[], dict]


def vacancy_section(
    models: list[Model],
    structures: list[Atoms],
    settings: VacancyReportConfig,
    jobs: DFTJobs | None,
) -> dict | Later:
    """Vacancy formation energy per structure and model; DFT in the same cell."""
    numbers: dict[str, dict] = {}
    started: dict[str, tuple[Future, Future]] = {}
    for atoms in structures:
        cell = vacancy_supercell(atoms, settings)
        if cell is None:
            continue
        name = structure_name(atoms)
        fmax, steps = settings.fmax_eV_A, settings.max_steps
        found = {m.name: vacancy_energy(m, cell, fmax, steps) for m in models}
        numbers[name] = {k: v.to_dict() for k, v in found.items()}
        if settings.dft and jobs is not None and REFERENCE in found:
            prefix = f"vacancy-{slug(name)}"
            defect = found[REFERENCE].relaxed
            started[name] = (
                jobs.submit(cell, f"{prefix}-perfect"),
                jobs.submit(defect, f"{prefix}-defect"),
            )
    if not started:
        return numbers

    def finish() -> dict:
        for name, (perfect, defect) in started.items():
            numbers[name]["DFT"] = _dft_vacancy(
                perfect.result(), defect.result(), settings, jobs, name
            )
        return numbers

    return Later(finish)


def _dft_vacancy(
    perfect: Atoms,
    defect: Atoms,
    settings: VacancyReportConfig,
    jobs: DFTJobs,
    name: str,
) -> dict[str, Any]:
    """DFT E_f at the teacher's vacancy and, with ``dft_relax``, DFT-relaxed."""
    n = len(perfect)
    e_perfect = perfect.get_potential_energy()
    found: dict[str, Any] = {
        "natoms": n,
        "at_teacher_geometry_eV": formation_energy(
            defect.get_potential_energy(), e_perfect, n
        ),
    }
    if settings.dft_relax:
        calc = JobCalculator(jobs, f"vacancy-{slug(name)}-relax")
        calc.atoms, calc.results = defect.copy(), dict(defect.calc.results)
        _, e_relaxed, converged = relax_positions(
            defect, calc, settings.fmax_eV_A, settings.dft_relax_steps
        )
        found["relaxed_eV"] = formation_energy(e_relaxed, e_perfect, n)
        found["relax_steps"] = calc.jobs
        found["converged"] = converged
    return found


def report_slabs(
    inputs: list[tuple[Atoms, Any]], settings: SurfaceReportConfig
) -> list[tuple[Atoms, list[Atoms], str]]:
    """(crystal, its slabs, where the Miller indices came from) per input.

    ``settings.miller`` if given; else the structure's ``variants.surfaces``
    (the loop's slabs: their layers and vacuum); else [[1, 0, 0]].
    """
    found = []
    for atoms, cfg in inputs:
        variants = getattr(cfg, "variants", None)
        generated = list(getattr(variants, "surfaces", None) or [])
        if settings.miller is None and generated:
            update = {"layers": variants.layers, "vacuum_A": variants.vacuum_A}
            cut = surface_slabs(atoms, generated, settings.model_copy(update=update))
            source = "structures.variants.surfaces"
        else:
            cut = surface_slabs(atoms, settings.miller or [(1, 0, 0)], settings)
            source = "report.surfaces.miller" if settings.miller else DEFAULT_CUT
        if cut:
            found.append((atoms, cut, source))
    return found


def surface_section(
    models: list[Model],
    slabs: list[tuple[Atoms, list[Atoms], str]],
    settings: SurfaceReportConfig,
    jobs: DFTJobs | None,
) -> dict | Later:
    """Surface energy per slab and model; DFT at the teacher-relaxed slab."""
    numbers: dict[str, dict] = {}
    started: dict[str, tuple[Future, Future]] = {}
    for bulk, cuts, source in slabs:
        for slab in cuts:
            name = structure_name(slab)
            found = {m.name: slab_energy(m, slab, bulk, settings) for m in models}
            numbers[name] = {
                "miller": slab.info["miller"],
                "natoms": len(slab),
                "area_A2": surface_area(slab),
                "miller_from": source,
                "models": {k: v.to_dict() for k, v in found.items()},
            }
            if settings.dft and jobs is not None and REFERENCE in found:
                started[name] = (
                    jobs.submit(found[REFERENCE].relaxed, f"surface-{slug(name)}"),
                    jobs.submit(bulk, f"surface-{slug(structure_name(bulk))}-bulk"),
                )
    if not started:
        return numbers

    def finish() -> dict:
        for name, futures in started.items():
            slab, bulk = (f.result() for f in futures)
            e_bulk = bulk.get_potential_energy() / len(bulk)
            gamma = surface_energy(
                slab.get_potential_energy(), len(slab), e_bulk, surface_area(slab)
            )
            numbers[name]["DFT"] = {
                "bulk_eV_atom": e_bulk,
                "at_teacher_geometry_eV_A2": gamma,
                "at_teacher_geometry_J_m2": gamma * J_M2_PER_EV_A2,
            }
        return numbers

    return Later(finish)
