"""The real DeePMD-kit PyTorch backend (``dpa``) on a tiny DPA-3 pretrained here.

The "foundation" is a DPA-3 with one small repflow layer, pretrained in the
test for 60 steps on EMT Cu with an energy zero 2 eV/atom away from the
frames it is then fine-tuned on (as a DFT code's would be).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from pfd.errors import PFDError
from pfd.evaluate import evaluate
from pfd.label.results import single_point
from pfd.models.dpa import DPABackend, model_params
from pfd.structures import perturb
from pfd.testing import check_backend_contract

pytest.importorskip("deepmd")

TINY_DPA3 = {
    "type": "dpa3",
    "repflow": {
        "n_dim": 8,
        "e_dim": 8,
        "a_dim": 4,
        "nlayers": 1,
        "e_rcut": 5.0,
        "e_rcut_smth": 4.0,
        "e_sel": 60,
        "a_rcut": 3.5,
        "a_rcut_smth": 3.0,
        "a_sel": 20,
        "axis_neuron": 4,
    },
    "precision": "float32",
    "seed": 1,
}


def _cu_frames(n: int, seed: int, asap_cutoff: bool, shift_eV_atom: float = 0.0):
    rng = np.random.default_rng(seed)
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    frames = []
    for k in range(n):
        atoms = perturb(cu.repeat((1 + k % 2, 1, 1)), rng, 0.08, 0.03)
        atoms = single_point(atoms, EMT(asap_cutoff=asap_cutoff))
        results = dict(atoms.calc.results)
        for key in ("energy", "free_energy"):  # dpdata trains on free_energy
            results[key] = results.get(key, results["energy"]) + shift_eV_atom * len(
                atoms
            )
        atoms.calc = SinglePointCalculator(atoms, **results)
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def foundation(tmp_path_factory) -> Path:
    from pfd.distill import to_deepmd
    from pfd.models.dpa import pt_env

    work = tmp_path_factory.mktemp("dpa3")
    data = to_deepmd(_cu_frames(16, 0, False, 2.0), ["Cu"], work / "data")
    job = {
        "model": {
            "type_map": ["Cu"],
            "descriptor": TINY_DPA3,
            "fitting_net": {"neuron": [16, 16], "precision": "float32", "seed": 1},
        },
        "learning_rate": {"start_lr": 2e-3, "stop_lr": 2e-4, "decay_steps": 20},
        "loss": {"start_pref_e": 0.2, "limit_pref_e": 1, "start_pref_f": 100},
        "training": {
            "training_data": {"systems": data, "batch_size": 2},
            "numb_steps": 60,
            "save_freq": 60,
            "seed": 1,
        },
    }
    (work / "input.json").write_text(json.dumps(job))
    cmd = [sys.executable, "-m", "pfd.models._dp_pt", "train", "input.json"]
    done = subprocess.run(
        cmd, cwd=work, env=pt_env(1), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return (work / "model.ckpt.pt").resolve()


@pytest.fixture(scope="module")
def frames():
    return _cu_frames(5, 1, True)


def test_deepmd_pt_imports_with_this_torch():
    """The wheel's ops are built for another torch: pfd imports without them."""
    from pfd.models._dp_pt import import_deepmd_pt, ops_match_torch

    assert import_deepmd_pt() == ops_match_torch()
    import deepmd.env
    import deepmd.lib

    # the TensorFlow student still finds its ops in the same process
    assert Path(deepmd.lib.__path__[0]) == deepmd.env.SHARED_LIB_DIR


def test_dpa_backend_contract(foundation, frames, tmp_path: Path):
    # PyG, imported with SevenNet, patches torch.index_select in a way that
    # TorchScript cannot compile: the DPA-3 must load beside it all the same
    pytest.importorskip("torch_geometric.hash_tensor")
    backend = DPABackend(threads=1)
    with pytest.raises(PFDError, match="nothing is downloaded"):
        backend.resolve(str(tmp_path / "DPA-3.1-3M.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    with pytest.raises(PFDError, match="cannot read DeePMD-kit model"):
        model_params(bad)
    assert backend.type_map(foundation) == ["Cu"]
    foundation_calc = backend.calculator(foundation)
    before_train = evaluate(frames[1:], foundation_calc)
    result = check_backend_contract(backend, str(foundation), frames, tmp_path)
    assert result["before"].energy_rmse_eV_atom > 1.0  # the 2 eV/atom zero
    assert result["after_e0"].energy_rmse_eV_atom < 0.1
    tuned = result["fine_tuned"]
    assert tuned.force_rmse_eV_A < before_train.force_rmse_eV_A
    assert tuned.energy_rmse_eV_atom < 0.1
    job = json.loads((tmp_path / "ft" / "input.json").read_text())
    assert job["model"]["descriptor"]["type"] == "dpa3"  # the pretrained model's
    assert job["loss"]["limit_pref_v"] == 1.0  # frames carry stress
    out = tmp_path / "ft" / "model.pth"
    assert backend.resolve(str(out)) == out  # frozen: what the loop keeps
    assert model_params(out)["descriptor"]["type"] == "dpa3"


def test_pfd_run_fine_tunes_a_dpa_model(foundation, make_config, tmp_path: Path):
    """One iteration of the loop, as a user runs it, with a DPA-3 foundation."""
    path = make_config(
        {
            "model": {"backend": "dpa", "checkpoint": str(foundation), "threads": 1},
            "finetune": {"epochs": 3, "batch_size": 2, "learning_rate": 0.001},
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "pfd", "run", str(path), "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    (record,) = state["iterations"]
    assert record["n_new"] == 2
    assert np.isfinite(record["force_rmse_eV_A"])
    model = tmp_path / "run" / "iter_001" / "model.pth"
    assert model_params(model)["descriptor"]["type"] == "dpa3"
    config = yaml.safe_load(path.read_text())
    assert config["model"]["backend"] == "dpa"
