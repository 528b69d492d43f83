"""The real GPAW labeller on a tiny Si cell (its contract: test_contract.py)."""

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


def test_gpaw_preset_and_one_label(tmp_path: Path):
    """The preset is kept where not overridden; forces and stress come back.

    Forces and stress against finite differences: tests/label/test_contract.py.
    """
    labeler = make_labeler(LabelerConfig(code="gpaw", parameters=FAST))
    assert labeler.parameters["xc"] == "PBE"  # preset kept where not overridden
    assert labeler.parameters["mode"] == {"name": "pw", "ecut": 200.0}
    labeler.check({"Si"})
    si = bulk("Si", "diamond", 5.43)
    si.positions[1] += [0.05, -0.03, 0.02]
    result = labeler.calculate(si, str(tmp_path))
    forces = result.get_forces()
    assert (tmp_path / "gpaw.txt").exists()
    assert np.abs(forces[1]).max() > 0.2  # a real force, not zero by symmetry
    assert np.abs(forces[0] + forces[1]).max() < 1e-3  # momentum conservation
    assert result.get_stress().shape == (6,)
    assert labeler.settings()["code"] == "gpaw"


def test_gpaw_unknown_setup_is_a_clear_error():
    labeler = make_labeler(
        LabelerConfig(code="gpaw", parameters={"xc": "NOT-A-FUNCTIONAL"})
    )
    with pytest.raises(PFDError, match="GPAW has no NOT-A-FUNCTIONAL PAW setup for Si"):
        labeler.check({"Si"})
