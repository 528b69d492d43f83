"""The whole loop: EMT labels on Cu, the real SevenNet-0 fine-tuned for an epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ase.io import read

from pfd.config import load_config
from pfd.db import RunDB
from pfd.errors import PFDError
from pfd.loop import run_finetune
from pfd.progress import Reporter
from pfd.state import RunState

QUIET = Reporter(quiet=True)


def _calls(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_loop_runs_end_to_end_and_resume_repeats_nothing(make_config, tmp_path: Path):
    log = tmp_path / "calls.log"
    cfg = load_config(
        make_config(
            {
                "labeler": {
                    "calculator": "pfd.testing:CountingEMT",
                    "parameters": {"log": str(log)},
                },
                "convergence": {"max_iterations": 2, "force_rmse_eV_A": 1e-6},
            }
        )
    )
    state = run_finetune(cfg, QUIET)
    run = cfg.run_dir
    db = RunDB(run / "pfd.db")
    assert db.integrity_ok()
    # 3 initial frames + 2 per iteration, nothing failed or left pending
    assert db.count(iteration=0, status="labelled") == 3
    assert db.count(iteration=1, status="labelled") == 2
    assert db.count(iteration=2, status="labelled") == 2
    assert db.count(status="pending") == 0
    assert len(_calls(log)) == 7  # one reference calculation per frame
    # unreachable threshold: not converged, final model trained on all 7 frames
    assert not state.converged
    assert state.finished
    assert [r.iteration for r in state.iterations] == [1, 2]
    assert [r.n_train for r in state.iterations] == [3, 5]
    assert all(
        r.force_rmse_eV_A is not None and r.force_rmse_eV_A < 1.0
        for r in state.iterations
    )
    assert state.foundation["energy_rmse_eV_atom"] > 1.0  # EMT zero vs PBE zero
    assert (run / "final_model.pth").exists()
    assert len(read(run / "dft.extxyz", ":")) == 7
    for it in (1, 2):
        assert (run / f"iter_{it:03d}" / "model.pth").exists()
        assert (run / f"iter_{it:03d}" / "candidates.extxyz").stat().st_size > 0
    # the new-frame error is measured before training on those frames
    rec = json.loads((run / "state.json").read_text())["iterations"][0]
    assert rec["n_new"] == 2
    assert "label" in rec["seconds"]

    # running again: everything is found on disk, no reference calculation repeated
    again = run_finetune(cfg, QUIET)
    assert len(_calls(log)) == 7
    assert [r.force_rmse_eV_A for r in again.iterations] == [
        r.force_rmse_eV_A for r in state.iterations
    ]


def test_interrupted_labelling_resumes_without_repeating(
    make_config, tmp_path: Path, monkeypatch
):
    log = tmp_path / "calls.log"
    cfg = load_config(
        make_config(
            {
                "labeler": {
                    "calculator": "pfd.testing:CountingEMT",
                    "parameters": {"log": str(log)},
                    "workers": 1,
                },
                "initial": {"frames_per_structure": 4},
            }
        )
    )
    import pfd.db

    real = pfd.db.RunDB.set_label
    stored = []

    def set_label_then_die(self, row_id, result, settings):
        real(self, row_id, result, settings)
        stored.append(row_id)
        if len(stored) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C after two labels

    monkeypatch.setattr(pfd.db.RunDB, "set_label", set_label_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(cfg, QUIET)
    monkeypatch.setattr(pfd.db.RunDB, "set_label", real)
    assert RunDB(cfg.run_dir / "pfd.db").count(status="labelled") == 2

    state = run_finetune(cfg, QUIET)
    assert state.finished
    fingerprints = _calls(log)
    assert len(fingerprints) == len(set(fingerprints))  # no frame labelled twice
    db = RunDB(cfg.run_dir / "pfd.db")
    assert len(fingerprints) == db.count(status="labelled") == 4 + 2


GUARD = """
import socket
_connect = socket.socket.connect
def _no_network(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise OSError("network disabled by the pfd test suite")
    return _connect(self, address)
socket.socket.connect = _no_network
socket.socket.connect_ex = _no_network
"""


def test_converges_and_stops_early_without_network(make_config, tmp_path, monkeypatch):
    """No step (SevenNet loading or training, MD, DFT workers) touches the network."""
    import os
    import socket
    import subprocess
    import sys

    (tmp_path / "guard").mkdir()
    (tmp_path / "guard" / "sitecustomize.py").write_text(GUARD)
    path = os.pathsep.join([str(tmp_path / "guard"), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    probe = "import socket; socket.create_connection(('127.0.0.1', 9), timeout=1)"
    child = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True
    )
    assert "network disabled by the pfd test suite" in child.stderr  # guard active
    real = socket.socket.connect

    def no_network(self, address):  # and in this process
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError("network disabled by the pfd test suite")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)

    cfg = load_config(make_config({"convergence": {"max_iterations": 3}}))
    state = run_finetune(cfg, QUIET)
    assert state.converged
    assert len(state.iterations) == 1
    assert state.final_model == str(cfg.run_dir / "iter_001" / "model.pth")


def test_resume_refuses_changed_labeler(make_config):
    cfg = load_config(make_config())
    run_finetune(cfg, QUIET)
    changed = load_config(
        make_config({"labeler": {"parameters": {"asap_cutoff": True}}})
    )
    with pytest.raises(PFDError, match=r"different 'labeler\.parameters'"):
        run_finetune(changed, QUIET)
    assert RunState.load(cfg.run_dir).converged


def test_too_many_failures_stop_with_a_clear_message(make_config):
    cfg = load_config(
        make_config(
            {
                "labeler": {
                    "calculator": "pfd.testing:FlakyEMT",
                    "parameters": {"every": 1},
                    "max_attempts": 1,
                },
            }
        )
    )
    with pytest.raises(
        PFDError, match=r"3 of 3 DFT calculations of iteration 0 failed"
    ):
        run_finetune(cfg, QUIET)
    db = RunDB(cfg.run_dir / "pfd.db")
    assert db.count(status="failed") == 3


def test_labels_from_two_reference_settings_are_refused(tmp_path: Path):
    """Energies from two codes (or two settings of one) never share a training set."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from pfd.label.results import single_point
    from pfd.training import check_one_reference

    db = RunDB(tmp_path / "pfd.db")
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    settings = [
        {"code": "gpaw", "version": "25.1", "parameters": {"ecut": 350}},
        {"code": "gpaw", "version": "26.7", "parameters": {"ecut": 350}},  # same zero
        {"code": "qe", "version": "6.7", "parameters": {"ecutwfc": 40}},
    ]
    for k, s in enumerate(settings):
        row = db.add_pending(cu, uid=f"f{k}", iteration=k, stage="x", source="t")
        db.set_label(row, single_point(cu, EMT()), s)
    check_one_reference(db, max_iteration=1, allow_mixed=False)  # versions differ only
    with pytest.raises(PFDError, match="2 different reference settings") as err:
        check_one_reference(db, max_iteration=2, allow_mixed=False)
    assert "labeler.allow_mixed: true" in str(err.value)
    assert "\n" not in str(err.value)
    check_one_reference(db, max_iteration=2, allow_mixed=True)
