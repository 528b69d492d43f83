"""Turning a finished calculation into a frame with plain stored results."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

from pfd.errors import LabelError


def single_point(atoms: Atoms, calc: Calculator) -> Atoms:
    """Run ``calc`` on a copy of ``atoms``; return it with energy/forces/stress stored.

    Raises
    ------
    LabelError
        If a result is not finite.
    """
    work = atoms.copy()
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
