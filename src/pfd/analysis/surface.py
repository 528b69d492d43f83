"""Surface energy of slabs: gamma = (E_slab - N e_bulk) / (2 A).

Slabs come from :func:`pfd.variants.slabs` (the generator of the loop's
surface variants): the bulk composition, vacuum along the third cell vector,
two surfaces of area A = |a1 x a2|. Positions relax at fixed cell (no
reconstruction is searched for beyond what BFGS finds from the ideal cut);
e_bulk is the same model's energy per atom of the crystal the slab is cut
from, at its given cell, so the slab and the bulk share one lattice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units

from pfd.analysis._common import (
    CalculatorSource,
    as_calculator,
    energy,
    relax_positions,
    structure_name,
)
from pfd.config.report import SurfaceReportConfig

#: 1 eV/Å² in J/m²
J_M2_PER_EV_A2 = units._e * 1e20


def surface_area(slab: Atoms) -> float:
    """Area (Å²) of one face of ``slab``: |a1 x a2|, the normal along a3."""
    cell = np.asarray(slab.cell)
    return float(np.linalg.norm(np.cross(cell[0], cell[1])))


def surface_energy(
    slab_eV: float, natoms: int, bulk_eV_atom: float, area: float
) -> float:
    """(E_slab - N e_bulk) / (2 A) in eV/Å² for a slab with two faces of ``area``."""
    return float((slab_eV - natoms * bulk_eV_atom) / (2 * area))


@dataclass(frozen=True)
class SurfaceEnergy:
    """One slab with one model: gamma before and after relaxing positions."""

    structure: str  # the slab's name, 'Si8:slab-100'
    miller: tuple[int, int, int]
    natoms: int
    area_A2: float
    bulk_eV_atom: float
    unrelaxed_eV_A2: float
    relaxed_eV_A2: float
    converged: bool
    relaxed: Atoms | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "miller": list(self.miller),
            "natoms": self.natoms,
            "area_A2": self.area_A2,
            "bulk_eV_atom": self.bulk_eV_atom,
            "unrelaxed_eV_A2": self.unrelaxed_eV_A2,
            "relaxed_eV_A2": self.relaxed_eV_A2,
            "unrelaxed_J_m2": self.unrelaxed_eV_A2 * J_M2_PER_EV_A2,
            "relaxed_J_m2": self.relaxed_eV_A2 * J_M2_PER_EV_A2,
            "converged": self.converged,
        }


def surface_slabs(
    atoms: Atoms,
    miller: Sequence[Sequence[int]],
    settings: SurfaceReportConfig,
) -> list[Atoms]:
    """Slabs of ``atoms`` for ``miller`` with the layers, vacuum and size of
    ``settings`` (empty for a structure that is not a crystal)."""
    from pfd.variants import slabs

    if not all(atoms.pbc) or not miller:
        return []
    return slabs(atoms, miller, settings.layers, settings.vacuum_A, settings.min_atoms)


def slab_energy(
    model: CalculatorSource,
    slab: Atoms,
    bulk: Atoms,
    settings: SurfaceReportConfig | None = None,
) -> SurfaceEnergy:
    """gamma of ``slab`` with ``model``, e_bulk from ``bulk`` (the same crystal)."""
    settings = settings or SurfaceReportConfig()
    calc = as_calculator(model)
    e_bulk = energy(bulk, calc) / len(bulk)
    area, n = surface_area(slab), len(slab)
    unrelaxed = energy(slab, calc)
    relaxed, e_relaxed, converged = relax_positions(
        slab, calc, settings.fmax_eV_A, settings.max_steps
    )
    return SurfaceEnergy(
        structure=structure_name(slab),
        miller=tuple(slab.info.get("miller", (0, 0, 0))),
        natoms=n,
        area_A2=area,
        bulk_eV_atom=e_bulk,
        unrelaxed_eV_A2=surface_energy(unrelaxed, n, e_bulk, area),
        relaxed_eV_A2=surface_energy(e_relaxed, n, e_bulk, area),
        converged=converged,
        relaxed=relaxed,
    )


def surface_energies(
    model: CalculatorSource,
    atoms: Atoms,
    miller: Sequence[Sequence[int]] = ((1, 0, 0),),
    settings: SurfaceReportConfig | None = None,
) -> list[SurfaceEnergy]:
    """gamma of each slab of ``atoms`` (one per Miller index) with ``model``."""
    settings = settings or SurfaceReportConfig()
    cuts = surface_slabs(atoms, miller, settings)
    return [slab_energy(model, slab, atoms, settings) for slab in cuts]
