"""Per-element reference energies: the least-squares shift that aligns energy zeros."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator


def predicted_energies(frames: list[Atoms], calc: Calculator) -> list[float]:
    """``calc``'s energy of each frame (the frames keep their own results)."""
    out = []
    for atoms in frames:
        work = atoms.copy()
        work.calc = calc
        out.append(float(work.get_potential_energy()))
    return out


def fit_e0_shift(frames: list[Atoms], predicted: list[float]) -> dict[int, float]:
    """Per-element energy shifts that best map predicted onto reference energies.

    Solves ``sum_Z n_Z(f) * dE_Z = E_ref(f) - E_pred(f)`` in least squares over
    the frames ``f``; ``n_Z`` counts atoms of element ``Z``. With one element this
    is the mean per-atom residual. Elements that never vary independently share
    the residual (minimum-norm solution).
    """
    numbers = sorted({int(z) for atoms in frames for z in atoms.numbers})
    counts = np.array(
        [[np.count_nonzero(atoms.numbers == z) for z in numbers] for atoms in frames],
        dtype=float,
    )
    residual = np.array(
        [
            atoms.get_potential_energy() - e
            for atoms, e in zip(frames, predicted, strict=True)
        ]
    )
    shift, *_ = np.linalg.lstsq(counts, residual, rcond=None)
    return {z: float(s) for z, s in zip(numbers, shift, strict=True)}
