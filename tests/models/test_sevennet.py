"""The real SevenNet-0 backend (shipped checkpoint) on tiny EMT Cu frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from pfd.config import FineTuneConfig
from pfd.errors import PFDError
from pfd.evaluate import evaluate
from pfd.label.results import single_point
from pfd.models.sevennet import SevenNetBackend
from pfd.structures import perturb


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


def test_e0_refit_removes_energy_offset(backend, frames, tmp_path: Path):
    base = backend.resolve("7net-0")
    before = evaluate(frames, backend.calculator(base))
    refit = backend.refit_e0(base, frames, tmp_path / "e0.pth")
    after = evaluate(frames, backend.calculator(refit))
    # EMT's energy zero is ~4 eV/atom away from PBE's
    assert before.energy_rmse_eV_atom > 1.0
    assert after.energy_rmse_eV_atom < 0.05
    # forces untouched by a constant per-atom shift
    assert after.force_rmse_eV_A == pytest.approx(before.force_rmse_eV_A, rel=1e-4)
    assert "Cu" in torch.load(refit, weights_only=False)["pfd_e0_shift_eV"]


def test_fine_tune_lowers_training_error(backend, frames, tmp_path: Path):
    base = backend.refit_e0(backend.resolve("7net-0"), frames, tmp_path / "e0.pth")
    before = evaluate(frames, backend.calculator(base))
    epochs = []
    out = backend.fine_tune(
        base,
        frames[:5],
        frames[5:],
        tmp_path / "ft",
        FineTuneConfig(epochs=3, batch_size=2),
        seed=1,
        on_epoch=lambda i, n: epochs.append((i, n)),
    )
    assert out.exists()
    assert epochs[-1] == (3, 3)
    after = evaluate(frames[:5], backend.calculator(out))
    assert after.force_rmse_eV_A < before.force_rmse_eV_A
