"""Phonons and vacancy of EMT Cu: acoustic modes vanish at Γ, E_f in range."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from pfd.analysis import phonon_bands, vacancy_energy, vacancy_formation
from pfd.analysis.vacancy import vacancy_at, vacancy_supercell
from pfd.config import PhononReportConfig, VacancyReportConfig
from pfd.testing import ShiftedEMT

CU = bulk("Cu", "fcc", 3.6, cubic=True)


def test_acoustic_phonons_vanish_at_gamma():
    bands = phonon_bands(EMT(), CU, PhononReportConfig(supercell=(2, 2, 2), npoints=20))
    gamma = np.abs(bands.gamma_THz)
    assert len(gamma) == 3  # bands of the primitive cell phonopy found (1 atom)
    assert np.all(gamma < 0.05)
    assert bands.labels[0] == "G"
    top = np.max(bands.frequencies_THz)
    assert top == pytest.approx(7.9, abs=1.0)


def test_vacancy_formation_energy_is_positive_and_relaxation_lowers_it():
    result = vacancy_energy(EMT(), CU.repeat(2), fmax=0.05)
    assert 0.5 < result.relaxed_eV < result.unrelaxed_eV < 2.0
    assert len(result.relaxed) == 31
    assert result.converged
    assert set(result.to_dict()) == {
        "natoms",
        "unrelaxed_eV",
        "relaxed_eV",
        "converged",
    }


def test_vacancy_cell_is_the_near_cubic_one_of_the_loop_variants():
    from pfd.variants import host_cell

    si = bulk("Si", "diamond", 5.43, cubic=True)  # 8 atoms: a cube of it has 64
    cell = vacancy_supercell(si, VacancyReportConfig())
    assert len(cell) == 32
    assert len(cell) == len(host_cell(si, 32)[1])
    assert len(vacancy_supercell(CU, VacancyReportConfig())) == 32


def test_formation_energy_at_fixed_geometry_ignores_per_atom_shifts():
    relaxed = vacancy_energy(EMT(), CU.repeat(2), fmax=0.05)
    shifted = ShiftedEMT(e0={"Cu": -3.7})  # E_f is blind to a per-atom constant
    assert vacancy_at(shifted, CU.repeat(2), relaxed.relaxed) == pytest.approx(
        relaxed.relaxed_eV, abs=1e-9
    )


def test_vacancy_skips_alloys_unless_a_species_is_named():
    alloy = bulk("Cu", "fcc", 3.6, cubic=True)
    alloy.symbols[0] = "Au"
    assert vacancy_formation(EMT, alloy, VacancyReportConfig(min_atoms=4)) is None
    named = VacancyReportConfig(species="Au", min_atoms=4, fmax_eV_A=0.1)
    assert vacancy_formation(EMT, alloy, named).natoms == 4
