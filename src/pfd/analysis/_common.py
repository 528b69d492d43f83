"""What the analyses share: a model given as a calculator or a factory, cells."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

#: an ASE calculator, or a zero-argument function that builds one
CalculatorSource = Calculator | Callable[[], Calculator]


def as_calculator(model: CalculatorSource) -> Calculator:
    """The calculator of ``model``: itself, or what its factory builds."""
    if isinstance(model, Calculator) or not callable(model):
        return model
    return model()


def energy(atoms: Atoms, calc: Calculator) -> float:
    """Potential energy (eV) of a copy of ``atoms`` with ``calc``."""
    a = atoms.copy()
    a.calc = calc
    return float(a.get_potential_energy())


def forces(atoms: Atoms, calc: Calculator) -> np.ndarray:
    """Forces (eV/Å) on a copy of ``atoms`` with ``calc``."""
    a = atoms.copy()
    a.calc = calc
    return np.array(a.get_forces())


def relax_positions(
    atoms: Atoms, calc: Calculator, fmax: float, steps: int
) -> tuple[Atoms, float, bool]:
    """``atoms`` relaxed at fixed cell (BFGS, ``steps`` at most; 0: as given):
    a copy without calculator, its energy (eV), whether it reached ``fmax``."""
    from ase.optimize import BFGS

    a = atoms.copy()
    a.calc = calc
    converged = steps > 0 and BFGS(a, logfile=None).run(fmax=fmax, steps=steps)
    e_relaxed = float(a.get_potential_energy())
    a.calc = None
    return a, e_relaxed, bool(converged)


def supercell(atoms: Atoms, min_atoms: int) -> Atoms:
    """The smallest n x n x n repetition with at least ``min_atoms`` atoms."""
    if not all(atoms.pbc):
        return atoms.copy()
    n = 1
    while len(atoms) * n**3 < min_atoms:
        n += 1
    return atoms.repeat(n)


def structure_name(atoms: Atoms) -> str:
    """``info['name']`` or the chemical formula."""
    return str(atoms.info.get("name", atoms.get_chemical_formula()))


def min_height(atoms: Atoms) -> float:
    """The smallest distance between opposite faces of the cell."""
    cell = np.asarray(atoms.cell)
    vol = abs(np.linalg.det(cell))
    return min(
        vol / np.linalg.norm(np.cross(cell[i], cell[j]))
        for i, j in ((1, 2), (2, 0), (0, 1))
    )
