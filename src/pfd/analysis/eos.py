"""Equation of state: energy per atom against volume, Birch-Murnaghan fit."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms, units

from pfd.analysis._common import (
    CalculatorSource,
    as_calculator,
    energy,
    structure_name,
)
from pfd.config import EOSReportConfig


@dataclass(frozen=True)
class EOSFit:
    """Birch-Murnaghan parameters: V0 (Å³/atom), E0 (eV/atom), B0 (GPa)."""

    V0: float
    E0: float
    B0_GPa: float


@dataclass(frozen=True)
class EOSCurve:
    """E(V) of one structure with one model, per atom, and its fit."""

    structure: str
    volumes_A3_atom: list[float]
    energies_eV_atom: list[float]
    fit: EOSFit

    def to_dict(self) -> dict:
        return asdict(self)


def eos_points(atoms: Atoms, points: int, volume_range: float) -> list[Atoms]:
    """Isotropically scaled copies of ``atoms`` at V0 x (1 ± volume_range)."""
    out = []
    for v in np.linspace(1 - volume_range, 1 + volume_range, points):
        a = atoms.copy()
        a.set_cell(atoms.cell * v ** (1 / 3), scale_atoms=True)
        out.append(a)
    return out


def fit_eos(volumes, energies) -> EOSFit:
    """Birch-Murnaghan fit of ``energies`` (eV) at ``volumes`` (Å³), same basis."""
    from ase.eos import EquationOfState

    v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    return EOSFit(V0=float(v0), E0=float(e0), B0_GPa=float(b / units.GPa))


def equation_of_state(
    model: CalculatorSource,
    atoms: Atoms,
    settings: EOSReportConfig | None = None,
) -> EOSCurve:
    """E(V) of ``atoms`` scaled over ``settings.volume_range`` with ``model``."""
    settings = settings or EOSReportConfig()
    calc = as_calculator(model)
    frames = eos_points(atoms, settings.points, settings.volume_range)
    n = len(atoms)
    volumes = [f.get_volume() / n for f in frames]
    energies = [energy(f, calc) / n for f in frames]
    return EOSCurve(
        structure_name(atoms), volumes, energies, fit_eos(volumes, energies)
    )
