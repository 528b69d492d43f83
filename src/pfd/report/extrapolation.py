"""Where each number of the report leaves the student's knowledge.

A run distilled with a committee (``distill.committee`` >= 2) ships students
that agree where their training data was and disagree elsewhere. For the
geometries each analysis of the page visits (the EOS volumes, a phonon
displacement, the student-relaxed vacancy, the slabs, the student's MD at each
diffusion temperature, the labelled frames of the error tables) this section
gives the committee's max force deviation (DeePMD's ``max_devi_f``) and counts
the geometries above the run's threshold: a flagged analysis is one whose
student number rests on extrapolation.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from pfd.analysis._common import supercell
from pfd.analysis.diffusion import msd_run
from pfd.analysis.eos import eos_points
from pfd.analysis.vacancy import vacancy_energy, vacancy_supercell
from pfd.config import ReportConfig
from pfd.report.cache import file_digest
from pfd.report.models import Model
from pfd.report.sections import crystals
from pfd.students.committee import Committee, committee_deviation, summarize

#: student MD steps per diffusion temperature whose frames the committee scores
MD_STEPS = 200


def committee_key(committee: Committee | None) -> list[str] | None:
    """What the section's numbers depend on besides the report's models."""
    if committee is None:
        return None
    return [file_digest(m) for m in committee.members] + [
        str(committee.threshold_eV_A),
        str(committee.ranking),
    ]


def visited(
    student: Model,
    structures: list[Atoms],
    slabs: list[tuple[Atoms, list[Atoms], str]],
    datasets: dict[str, list[Atoms]],
    settings: ReportConfig,
    temperatures_K: list[float],
) -> dict[str, list[Atoms]]:
    """``{analysis: its geometries}`` of the page's enabled analyses."""
    found: dict[str, list[Atoms]] = {f"errors: {k}": v for k, v in datasets.items()}
    eos, phonons, vacancy = settings.eos, settings.phonons, settings.vacancy
    for name, atoms in crystals(structures):
        if eos.enabled:
            found[f"EOS: {name}"] = eos_points(atoms, eos.points, eos.volume_range)
        if phonons.enabled:
            displaced = atoms.repeat(phonons.supercell)
            displaced.positions[0, 0] += phonons.displacement_A
            found[f"phonons: {name}"] = [displaced]
        cell = vacancy_supercell(atoms, vacancy) if vacancy.enabled else None
        if cell is not None:
            relaxed = vacancy_energy(
                student, cell, vacancy.fmax_eV_A, vacancy.max_steps
            ).relaxed
            found[f"vacancy: {name} (student-relaxed)"] = [cell, relaxed]
    for atoms, cut, _ in slabs:
        found[f"surfaces: {atoms.info.get('name', '')}"] = cut
    diff = settings.diffusion
    if diff.enabled and structures and all(structures[0].pbc):
        cell = supercell(structures[0], diff.min_atoms)
        for seed, temp in enumerate(sorted(temperatures_K)):
            run = msd_run(student, cell, temp, MD_STEPS, 0, diff.timestep_fs, seed)
            found[f"diffusion: student MD {temp:g} K"] = run.frames[1:]
    return found


def extrapolation_section(
    committee: Committee, geometries: dict[str, list[Atoms]]
) -> dict:
    """The committee's deviation along each analysis, and what is flagged."""
    rows = {}
    for analysis, frames in geometries.items():
        if not frames:
            continue
        dev = committee_deviation(committee.members, frames)
        summary = summarize(dev, committee.threshold_eV_A).as_dict()
        summary["per_geometry_eV_A"] = np.round(dev, 4).tolist()
        rows[analysis] = summary
    return {
        "members": [getattr(m, "name", str(m)) for m in committee.members],
        "threshold_eV_A": committee.threshold_eV_A,
        "threshold_from": committee.threshold_from,
        "ranking": committee.ranking,
        "analyses": rows,
    }
