"""Nothing lost, nothing stranded: a lost database comes back from the job
directories, a failed first iteration is fixed and continued, a run directory moves.

All with the EMT stand-ins (labeller and model): seconds each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from ase.build import bulk
from ase.io import read, write
from typer.testing import CliRunner

from pfd.cli.main import app
from pfd.config import load_config
from pfd.db import RunDB
from pfd.errors import PFDError
from pfd.loop import run_finetune
from pfd.progress import Reporter
from tests.conftest import BASE_CONFIG, merge, stand_in

QUIET = Reporter(quiet=True)


def _project(folder: Path, log: Path, update: dict | None = None) -> Path:
    """A YAML, its structure and the stand-in foundation model in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "cu.extxyz", bulk("Cu", "fcc", 3.6, cubic=True))
    overrides = merge(stand_in(folder, "x"), {"run_dir": "run"})
    overrides["labeler"]["parameters"]["log"] = str(log)
    config = merge(merge(BASE_CONFIG, overrides), {"explore": {"workers": 1}})
    config = merge(config, update or {})
    path = folder / "pfd.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _frames(db: RunDB) -> list[tuple]:
    return [
        (
            f.uid,
            f.iteration,
            f.stage,
            f.source,
            f.status,
            f.attempts,
            round(f.atoms.get_potential_energy(), 8)
            if f.status == "labelled"
            else None,
        )
        for f in db.frames()
    ]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, Path]:
    """A finished 2-iteration stand-in run: (its folder, the labeller's call log)."""
    root = tmp_path_factory.mktemp("recover")
    log = root / "calls.log"
    config = _project(root / "a", log, {"convergence": {"max_iterations": 2}})
    run_finetune(load_config(config), QUIET)
    return config.parent, log


@pytest.fixture
def finished(pristine, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the finished run (its YAML, the shared call log) for one test."""
    folder, log = pristine
    shutil.copytree(folder, tmp_path / "a")
    return tmp_path / "a" / "pfd.yaml", log


def test_pfd_recover_rebuilds_every_label(finished):
    config, _log = finished
    run = load_config(config).run_dir
    before = _frames(RunDB(run / "pfd.db"))
    n_labels = sum(1 for f in before if f[4] == "labelled")
    assert n_labels == 3 + 2 + 2
    (run / "pfd.db").unlink()
    result = CliRunner().invoke(app, ["recover", str(run)])
    assert result.exit_code == 0, result.output
    assert f"{n_labels} labelled" in result.output
    assert _frames(RunDB(run / "pfd.db")) == before  # iteration, origin, label
    assert len(read(run / "dft.extxyz", ":")) == n_labels


def test_lost_database_is_rebuilt_by_run_without_repeating_dft(finished, capsys):
    config, log = finished
    cfg = load_config(config)
    before = _frames(RunDB(cfg.run_dir / "pfd.db"))
    calls = len(_calls(log))
    (cfg.run_dir / "pfd.db").unlink()
    state = run_finetune(cfg, QUIET)
    assert state.finished
    assert "Warning:" in capsys.readouterr().err
    assert len(_calls(log)) == calls  # no DFT job repeated
    assert _frames(RunDB(cfg.run_dir / "pfd.db")) == before
    assert len(read(cfg.run_dir / "dft.extxyz", ":")) == 7


def test_dft_extxyz_never_shrinks(finished):
    config, _log = finished
    cfg = load_config(config)
    dft = (cfg.run_dir / "dft.extxyz").read_bytes()
    (cfg.run_dir / "pfd.db").unlink()
    for job in (cfg.run_dir / "label").glob("it2-*"):
        shutil.rmtree(job)  # these labels survive only in dft.extxyz
    with pytest.raises(PFDError, match="refusing to shrink it") as err:
        run_finetune(cfg, QUIET)
    assert "pfd recover" in str(err.value)
    assert "\n" not in str(err.value)
    assert (cfg.run_dir / "dft.extxyz").read_bytes() == dft


def test_failed_first_iteration_is_fixed_and_continued(tmp_path: Path):
    log = tmp_path / "calls.log"
    flaky = {
        "labeler": {
            "calculator": "pfd.testing:FlakyEMT",
            "parameters": {"every": 1},
            "max_attempts": 1,
        }
    }
    bad = load_config(_project(tmp_path / "a", log, flaky))
    bad = bad.model_copy(
        update={"labeler": bad.labeler.model_copy(update={"parameters": {"every": 1}})}
    )
    with pytest.raises(PFDError, match="3 of 3 DFT calculations") as err:
        run_finetune(bad, QUIET)
    assert "SCF did not converge (injected)" in str(err.value)  # error.txt's reason
    with pytest.raises(PFDError, match="3 of 3"):  # unchanged: not retried
        run_finetune(bad, QUIET)
    fixed = load_config(_project(tmp_path / "a", log))  # labeler fixed
    state = run_finetune(fixed, QUIET)
    assert state.finished
    db = RunDB(fixed.run_dir / "pfd.db")
    assert db.count(iteration=0, status="labelled") == 3
    assert db.count(status="failed") == 0
    assert len(_calls(log)) == db.count(status="labelled")
    recorded = json.loads((fixed.run_dir / "config.json").read_text())
    assert recorded["labeler"]["calculator"] == "pfd.testing:CountingEMT"


def test_moved_run_directory_resumes_without_relabelling(finished, tmp_path: Path):
    config, log = finished
    calls = len(_calls(log))
    model = load_config(config).run_dir / "iter_001" / "model.pth"
    stamp = model.stat().st_mtime_ns
    state = json.loads((model.parent.parent / "state.json").read_text())
    assert state["final_model"] == "final_0007/model.pth"  # relative to the run
    moved = tmp_path / "elsewhere" / "b"
    shutil.move(config.parent, moved)  # YAML, structure, model and run together
    result = CliRunner().invoke(app, ["run", str(moved / "pfd.yaml"), "-q"])
    assert result.exit_code == 0, result.output
    assert len(_calls(log)) == calls  # no relabel
    assert (moved / "run" / "iter_001" / "model.pth").stat().st_mtime_ns == stamp
    status = CliRunner().invoke(app, ["status", str(moved / "run")])
    assert status.exit_code == 0, status.output
    assert "7 labelled" in status.output
    shown = CliRunner().invoke(app, ["status", str(moved / "run"), "--json"])
    payload = json.loads(shown.output)
    assert payload["final_model"] == str(moved / "run" / "final_0007" / "model.pth")
    assert Path(payload["iterations"][0]["model"]).is_file()
