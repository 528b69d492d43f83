"""Every backend passes the same contract (pfd.testing.check_backend_contract)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from pfd.label.results import single_point
from pfd.structures import perturb
from pfd.testing import EMTBackend, check_backend_contract


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(5)
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    return [
        single_point(perturb(cu, rng, 0.06, 0.03), EMT(asap_cutoff=True))
        for _ in range(4)
    ]


def test_emt_stand_in_backend(frames, tmp_path):
    result = check_backend_contract(
        EMTBackend(delay_s=0), str(tmp_path / "m.json"), frames, tmp_path
    )
    assert result["after_e0"].energy_rmse_eV_atom < 0.01


def test_sevennet_backend(frames, tmp_path):
    from pfd.models.sevennet import SevenNetBackend

    result = check_backend_contract(
        SevenNetBackend(threads=2), "7net-0", frames, tmp_path
    )
    # EMT's energy zero is ~4 eV/atom from SevenNet-0's
    assert result["before"].energy_rmse_eV_atom > 1.0
    assert result["after_e0"].energy_rmse_eV_atom < 0.05
    assert result["fine_tuned"].force_rmse_eV_A < result["before"].force_rmse_eV_A


def test_sevennet_multi_fidelity_backend_trains_one_modality(frames, tmp_path):
    """7net-mf-0 at its PBE modality: the R2SCAN row of energies is left alone."""
    import torch

    from pfd.models.sevennet import SevenNetBackend

    backend = SevenNetBackend(threads=2, head="PBE")
    result = check_backend_contract(backend, "7net-mf-0", frames, tmp_path)
    assert result["before"].energy_rmse_eV_atom > 1.0
    assert result["after_e0"].energy_rmse_eV_atom < 0.05
    assert result["fine_tuned"].force_rmse_eV_A < result["before"].force_rmse_eV_A

    def shifts(path):
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cu = ckpt["config"]["_type_map"][29]
        shift = ckpt["model_state_dict"]["rescale_atomic_energy.shift"]
        return {name: shift[i, cu] for name, i in ckpt["config"]["_modal_map"].items()}

    before, after = shifts(backend.resolve("7net-mf-0")), shifts(result["model"])
    # the fine-tuned model is used at the modality it was trained at by default
    assert SevenNetBackend().modality(result["model"]) == "PBE"
    assert float(after["R2SCAN"]) == float(before["R2SCAN"])
    assert abs(float(after["PBE"] - before["PBE"])) > 1.0  # the E0 refit
