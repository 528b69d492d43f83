"""The real GPAW labeller on a tiny Si cell: forces agree with d(energy)/d(position)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from pfd.config import LabelerConfig
from pfd.errors import PFDError
from pfd.label import make_labeler

pytest.importorskip("gpaw")

FAST = {
    "mode": {"ecut": 200.0},
    "kpts": {"density": 1.0},
    "convergence": {"energy": 1e-7},
}


def test_gpaw_forces_match_finite_differences(tmp_path: Path):
    labeler = make_labeler(LabelerConfig(code="gpaw", parameters=FAST))
    assert labeler.parameters["xc"] == "PBE"  # preset kept where not overridden
    assert labeler.parameters["mode"] == {"name": "pw", "ecut": 200.0}
    labeler.check({"Si"})
    si = bulk("Si", "diamond", 5.43)
    si.positions[1] += [0.05, -0.03, 0.02]
    result = labeler.calculate(si, str(tmp_path))
    forces = result.get_forces()
    assert (tmp_path / "gpaw.txt").exists()
    assert np.abs(forces[0] + forces[1]).max() < 1e-3  # momentum conservation
    h = 0.01
    energies = []
    for sign in (1, -1):
        shifted = si.copy()
        shifted.positions[1, 0] += sign * h
        # with smearing, forces are derivatives of the free energy
        done = labeler.calculate(shifted, str(tmp_path))
        energies.append(done.get_potential_energy(force_consistent=True))
    fd = -(energies[0] - energies[1]) / (2 * h)
    assert forces[1, 0] == pytest.approx(fd, abs=0.01)
    assert result.get_stress().shape == (6,)
    assert labeler.settings()["code"] == "gpaw"


def test_gpaw_unknown_setup_is_a_clear_error():
    labeler = make_labeler(
        LabelerConfig(code="gpaw", parameters={"xc": "NOT-A-FUNCTIONAL"})
    )
    with pytest.raises(PFDError, match="GPAW has no NOT-A-FUNCTIONAL PAW setup for Si"):
        labeler.check({"Si"})
