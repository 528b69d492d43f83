"""Other phases of one composition: random symmetric crystals (pyxtal), relaxed.

The AIRSS idea as autoplex uses it: candidate crystals of the input's
composition in random space groups, relaxed cheaply with the *foundation*
model, the lowest few distinct ones kept. A variant generator of
:mod:`pfd.variants` (``variants: {phases: N}``).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from pfd.errors import ConfigError, PFDError
from pfd.structures import too_close
from pfd.variants import (
    INSTALL,
    OVERLAP_FACTOR,
    CalculatorFactory,
    _check_periodic,
    _spglib,
    _tag,
    _to_structure,
)


def _random_crystal(atoms: Atoms, max_atoms: int, rng: np.random.Generator) -> Any:
    """A pyxtal crystal of the composition of ``atoms`` in a random space group,
    at the input's volume per atom, slightly rattled; None if pyxtal cannot."""
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    counts = Counter(atoms.get_chemical_symbols())
    formula = {s: c // math.gcd(*counts.values()) for s, c in counts.items()}
    z = int(rng.integers(1, max(1, max_atoms // sum(formula.values())) + 1))
    num = [c * z for c in formula.values()]
    group, seed = int(rng.integers(2, 231)), int(rng.integers(2**31))
    if not Group(group).check_compatible(num)[0]:
        return None
    crystal = pyxtal()
    try:
        crystal.from_random(3, group, list(formula), num, random_state=seed)
    except Exception:  # pyxtal raises bare errors when a group cannot be filled
        return None
    if not crystal.valid:
        return None
    new = crystal.to_ase()
    volume = atoms.get_volume() / len(atoms) * len(new)
    new.set_cell(new.cell[:] * (volume / new.get_volume()) ** (1 / 3), scale_atoms=True)
    new.rattle(0.02, seed=seed)  # lets a symmetric saddle point relax away
    return new


def _relax(atoms: Atoms, calc: Calculator, steps: int, fmax: float) -> float:
    """Relax positions and cell a few FIRE steps; energy per atom (eV)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    atoms.calc = calc
    FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=fmax, steps=steps)
    return float(atoms.get_potential_energy()) / len(atoms)


def random_phases(
    atoms: Atoms,
    n: int = 3,
    calculator_factory: CalculatorFactory | None = None,
    seed: int = 0,
    max_atoms: int = 16,
    candidates: int | None = None,
    steps: int = 60,
) -> list[Atoms]:
    """The ``n`` lowest distinct random crystals of the composition of ``atoms``.

    AIRSS-like: pyxtal crystals in random space groups (at most ``max_atoms``
    atoms) are relaxed ``steps`` FIRE steps with their cell by the calculator
    (the foundation model); candidates with a pair closer than 0.7x its
    covalent-radius sum, or matching the input or a lower candidate
    (pymatgen's ``StructureMatcher``), are dropped. ``candidates`` (default
    ``4 n``) are relaxed; fewer than ``n`` phases come back if fewer are distinct.
    Each is ``'phase-<k>'`` in order of energy, with ``energy_eV_atom`` and its
    ``spacegroup`` after relaxation.
    """
    _check_periodic(atoms, "a random phase")
    if calculator_factory is None:
        raise ConfigError(
            "random phases need the foundation model to relax them; "
            "pass calculator_factory (the loop passes its foundation model)"
        )
    try:
        from pymatgen.analysis.structure_matcher import StructureMatcher
    except ImportError as err:
        raise PFDError(f"random phases need {err.name}; {INSTALL}") from err
    calc, rng = calculator_factory(), np.random.default_rng(seed)
    wanted, relaxed, error = candidates or 4 * n, [], None
    for _ in range(20 * wanted):
        if len(relaxed) == wanted:
            break
        new = _random_crystal(atoms, max_atoms, rng)
        if new is None:
            continue
        try:
            energy = _relax(new, calc, steps, fmax=0.05)
        except Exception as err:  # a model can fail on a wild candidate: skip it
            error = err
            continue
        if np.isfinite(energy) and not too_close(new, OVERLAP_FACTOR):
            relaxed.append((energy, new))
    if not relaxed and error is not None:
        raise PFDError(f"random phases: the calculator failed on each one: {error}")
    matcher, kept, out = StructureMatcher(), [_to_structure(atoms)], []
    for energy, new in sorted(relaxed, key=lambda c: c[0]):
        structure = _to_structure(new)
        if len(out) < n and not any(matcher.fit(structure, k) for k in kept):
            kept.append(structure)
            group = _spglib("get_spacegroup", new, symprec=0.1)  # rattled, few steps
            name = f"phase-{len(out)}"
            out.append(_tag(new, atoms, name, energy_eV_atom=energy, spacegroup=group))
    return out
