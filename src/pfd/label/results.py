"""Turning a finished calculation into a frame with plain stored results."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

from pfd.errors import LabelError

#: vacuum (Å) on each side of a molecule in the box a code that needs one
#: computes it in (:func:`in_box`)
BOX_VACUUM_A = 6.0
#: a molecule's own cell is used when, centred in it, this much vacuum is left
#: on every side (a run's frames then share the box ``pfd init`` wrote)
MIN_VACUUM_A = 4.0


def single_point(
    atoms: Atoms, calc: Calculator, box_vacuum_A: float | None = None
) -> Atoms:
    """Run ``calc`` on a copy of ``atoms``; return it with energy/forces/stress stored.

    With ``box_vacuum_A``, a non-periodic frame is computed in the box of
    :func:`in_box` (for codes that need a cell); the frame returned keeps its
    own positions and cell (forces and energy do not depend on a translation).
    Stress is stored for periodic frames only.

    Raises
    ------
    LabelError
        If a result is not finite.
    """
    work = atoms.copy() if box_vacuum_A is None else in_box(atoms, box_vacuum_A)
    work.calc = calc
    results = {
        "energy": float(work.get_potential_energy()),
        "forces": np.array(work.get_forces()),
    }
    free = work.calc.results.get("free_energy")
    if free is not None:  # smearing: forces are derivatives of the free energy
        results["free_energy"] = float(free)
    if all(work.pbc):
        results["stress"] = np.array(work.get_stress(voigt=True))
    for key, value in results.items():
        if not np.all(np.isfinite(value)):
            raise LabelError(f"non-finite {key} from the reference calculation")
    out = atoms.copy()
    out.calc = SinglePointCalculator(out, **results)
    return out


def in_box(
    atoms: Atoms, vacuum_A: float = BOX_VACUUM_A, min_vacuum_A: float = MIN_VACUUM_A
) -> Atoms:
    """The cell a code that needs one computes a non-periodic frame in.

    A periodic (or partly periodic) frame is returned as it is (a copy). A
    molecule is centred in its own cell when that leaves at least
    ``min_vacuum_A`` on every side; otherwise (no cell, a cell too small, a
    fragment that flew off) it is centred in a new orthorhombic box with
    ``vacuum_A`` around it. ``pbc`` stays False.
    """
    work = atoms.copy()
    if any(work.pbc):
        return work
    if work.cell.rank == 3:
        work.center()
        if _vacuum(work) >= min_vacuum_A - 1e-9:
            return work
    work.set_cell(np.zeros((3, 3)))
    work.center(vacuum=vacuum_A)
    return work


def _vacuum(atoms: Atoms) -> float:
    """The least distance (Å) of an atom to a face of its cell."""
    cell = atoms.cell
    frac = cell.scaled_positions(atoms.positions)
    heights = 1.0 / np.linalg.norm(cell.reciprocal(), axis=1)  # plane spacings
    gaps = np.minimum(frac, 1.0 - frac) * heights
    return float(gaps.min())
