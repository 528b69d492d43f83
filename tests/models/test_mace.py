"""The real MACE backend, in its own environment, on a tiny MACE trained here.

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
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

from pfd.errors import PFDError
from pfd.evaluate import evaluate
from pfd.label.results import single_point
from pfd.models.mace import MACEBackend, _ref
from pfd.structures import perturb
from pfd.testing import check_backend_contract

ROOT = Path(__file__).resolve().parents[2]


def _mace_python() -> str | None:
    for python in (os.environ.get("PFD_MACE_PYTHON"), ROOT / ".venv-mace/bin/python"):
        if python and Path(python).exists():
            return str(python)
    return None


PYTHON = _mace_python()
pytestmark = pytest.mark.skipif(
    PYTHON is None, reason="no MACE environment: bash scripts/install.sh makes one"
)


def _cu_frames(n: int, seed: int, asap_cutoff: bool, shift_eV_atom: float = 0.0):
    rng = np.random.default_rng(seed)
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    frames = []
    for k in range(n):
        atoms = single_point(
            perturb(cu.repeat((1 + k % 2, 1, 1)), rng, 0.08, 0.03),
            EMT(asap_cutoff=asap_cutoff),
        )
        atoms.calc.results["energy"] += shift_eV_atom * len(atoms)
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def foundation(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("mace")
    rng = np.random.default_rng(7)
    cu3au = bulk("Cu", "fcc", 3.7, cubic=True)
    cu3au.numbers[0] = 79
    alloy = [single_point(perturb(cu3au, rng, 0.08, 0.03), EMT()) for _ in range(4)]
    for atoms in alloy:
        atoms.calc.results["energy"] += 2.0 * len(atoms)
    frames = [_ref(a) for a in _cu_frames(20, 0, False, 2.0) + alloy]
    write(work / "train.extxyz", frames[:14] + frames[20:22])
    write(work / "valid.extxyz", frames[14:20] + frames[22:])
    write(work / "replay.extxyz", frames)
    args = [
        "--name", "tiny", "--model", "MACE", "--r_max", "4.0",
        "--num_channels", "8", "--max_L", "0", "--correlation", "2",
        "--num_interactions", "2", "--E0s", "average", "--max_num_epochs", "5",
        "--batch_size", "4", "--lr", "0.01", "--seed", "1", "--device", "cpu",
        "--train_file", "train.extxyz", "--valid_file", "valid.extxyz",
        "--energy_key", "REF_energy", "--forces_key", "REF_forces",
        "--stress_key", "REF_stress", "--loss", "stress",
        "--default_dtype", "float64", "--model_dir", ".",
        "--results_dir", "results", "--checkpoints_dir", "checkpoints",
        "--log_dir", "logs",
    ]  # fmt: skip
    env = MACEBackend(threads=1, python=PYTHON)._env()
    done = subprocess.run(
        [PYTHON, "-m", "mace.cli.run_train", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return work / "tiny.model"


@pytest.fixture(scope="module")
def frames():
    return _cu_frames(5, 1, True)


def test_missing_model_or_environment_is_a_clear_error(tmp_path: Path):
    with pytest.raises(PFDError, match="nothing is downloaded"):
        MACEBackend(python=PYTHON).resolve(str(tmp_path / "mace-mp-0b3-medium.model"))
    model = tmp_path / "some.model"
    model.write_bytes(b"x")
    with pytest.raises(PFDError, match=r"has no mace-torch.*model\.python"):
        MACEBackend(python=sys.executable).info(model)
    with pytest.raises(PFDError, match=r"model\.python .* not found"):
        MACEBackend(python=str(tmp_path / "nope/bin/python")).info(model)


def test_mace_backend_contract(foundation, frames, tmp_path: Path):
    backend = MACEBackend(threads=1, python=PYTHON)
    assert backend.info(foundation)["atomic_numbers"] == [29, 79]
    calc = backend.calculator(foundation)
    cu = bulk("Cu", "fcc", 3.6, cubic=True).repeat((2, 1, 1))
    cu.rattle(0.05, seed=1)
    cu.calc = calc
    # one long-lived process answers structures of any size
    assert np.isfinite(cu.get_potential_energy())
    small = frames[0].copy()
    small.calc = calc
    assert small.get_forces().shape == (4, 3)
    result = check_backend_contract(backend, str(foundation), frames, tmp_path)
    assert result["before"].energy_rmse_eV_atom > 1.0  # the 2 eV/atom zero
    assert result["after_e0"].energy_rmse_eV_atom < 0.1
    tuned = result["fine_tuned"]
    assert tuned.energy_rmse_eV_atom < 0.1
    # two epochs on four frames: MACE's validation force error must fall, and
    # the model kept must predict differently from the one it started from
    log = (tmp_path / "ft" / "train.log").read_text()
    assert "Using foundation model" in log
    rmse_f = [float(x) for x in re.findall(r"RMSE_F=\s*([\d.]+)", log)]
    assert min(rmse_f[1:]) < rmse_f[0]
    refit = evaluate(frames[1:], backend.calculator(tmp_path / "e0" / "model"))
    assert abs(tuned.force_rmse_eV_A - refit.force_rmse_eV_A) > 1e-6


def test_replay_fine_tuning_keeps_a_head_on_the_foundation_data(
    foundation, frames, tmp_path: Path
):
    """finetune.replay_data: MACE's multi-head fine-tuning, used at its DFT head."""
    from pfd.config import FineTuneConfig

    backend = MACEBackend(threads=1, python=PYTHON)
    refit = backend.refit_e0(foundation, frames, tmp_path / "e0" / "model")
    cfg = FineTuneConfig(
        epochs=2, batch_size=2, replay_data=foundation.parent / "replay.extxyz"
    )
    out = backend.fine_tune(refit, frames[1:], frames[:1], tmp_path / "ft", cfg, 0)
    assert sorted(backend.info(out)["heads"]) == ["Default", "pt_head"]
    log = (tmp_path / "ft" / "train.log").read_text()
    assert "--pt_train_file" not in log  # (arguments are not echoed)
    assert "Using heads: ['Default', 'pt_head']" in log
    # the replay head keeps the foundation's energy zero (the replay data's), the
    # DFT head gets the refitted one (the DFT frames sit ~2 eV/atom lower)
    e0 = dict(re.findall(r"for head (\w+): \{29: ([-\d.]+)", log))
    original = backend.info(foundation)["e0s"]["Default"][0]
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


def test_pfd_run_fine_tunes_a_mace_model(foundation, make_config, tmp_path: Path):
    """One iteration of the loop, as a user runs it, with MACE in its own env."""
    path = make_config(
        {
            "model": {
                "backend": "mace",
                "checkpoint": str(foundation),
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
