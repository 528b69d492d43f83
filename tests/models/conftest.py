"""Tiny foundation models made in the test session (DPA-3, MACE) and their frames.

Each foundation is trained once per session on EMT Cu whose energy zero lies
2 eV/atom away from the frames it is then fine-tuned on (as a DFT code's would).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from pfd.label.results import single_point
from pfd.structures import perturb

ROOT = Path(__file__).resolve().parents[2]

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


def cu_frames(n: int, seed: int, asap_cutoff: bool, shift_eV_atom: float = 0.0):
    """EMT Cu frames of 4 and 8 atoms, energies shifted by ``shift_eV_atom``."""
    rng = np.random.default_rng(seed)
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    frames = []
    for k in range(n):
        atoms = perturb(cu.repeat((1 + k % 2, 1, 1)), rng, 0.08, 0.03)
        atoms = single_point(atoms, EMT(asap_cutoff=asap_cutoff))
        results = dict(atoms.calc.results)
        for key in ("energy", "free_energy"):  # dpdata trains on free_energy
            energy = results.get(key, results["energy"])
            results[key] = energy + shift_eV_atom * len(atoms)
        atoms.calc = SinglePointCalculator(atoms, **results)
        frames.append(atoms)
    return frames


def mace_python() -> str | None:
    """The python of an environment with mace-torch, if there is one."""
    for python in (os.environ.get("PFD_MACE_PYTHON"), ROOT / ".venv-mace/bin/python"):
        if python and Path(python).exists():
            return str(python)
    return None


@pytest.fixture(scope="session")
def dpa_foundation(tmp_path_factory) -> Path:
    """A DPA-3 with one small repflow layer, pretrained for 60 steps."""
    pytest.importorskip("deepmd")
    from pfd.models.dpa import pt_env
    from pfd.students.deepmd import to_deepmd

    work = tmp_path_factory.mktemp("dpa3")
    data = to_deepmd(cu_frames(16, 0, False, 2.0), ["Cu"], work / "data")
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


@pytest.fixture(scope="session")
def mace_foundation(tmp_path_factory) -> Path:
    """A 2-layer MACE with 8 channels trained for 5 epochs on EMT Cu and Cu3Au.

    Two elements, as real foundations have many: mace-torch 0.3.16 cannot read
    the E0s of a one-element foundation for its replay head. Its training
    frames are the replay data (``replay.extxyz`` beside it).
    """
    python = mace_python()
    if python is None:
        pytest.skip("no MACE environment: bash scripts/install.sh makes one")
    from pfd.models.mace import MACEBackend, _ref

    work = tmp_path_factory.mktemp("mace")
    rng = np.random.default_rng(7)
    cu3au = bulk("Cu", "fcc", 3.7, cubic=True)
    cu3au.numbers[0] = 79
    alloy = [single_point(perturb(cu3au, rng, 0.08, 0.03), EMT()) for _ in range(4)]
    for atoms in alloy:
        atoms.calc.results["energy"] += 2.0 * len(atoms)
    frames = [_ref(a) for a in cu_frames(20, 0, False, 2.0) + alloy]
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
    done = subprocess.run(
        [python, "-m", "mace.cli.run_train", *args],
        cwd=work,
        env=MACEBackend(threads=1, python=python)._env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return work / "tiny.model"
