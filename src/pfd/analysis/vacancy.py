"""Vacancy formation energy: one atom removed from a supercell, positions relaxed."""

from __future__ import annotations

from dataclasses import dataclass, field

from ase import Atoms

from pfd.analysis._common import (
    CalculatorSource,
    as_calculator,
    energy,
    structure_name,
    supercell,
)
from pfd.config import VacancyReportConfig

RELAX_STEPS = 300  # BFGS steps at most; a vacancy in a crystal relaxes in tens


@dataclass(frozen=True)
class Vacancy:
    """E_f = E(N-1) - (N-1)/N E(N) (eV), before and after relaxing the defect."""

    structure: str
    natoms: int
    unrelaxed_eV: float
    relaxed_eV: float
    relaxed: Atoms = field(repr=False, compare=False)  # the relaxed defect cell

    def to_dict(self) -> dict:
        return {
            "natoms": self.natoms,
            "unrelaxed_eV": self.unrelaxed_eV,
            "relaxed_eV": self.relaxed_eV,
        }


def vacancy_supercell(atoms: Atoms, settings: VacancyReportConfig) -> Atoms | None:
    """The supercell whose atom 0 is removed, or None when ``atoms`` does not apply.

    Elemental periodic crystals apply; with ``settings.species`` any periodic
    crystal holding that species (atom 0 is then its first atom of that species).
    """
    species = set(atoms.get_chemical_symbols())
    if not all(atoms.pbc):
        return None
    if settings.species is None and len(species) > 1:
        return None
    if settings.species is not None and settings.species not in species:
        return None
    sup = supercell(atoms, settings.min_atoms)
    if settings.species is not None:
        first = sup.get_chemical_symbols().index(settings.species)
        sup = sup[[first] + [i for i in range(len(sup)) if i != first]]
    sup.info["name"] = structure_name(atoms)
    return sup


def vacancy_energy(model: CalculatorSource, cell: Atoms, fmax: float) -> Vacancy:
    """Formation energy of the vacancy left by removing atom 0 of ``cell``."""
    from ase.optimize import BFGS

    calc = as_calculator(model)
    n = len(cell)
    perfect = energy(cell, calc)
    defect = cell.copy()
    del defect[0]
    defect.calc = calc
    unrelaxed = defect.get_potential_energy()
    BFGS(defect, logfile=None).run(fmax=fmax, steps=RELAX_STEPS)
    relaxed = defect.get_potential_energy()
    scale = (n - 1) / n
    return Vacancy(
        structure=structure_name(cell),
        natoms=n,
        unrelaxed_eV=float(unrelaxed - scale * perfect),
        relaxed_eV=float(relaxed - scale * perfect),
        relaxed=defect.copy(),
    )


def vacancy_formation(
    model: CalculatorSource,
    atoms: Atoms,
    settings: VacancyReportConfig | None = None,
) -> Vacancy | None:
    """The vacancy of :func:`vacancy_supercell` with ``model``, None if none applies."""
    settings = settings or VacancyReportConfig()
    cell = vacancy_supercell(atoms, settings)
    if cell is None:
        return None
    return vacancy_energy(model, cell, settings.fmax_eV_A)
