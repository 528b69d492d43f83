"""Every registered backend passes one contract (pfd.testing.check_backend_contract).

The test is parametrised over :data:`pfd.registry.BACKENDS`: a new backend is
picked up by its registry line and runs from its ``default_checkpoint`` on EMT
Cu frames; a case below only says where a backend without a shipped model gets
one, what it needs installed, and what more to assert. A backend whose package
(or environment) is missing is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from pfd.analysis.errors import evaluate
from pfd.label.results import single_point
from pfd.models import backend_class
from pfd.registry import BACKENDS
from pfd.structures import perturb
from pfd.testing import EMTBackend, check_backend_contract
from tests.models.conftest import cu_frames, mace_python


def _cubic_cu_frames() -> list:
    rng = np.random.default_rng(5)
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    return [
        single_point(perturb(cu, rng, 0.06, 0.03), EMT(asap_cutoff=True))
        for _ in range(4)
    ]


def _chgnet_checks(backend, frames, result, before_train, workdir: Path) -> None:
    tuned = result["fine_tuned"]
    assert tuned.stress_rmse_GPa <= before_train.stress_rmse_GPa
    assert (workdir / "ft" / "history.json").exists()


def _dpa_checks(backend, frames, result, before_train, workdir: Path) -> None:
    from pfd.models.dpa import model_params

    assert result["fine_tuned"].energy_rmse_eV_atom < 0.1
    job = json.loads((workdir / "ft" / "input.json").read_text())
    assert job["model"]["descriptor"]["type"] == "dpa3"  # the pretrained model's
    assert job["loss"]["limit_pref_v"] == 1.0  # frames carry stress
    assert model_params(result["model"])["descriptor"]["type"] == "dpa3"


def _mace_checks(backend, frames, result, before_train, workdir: Path) -> None:
    assert result["fine_tuned"].energy_rmse_eV_atom < 0.1
    # two epochs on four frames: MACE's validation force error must fall, and
    # the model kept must predict differently from the one it started from
    log = (workdir / "ft" / "train.log").read_text()
    assert "Using foundation model" in log
    rmse_f = [float(x) for x in re.findall(r"RMSE_F=\s*([\d.]+)", log)]
    assert min(rmse_f[1:]) < rmse_f[0]
    refit = evaluate(frames[1:], backend.calculator(workdir / "e0" / "model"))
    assert abs(result["fine_tuned"].force_rmse_eV_A - refit.force_rmse_eV_A) > 1e-6


@dataclass(frozen=True)
class Case:
    """What a backend's contract run needs beyond its registry line."""

    model: str | None = None  # a checkpoint, or a fixture name ("dpa_foundation")
    package: str | None = None  # skipped when this is not importable
    options: Callable[[], dict[str, Any]] = dict  # more keyword arguments
    frames: Callable[[], list] = _cubic_cu_frames
    epochs: int = 1
    e0_rmse_eV_atom: float = 0.05  # the energy error after the E0 refit, at most
    forces_learnt: bool = True  # the tuned forces beat the foundation's
    checks: Callable | None = None


CASES: dict[str, Case] = {
    "sevennet": Case(package="sevenn"),
    "chgnet": Case(package="chgnet", checks=_chgnet_checks),
    "dpa": Case(
        model="dpa_foundation",
        package="deepmd",
        frames=lambda: cu_frames(5, 1, True),
        e0_rmse_eV_atom=0.1,
        checks=_dpa_checks,
    ),
    "mace": Case(
        model="mace_foundation",
        frames=lambda: cu_frames(5, 1, True),
        options=lambda: {"python": mace_python()},
        epochs=2,
        e0_rmse_eV_atom=0.1,
        forces_learnt=False,  # MACE's validation error is checked instead
        checks=_mace_checks,
    ),
}


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_registered_backend_passes_the_contract(name, request, tmp_path: Path):
    case = CASES.get(name, Case())
    if case.package and importlib.util.find_spec(case.package) is None:
        pytest.skip(f"backend '{name}' needs the {case.package} package")
    cls = backend_class(name)
    assert cls.name == name  # the registry key is the backend's name
    model = case.model or cls.default_checkpoint
    assert model, f"backend '{name}' has no default_checkpoint: give it a Case"
    if model.endswith("_foundation"):
        model = str(request.getfixturevalue(model))
    backend = cls(threads=1, **case.options())
    frames = case.frames()
    before_train = evaluate(frames[1:], backend.calculator(backend.resolve(model)))
    result = check_backend_contract(backend, model, frames, tmp_path, case.epochs)
    # the frames' energy zero lies > 1 eV/atom from the model's (EMT's ~4 eV/atom
    # from the DFT-trained ones, 2 eV/atom from the tiny foundations')
    assert result["before"].energy_rmse_eV_atom > 1.0
    assert result["after_e0"].energy_rmse_eV_atom < case.e0_rmse_eV_atom
    if case.forces_learnt:
        assert result["fine_tuned"].force_rmse_eV_A < before_train.force_rmse_eV_A
    if case.checks:
        case.checks(backend, frames, result, before_train, tmp_path)


def test_emt_stand_in_backend(tmp_path):
    frames = _cubic_cu_frames()
    result = check_backend_contract(
        EMTBackend(delay_s=0), str(tmp_path / "m.json"), frames, tmp_path
    )
    assert result["after_e0"].energy_rmse_eV_atom < 0.01


def test_a_backend_that_breaks_the_contract_fails_it(tmp_path):
    """The contract can fail: a backend whose E0 refit does nothing."""

    class NoRefit(EMTBackend):
        def refit_e0(self, model, frames, out):
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(Path(model).read_text())
            return out

    model = tmp_path / "m.json"
    model.parent.mkdir(exist_ok=True)
    model.write_text(json.dumps({"e0": {"Cu": 1.0}, "trained_on": 0}))
    with pytest.raises(AssertionError):
        check_backend_contract(
            NoRefit(delay_s=0), str(model), _cubic_cu_frames(), tmp_path
        )
