"""The real DeePMD-kit PyTorch backend (``dpa``) on a tiny DPA-3 pretrained here.

The "foundation" is ``dpa_foundation`` (tests/models/conftest.py); the backend
contract runs in tests/models/test_contract.py.
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

from pfd.errors import PFDError
from pfd.models.dpa import DPABackend, model_params

pytest.importorskip("deepmd")


def test_deepmd_pt_imports_with_this_torch():
    """The wheel's ops are built for another torch: pfd imports without them."""
    from pfd.models._dp_pt import import_deepmd_pt, ops_match_torch

    assert import_deepmd_pt() == ops_match_torch()
    import deepmd.env
    import deepmd.lib

    # the TensorFlow student still finds its ops in the same process
    assert Path(deepmd.lib.__path__[0]) == deepmd.env.SHARED_LIB_DIR


def test_missing_or_unreadable_model_is_a_clear_error(dpa_foundation, tmp_path):
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
    assert backend.type_map(dpa_foundation) == ["Cu"]
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    cu.calc = backend.calculator(dpa_foundation)  # compiled beside PyG's patch
    assert np.isfinite(cu.get_potential_energy())


def test_pfd_run_fine_tunes_a_dpa_model(dpa_foundation, make_config, tmp_path: Path):
    """One iteration of the loop, as a user runs it, with a DPA-3 foundation."""
    path = make_config(
        {
            "model": {
                "backend": "dpa",
                "checkpoint": str(dpa_foundation),
                "threads": 1,
            },
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
