"""Shared fixtures: a small EMT Cu run that fine-tunes SevenNet for an epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from ase.build import bulk
from ase.io import write

from pfd.config import deep_merge as merge

torch.set_num_threads(2)

BASE_CONFIG: dict[str, Any] = {
    "name": "cu-test",
    "run_dir": "run",
    "seed": 7,
    "structures": [{"path": "cu.extxyz"}],
    "model": {"checkpoint": "7net-0", "threads": 2},
    "labeler": {"code": "ase", "calculator": "ase.calculators.emt:EMT", "workers": 2},
    "initial": {"frames_per_structure": 3, "displacement_A": 0.05, "strain": 0.02},
    "finetune": {"epochs": 1, "batch_size": 2},
    "explore": {
        "temperatures_K": [300, 900],
        "pressures_bar": [None, 1000],
        "steps": 12,
        "sample_every": 4,
    },
    "select": {"max_per_iteration": 2},
    "convergence": {
        "max_iterations": 1,
        "force_rmse_eV_A": 1.0,
        "energy_rmse_eV_atom": 1.0,
    },
    "distill": {"enabled": False},
    "report": {"enabled": False},
}


def stand_in(tmp_path: Path, name: str, delay_s: float = 0.0) -> dict[str, Any]:
    """Overrides for a fast loop: the EMT stand-in model, a counting EMT labeller.

    The labeller uses another EMT cutoff than the model, so the model is never
    exact and the loop iterates; each label appends a line to calls-NAME.log.
    """
    return {
        "run_dir": f"run-{name}",
        "model": {"backend": "pfd.testing:EMTBackend", "checkpoint": "foundation.json"},
        "labeler": {
            "calculator": "pfd.testing:CountingEMT",
            "parameters": {
                "log": str(tmp_path / f"calls-{name}.log"),
                "asap_cutoff": True,
                "delay_s": delay_s,
            },
        },
        "convergence": {"force_rmse_eV_A": 1e-6},
    }


@pytest.fixture
def make_config(tmp_path: Path):
    """Write cu.extxyz and a pfd.yaml (BASE_CONFIG updated by ``overrides``)."""
    write(tmp_path / "cu.extxyz", bulk("Cu", "fcc", 3.6, cubic=True))

    def _make(overrides: dict | None = None, name: str = "pfd.yaml") -> Path:
        cfg = merge(BASE_CONFIG, overrides or {})
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg))
        return path

    return _make
