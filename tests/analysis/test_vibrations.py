"""Harmonic vibrations of molecules: a Morse dimer against its analytic frequency,
an EMT cluster against ASE's own Vibrations, rigid motions projected out."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.emt import EMT
from ase.calculators.morse import MorsePotential
from ase.cluster import Icosahedron
from ase.vibrations import Vibrations

from pfd.analysis.vibrations import (
    compare_frequencies,
    displaced,
    frequencies_at,
    is_linear,
    molecule_vibrations,
)


def _morse_cm1(epsilon: float, r0: float, rho0: float, mass: float) -> float:
    """Harmonic frequency of a Morse dimer: k = 2 eps (rho0/r0)^2, mu = m/2."""
    k = 2 * epsilon * (rho0 / r0) ** 2  # eV/Å²
    omega = np.sqrt(k / (mass / 2) * units._e / units._amu) * 1e10  # rad/s
    return omega / (2 * np.pi * units._c * 100)


def test_morse_dimer_matches_the_analytic_frequency():
    eps, r0, rho0 = 2.0, 1.1, 4.0
    dimer = Atoms("N2", positions=[[0, 0, 0], [0, 0, r0 + 0.05]])  # off the minimum
    calc = MorsePotential(epsilon=eps, r0=r0, rho0=rho0)
    vib = molecule_vibrations(calc, dimer, fmax_eV_A=1e-4, delta_A=0.002)
    assert vib.converged
    assert abs(np.linalg.norm(np.diff(vib.positions_A, axis=0)) - r0) < 1e-3
    # one vibration (3N-5), the five rigid motions projected out
    assert len(vib.frequencies_cm1) == 1
    expected = _morse_cm1(eps, r0, rho0, dimer.get_masses()[0])
    assert vib.frequencies_cm1[0] == pytest.approx(expected, rel=2e-3)


def test_cluster_agrees_with_ase_vibrations(tmp_path, monkeypatch):
    """Cu13 with EMT: 3N-6 = 33 modes, the same as ASE's Vibrations without the six
    lowest; a translated or rotated copy gives the same spectrum."""
    cluster = Icosahedron("Cu", 2)
    assert not any(cluster.pbc)
    assert len(cluster) == 13
    vib = molecule_vibrations(EMT(), cluster, fmax_eV_A=1e-3)
    assert len(vib.frequencies_cm1) == 33
    assert vib.n_imaginary == 0  # the icosahedron is a minimum of EMT
    relaxed = cluster.copy()
    relaxed.positions = np.array(vib.positions_A)
    relaxed.calc = EMT()
    monkeypatch.chdir(tmp_path)
    ase_vib = Vibrations(relaxed, delta=0.01, nfree=2)
    ase_vib.run()
    theirs = np.sort(np.abs(ase_vib.get_frequencies()))[6:]
    assert np.allclose(vib.frequencies_cm1, theirs, atol=2.0)  # cm⁻¹
    moved = relaxed.copy()
    moved.rotate(37, "x", center="COM")
    moved.translate([1.3, -0.4, 2.0])
    again = frequencies_at(moved, EMT())
    assert compare_frequencies(again, vib.frequencies_cm1)["max_cm1"] < 1.0


def test_displacements_and_linearity():
    water = Atoms("OH2", positions=[[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]])
    frames = displaced(water, 0.01)
    assert len(frames) == 18  # 6N
    assert np.allclose(frames[1].positions[0] - water.positions[0], [0.01, 0, 0])
    assert np.allclose(frames[4].positions[0] - water.positions[0], [0, 0, -0.01])
    assert not is_linear(water)
    co2 = Atoms("CO2", positions=[[0, 0, 0], [0, 0, 1.16], [0, 0, -1.16]])
    assert is_linear(co2)


def test_compare_frequencies_refuses_other_molecules():
    diff = compare_frequencies([100.0, 210.0], [90.0, 200.0])
    assert diff["mae_cm1"] == pytest.approx(10.0)
    assert diff["mean_relative_pct"] == pytest.approx(5.0)  # 200 only (> 100 cm⁻¹)
    with pytest.raises(ValueError, match="not one molecule"):
        compare_frequencies([1.0], [1.0, 2.0])
