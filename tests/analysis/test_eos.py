"""Equation of state on EMT Cu: known lattice constant and bulk modulus."""

from __future__ import annotations

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from pfd.analysis import equation_of_state, fit_eos
from pfd.config import EOSReportConfig

CU = bulk("Cu", "fcc", 3.6, cubic=True)


def test_eos_recovers_emt_lattice_constant_and_bulk_modulus():
    curve = equation_of_state(EMT, CU, EOSReportConfig(points=7, volume_range=0.08))
    a0 = (4 * curve.fit.V0) ** (1 / 3)  # Å, 4 atoms per cubic cell
    assert a0 == pytest.approx(3.59, abs=0.01)
    assert curve.fit.B0_GPa == pytest.approx(134, abs=5)  # EMT's Cu, as ASE documents
    assert len(curve.volumes_A3_atom) == 7
    assert curve.to_dict()["fit"]["B0_GPa"] == curve.fit.B0_GPa


def test_fit_eos_of_a_known_parabola():
    # E = B0 / (2 V0) (V - V0)²: B0 = 1 eV/Å³ = 160.2 GPa near the minimum
    volumes = [9.0, 9.5, 10.0, 10.5, 11.0]
    energies = [(v - 10.0) ** 2 / 20.0 for v in volumes]
    fit = fit_eos(volumes, energies)
    v0, b0 = fit.V0, fit.B0_GPa
    assert v0 == pytest.approx(10.0, abs=1e-3)
    assert b0 == pytest.approx(160.2, rel=0.05)
