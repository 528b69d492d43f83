"""Break things on purpose: SIGKILL anywhere, then resume exactly.

Uses the EMT stand-in backend (``pfd.testing:EMTBackend``) and an EMT labeller
with a different cutoff (so the "model" is never perfect and the loop iterates),
slowed down so that kills land in every step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pfd.db import RunDB
from pfd.state import RunState
from tests.conftest import merge, stand_in

KILLS = 10


def _config(make_config, tmp_path: Path, name: str) -> Path:
    return make_config(
        merge(
            stand_in(tmp_path, name, delay_s=0.4),
            {
                "labeler": {"workers": 2},
                "explore": {"workers": 1, "steps": 40},
                "finetune": {"epochs": 2},
                "convergence": {"max_iterations": 3},
            },
        ),
        name=f"{name}.yaml",
    )


class _Run(subprocess.Popen):
    """``pfd run`` with stderr in a file (a pipe nobody reads can fill and block)."""

    def __init__(self, config: Path) -> None:
        self.log = config.parent / f"{config.stem}.stderr"
        with open(self.log, "ab") as err:
            super().__init__(
                [sys.executable, "-m", "pfd", "run", str(config), "--quiet"],
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=config.parent,
            )

    def errors(self) -> str:
        return self.log.read_text()[-4000:]


def _pfd(config: Path) -> _Run:
    return _Run(config)


def _labelled(run_dir: Path) -> set[tuple]:
    db = RunDB(run_dir / "pfd.db")
    return {
        (f.uid, round(float(f.atoms.positions.sum()), 6))
        for f in db.frames(status="labelled")
    }


def test_sigkill_anywhere_resumes_exactly(make_config, tmp_path: Path):
    reference = _config(make_config, tmp_path, "ref")
    t0 = time.perf_counter()
    proc = _pfd(reference)
    assert proc.wait(timeout=600) == 0, proc.errors()
    duration = time.perf_counter() - t0
    expected = _labelled(tmp_path / "run-ref")
    assert len(expected) == 3 + 3 * 2  # initial + 3 iterations of 2

    killed = _config(make_config, tmp_path, "kill")
    rng = np.random.default_rng(11)
    kills = 0
    while kills < KILLS:
        proc = _pfd(killed)
        # past start-up (about 2 s), then a random moment: MD, DFT, training,
        # database writes, or between steps
        try:
            code = proc.wait(timeout=2.0 + rng.uniform(0, duration / 10))
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert code == 0, proc.errors()
        break  # finished between kills: nothing left to interrupt
    proc = _pfd(killed)  # the last restart runs to the end
    assert proc.wait(timeout=600) == 0, proc.errors()
    assert kills == KILLS
    run = tmp_path / "run-kill"
    assert RunState.load(run).finished
    assert _labelled(run) == expected
    calls = (tmp_path / "calls-kill.log").read_text().splitlines()
    assert len(calls) == len(set(calls)) == len(expected)  # nothing labelled twice
    assert RunDB(run / "pfd.db").integrity_ok()


def test_lock_file_left_by_a_killed_run_does_not_block_the_next(tmp_path):
    """A run killed inside a database write leaves ``pfd.db.lock`` behind."""
    import threading

    from ase.build import bulk

    db_path = tmp_path / "pfd.db"
    (tmp_path / "pfd.db.lock").touch()
    done = []

    def write() -> None:
        db = RunDB(db_path)
        db.add_pending(bulk("Cu"), uid="a", iteration=0, stage="init", source="x")
        done.append(db.count())

    worker = threading.Thread(target=write, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert done == [1], "the database write waited on a stale lock file"


def test_changed_safe_setting_applies_on_resume(make_config, tmp_path):
    path = _config(make_config, tmp_path, "a")
    assert _pfd(path).wait(timeout=600) == 0
    merged = _config(make_config, tmp_path, "a")
    text = merged.read_text().replace("max_iterations: 3", "max_iterations: 4")
    merged.write_text(text)
    assert _pfd(merged).wait(timeout=600) == 0
    state = RunState.load(tmp_path / "run-a")
    assert [r.iteration for r in state.iterations] == [1, 2, 3, 4]


def test_relaxed_threshold_on_resume_picks_the_iteration_that_meets_it(
    make_config, tmp_path
):
    path = _config(make_config, tmp_path, "b")
    path.write_text(path.read_text().replace("max_iterations: 3", "max_iterations: 2"))
    assert _pfd(path).wait(timeout=600) == 0
    state = RunState.load(tmp_path / "run-b")
    assert not state.converged
    path.write_text(path.read_text().replace("1.0e-06", "10.0"))
    assert _pfd(path).wait(timeout=600) == 0
    state = RunState.load(tmp_path / "run-b")
    assert state.converged
    assert state.final_model == str(tmp_path / "run-b" / "iter_001" / "model.pth")
