"""Vacancy formation energy: one atom removed from a supercell, positions relaxed.

E_f = E(N-1) - (N-1)/N E(N), all in one supercell (:func:`vacancy_supercell`,
the cell the loop's vacancy variants use). :func:`vacancy_at` gives E_f with
another calculator at fixed geometries (DFT at a model's relaxed vacancy), so
models and DFT compare in the same cell and, there, at the same atoms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ase import Atoms

from pfd.analysis._common import (
    CalculatorSource,
    as_calculator,
    energy,
    relax_positions,
    structure_name,
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
    converged: bool = True  # the relaxation reached fmax
    relaxed: Atoms | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "natoms": self.natoms,
            "unrelaxed_eV": self.unrelaxed_eV,
            "relaxed_eV": self.relaxed_eV,
            "converged": self.converged,
        }


def formation_energy(defect_eV: float, perfect_eV: float, natoms: int) -> float:
    """E(N-1) - (N-1)/N E(N) for a perfect cell of ``natoms`` atoms."""
    return float(defect_eV - (natoms - 1) / natoms * perfect_eV)


def vacancy_supercell(atoms: Atoms, settings: VacancyReportConfig) -> Atoms | None:
    """The supercell whose atom 0 is removed, or None when ``atoms`` does not apply.

    Elemental periodic crystals apply; with ``settings.species`` any periodic
    crystal holding that species (atom 0 is then its first atom of that species).
    The cell is the input if it has ``settings.min_atoms`` atoms, else the
    primitive cell repeated closest to a cube (:func:`pfd.variants.host_cell`):
    32 atoms for diamond Si, where a cube of the conventional cell has 64.
    """
    from pfd.variants import host_cell

    species = set(atoms.get_chemical_symbols())
    if not all(atoms.pbc):
        return None
    if settings.species is None and len(species) > 1:
        return None
    if settings.species is not None and settings.species not in species:
        return None
    sup = host_cell(atoms, settings.min_atoms)[1]
    if settings.species is not None:
        first = sup.get_chemical_symbols().index(settings.species)
        sup = sup[[first] + [i for i in range(len(sup)) if i != first]]
    sup.info["name"] = structure_name(atoms)
    return sup


def vacancy_energy(
    model: CalculatorSource, cell: Atoms, fmax: float, steps: int = RELAX_STEPS
) -> Vacancy:
    """Formation energy of the vacancy left by removing atom 0 of ``cell``."""
    calc = as_calculator(model)
    perfect = energy(cell, calc)
    defect = cell.copy()
    del defect[0]
    unrelaxed = energy(defect, calc)
    relaxed, e_relaxed, converged = relax_positions(defect, calc, fmax, steps)
    return Vacancy(
        structure=structure_name(cell),
        natoms=len(cell),
        unrelaxed_eV=formation_energy(unrelaxed, perfect, len(cell)),
        relaxed_eV=formation_energy(e_relaxed, perfect, len(cell)),
        converged=converged,
        relaxed=relaxed,
    )


def vacancy_at(model: CalculatorSource, cell: Atoms, defect: Atoms) -> float:
    """E_f (eV) with ``model`` at fixed geometries: ``cell`` and its ``defect``."""
    calc = as_calculator(model)
    return formation_energy(energy(defect, calc), energy(cell, calc), len(cell))


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
    return vacancy_energy(model, cell, settings.fmax_eV_A, settings.max_steps)
