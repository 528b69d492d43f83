"""The real SevenNet-0 backend (shipped checkpoint) on tiny EMT Cu frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from pfd.errors import PFDError
from pfd.label.results import single_point
from pfd.models.sevennet import SevenNetBackend
from pfd.structures import perturb
from pfd.testing import check_backend_contract


@pytest.fixture(scope="module")
def backend():
    return SevenNetBackend(threads=2)


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    return [single_point(perturb(cu, rng, 0.06, 0.03), EMT()) for _ in range(6)]


def test_shipped_checkpoint_resolves_without_download(backend):
    path = backend.resolve("7net-0")
    assert path.is_file()
    assert "sevenn" in str(path)
    with pytest.raises(PFDError, match="nothing is downloaded"):
        backend.resolve("7net-omni")


def test_missing_checkpoint_and_uncovered_element(backend, tmp_path: Path):
    with pytest.raises(PFDError, match="not found"):
        backend.resolve(str(tmp_path / "model.pth"))
    with pytest.raises(PFDError, match="does not cover element"):
        backend.check_elements(backend.resolve("7net-0"), {"Cu", "Og"})


def test_modality_of_a_multi_fidelity_checkpoint(backend):
    mf0 = backend.resolve("7net-mf-0")
    assert backend.modality(mf0) == "PBE"  # the checkpoint's default
    assert SevenNetBackend(head="R2SCAN").modality(mf0) == "R2SCAN"
    with pytest.raises(PFDError, match=r"no modality 'HSE'; set model\.head to one of"):
        SevenNetBackend(head="HSE").check_elements(mf0, {"Si"})
    with pytest.raises(PFDError, match=r"has one fidelity.*remove model\.head"):
        SevenNetBackend(head="PBE").check_elements(backend.resolve("7net-0"), {"Si"})


def test_multi_fidelity_fine_tuning_trains_one_modality(tmp_path: Path):
    """7net-mf-0 at its PBE modality: the R2SCAN row of energies is left alone."""
    import torch

    rng = np.random.default_rng(5)
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    frames = [
        single_point(perturb(cu, rng, 0.06, 0.03), EMT(asap_cutoff=True))
        for _ in range(4)
    ]
    backend = SevenNetBackend(threads=1, head="PBE")
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


def test_replayed_frames_are_a_second_weighted_dataset(tmp_path: Path, frames):
    """sevenn's input: the DFT file plain, the replay file with its loss weight
    (and the modality of a multi-fidelity model); the written frames are bare so
    that sevenn can collate DFT and replayed frames' info in one batch."""
    from pfd.models.sevennet import _bare, _dataset

    path = tmp_path / "replay.extxyz"
    assert _dataset(path, None) == [str(path)]
    weights = {"energy": 0.0, "force": 0.2, "stress": 0.0}
    assert _dataset(path, None, weights) == [
        {"file_list": [{"file": str(path)}], "data_weight": weights}
    ]
    assert _dataset(path, "PBE", weights)[0]["data_modality"] == "PBE"
    tagged = frames[0].copy()
    tagged.calc = frames[0].calc
    tagged.info = {"uid": "init-0"}
    tagged.set_momenta(np.ones((len(tagged), 3)))
    (bare,) = _bare([tagged])
    assert bare.info == {}
    assert not bare.has("momenta")
    assert bare.get_potential_energy() == frames[0].get_potential_energy()
    assert np.array_equal(bare.get_forces(), frames[0].get_forces())
