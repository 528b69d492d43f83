"""The real MACE backend, in its own environment, on a tiny MACE trained here.

The contract runs in tests/models/test_contract.py; the foundation is
``mace_foundation`` (tests/models/conftest.py).

mace-torch pins e3nn 0.4.4 and cannot live in pfd's environment (SevenNet and
DeePMD-kit need e3nn >= 0.5): ``scripts/install.sh`` makes ``.venv-mace``, and
pfd drives it through ``model.python``. The "foundation" is a 2-layer MACE with
8 channels trained for 5 epochs on EMT Cu and Cu3Au (two elements, as real
foundations have many: mace-torch 0.3.16 cannot read the E0s of a one-element
foundation for its replay head) with an energy zero 2 eV/atom away from the Cu
frames it is then fine-tuned on. Its training frames are the replay data.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from pfd.analysis.errors import evaluate
from pfd.errors import PFDError
from pfd.models import TrainingJob
from pfd.models.mace import MACEBackend
from tests.models.conftest import cu_frames, mace_python

PYTHON = mace_python()
pytestmark = pytest.mark.skipif(
    PYTHON is None, reason="no MACE environment: bash scripts/install.sh makes one"
)


@pytest.fixture(scope="module")
def frames():
    return cu_frames(5, 1, True)


def test_missing_model_or_environment_is_a_clear_error(tmp_path: Path):
    with pytest.raises(PFDError, match="nothing is downloaded"):
        MACEBackend(python=PYTHON).resolve(str(tmp_path / "mace-mp-0b3-medium.model"))
    model = tmp_path / "some.model"
    model.write_bytes(b"x")
    with pytest.raises(PFDError, match=r"has no mace-torch.*model\.python"):
        MACEBackend(python=sys.executable).info(model)
    with pytest.raises(PFDError, match=r"model\.python .* not found"):
        MACEBackend(python=str(tmp_path / "nope/bin/python")).info(model)


def test_one_process_answers_structures_of_any_size(mace_foundation, frames):
    backend = MACEBackend(threads=1, python=PYTHON)
    assert backend.info(mace_foundation)["atomic_numbers"] == [29, 79]
    calc = backend.calculator(mace_foundation)
    cu = bulk("Cu", "fcc", 3.6, cubic=True).repeat((2, 1, 1))
    cu.rattle(0.05, seed=1)
    cu.calc = calc
    assert np.isfinite(cu.get_potential_energy())
    small = frames[0].copy()
    small.calc = calc
    assert small.get_forces().shape == (4, 3)


@pytest.mark.slow  # ~70 s quiet; MACE's real fine-tuning stays in the default suite
def test_replay_fine_tuning_keeps_a_head_on_the_foundation_data(
    mace_foundation, frames, tmp_path: Path
):
    """finetune.replay_data: MACE's multi-head fine-tuning, used at its DFT head."""
    from pfd.config import FineTuneConfig

    backend = MACEBackend(threads=1, python=PYTHON)
    refit = backend.refit_e0(mace_foundation, frames, tmp_path / "e0" / "model")
    cfg = FineTuneConfig(
        epochs=2, batch_size=2, replay_data=mace_foundation.parent / "replay.extxyz"
    )
    job = TrainingJob(refit, frames[1:], frames[:1], tmp_path / "ft", cfg)
    out = backend.fine_tune(job)
    assert sorted(backend.info(out)["heads"]) == ["Default", "pt_head"]
    log = (tmp_path / "ft" / "train.log").read_text()
    assert "--pt_train_file" not in log  # (arguments are not echoed)
    assert "Using heads: ['Default', 'pt_head']" in log
    # the replay head keeps the foundation's energy zero (the replay data's), the
    # DFT head gets the refitted one (the DFT frames sit ~2 eV/atom lower)
    e0 = dict(re.findall(r"for head (\w+): \{29: ([-\d.]+)", log))
    original = backend.info(mace_foundation)["e0s"]["Default"][0]
    refitted = backend.info(refit)["e0s"]["Default"][0]
    assert original - refitted > 1.0
    assert float(e0["pt_head"]) == pytest.approx(original, abs=1e-6)
    assert float(e0["Default"]) == pytest.approx(refitted, abs=1e-6)
    # used at its DFT head without a model.head: energies at the DFT zero; its
    # replay head predicts at the foundation's, > 1 eV/atom away
    tuned = evaluate(frames, backend.calculator(out))
    assert tuned.energy_rmse_eV_atom < 0.3
    replay_head = MACEBackend(threads=1, python=PYTHON, head="pt_head")
    assert evaluate(frames, replay_head.calculator(out)).energy_rmse_eV_atom > 1.0


def test_pfd_run_fine_tunes_a_mace_model(mace_foundation, make_config, tmp_path: Path):
    """One iteration of the loop, as a user runs it, with MACE in its own env."""
    path = make_config(
        {
            "model": {
                "backend": "mace",
                "checkpoint": str(mace_foundation),
                "python": PYTHON,
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
    assert (tmp_path / "run" / "iter_001" / "finetune" / "model.model").exists()
