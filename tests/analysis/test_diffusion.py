"""Diffusion: a crystal says "no diffusion", a liquid gives D and Ea > 0."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.units import kB

from pfd.analysis import arrhenius, diffusion, fit_diffusion
from pfd.config import DiffusionReportConfig

CU = bulk("Cu", "fcc", 3.6, cubic=True)
NN_CU = 3.6 / np.sqrt(2)  # Å
SHORT = DiffusionReportConfig(
    steps=150, equilibration_steps=50, timestep_fs=2.0, min_atoms=32, rdf_steps=10
)


def test_emt_copper_crystal_does_not_diffuse_at_300_kelvin():
    result = diffusion(EMT(), CU, SHORT, temperatures_K=[300])
    fit = result.runs[0].species["Cu"]
    assert fit.D_cm2_s is None
    assert "vibrate" in fit.reason
    assert fit.msd_end_A2 < 0.1  # Å², vibration only
    assert result.nn_distance_A == pytest.approx(NN_CU, rel=1e-6)
    assert result.arrhenius["Cu"].Ea_eV is None
    assert "not determined" in result.arrhenius["Cu"].reason
    assert len(result.rdf.g) == len(result.rdf.r) == 100


def test_molten_emt_copper_diffuses():
    start = CU.repeat(2)
    start.rattle(0.4, rng=np.random.default_rng(1))  # melts at once at 3000 K
    hot = SHORT.model_copy(update={"steps": 200, "equilibration_steps": 60})
    hot = hot.model_copy(update={"timestep_fs": 3.0})
    result = diffusion(EMT(), start, hot, temperatures_K=[3000])
    fit = result.runs[0].species["Cu"]
    assert fit.reason is None
    assert 2e-5 < fit.D_cm2_s < 2e-3  # liquid metals: ~1e-4 cm²/s
    assert fit.rise > hot.min_msd_rise
    assert "1 temperature" in result.arrhenius["Cu"].reason


def _msd(d_cm2_s: float, times: np.ndarray, rng) -> np.ndarray:
    """Vibration offset + 6 D t + noise, in Å² (D in cm²/s -> Å²/ps is x 1e4)."""
    return 0.3 + 6 * d_cm2_s * 1e4 * times + rng.normal(0, 0.01, len(times))


def test_known_diffusion_and_activation_energy_are_recovered():
    rng = np.random.default_rng(0)
    times = np.linspace(0, 10, 51)  # ps
    temps = [800.0, 1000.0, 1200.0, 1400.0]
    truth = [1e-3 * np.exp(-0.6 / (kB * t)) for t in temps]  # 1.7e-7 .. 7e-6
    fits = [fit_diffusion(times, _msd(d, times, rng), 2.5) for d in truth]
    # the coldest moves 0.01 Å² in 10 ps: below the vibrational range, no D
    assert fits[0].D_cm2_s is None
    for fit, d in zip(fits[1:], truth[1:], strict=True):
        assert fit.D_cm2_s == pytest.approx(d, rel=0.15)
    result = arrhenius(temps, [f.D_cm2_s for f in fits])
    assert result.temperatures_K == temps[1:]
    assert result.Ea_eV == pytest.approx(0.6, rel=0.1)


def test_a_plateau_above_the_vibrational_range_is_not_diffusion():
    times = np.linspace(0, 2, 51)
    plateau = 1.0 - 0.9 * np.exp(-times / 0.05)  # rises, then flat at 1 Å²
    fit = fit_diffusion(times, plateau, nn_distance_A=2.0)  # floor 0.4 Å²
    assert fit.D_cm2_s is None
    assert "plateau" in fit.reason


def test_arrhenius_never_reports_a_negative_activation_energy():
    temps = [600.0, 900.0, 1200.0]
    falling = [3e-5, 2e-5, 1e-5]  # D falls with T: noise, not activation
    fit = arrhenius(temps, falling)
    assert fit.Ea_eV is None
    assert fit.D0_cm2_s is None
    assert fit.reason.startswith("not determined: D does not rise")
    assert "Ea = -" in fit.reason
    lonely = arrhenius(temps, [None, None, 1e-5])
    assert lonely.Ea_eV is None
    assert "1 temperature" in lonely.reason
    exact = arrhenius(temps, [1e-3 * np.exp(-0.5 / (kB * t)) for t in temps])
    assert exact.Ea_eV == pytest.approx(0.5, rel=1e-6)
