from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from pfd.models.e0 import fit_e0_shift


def _frame(symbols_count: dict[str, int], energy: float):
    from ase import Atoms

    symbols = "".join(f"{s}{n}" for s, n in symbols_count.items())
    atoms = Atoms(
        symbols,
        positions=np.random.default_rng(0).random((sum(symbols_count.values()), 3)) * 5,
    )
    atoms.calc = SinglePointCalculator(
        atoms, energy=energy, forces=np.zeros((len(atoms), 3))
    )
    return atoms


def test_recovers_per_element_offsets():
    # reference = predicted + 2.0 eV per Li + (-1.5) eV per Cl
    comps = [
        {"Li": 1, "Cl": 1},
        {"Li": 2, "Cl": 1},
        {"Li": 1, "Cl": 3},
        {"Li": 4, "Cl": 2},
    ]
    predicted = [-3.0, -5.0, -8.0, -12.0]
    frames = [
        _frame(c, p + 2.0 * c["Li"] - 1.5 * c["Cl"])
        for c, p in zip(comps, predicted, strict=True)
    ]
    shift = fit_e0_shift(frames, predicted)
    assert shift[3] == pytest.approx(2.0)
    assert shift[17] == pytest.approx(-1.5)


def test_single_element_is_mean_per_atom_residual():
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    frames = []
    for e in (-10.0, -11.0):
        a = cu.copy()
        a.calc = SinglePointCalculator(a, energy=e, forces=np.zeros((4, 3)))
        frames.append(a)
    shift = fit_e0_shift(frames, [-14.0, -15.0])
    assert shift[29] == pytest.approx(1.0)
