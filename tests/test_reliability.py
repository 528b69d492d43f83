"""Break things on purpose: SIGKILL at planned points of every phase, then resume.

Uses the EMT stand-in backend (``pfd.testing:EMTBackend``) and an EMT labeller
with a different cutoff (so the "model" is never perfect and the loop iterates).
Each kill is triggered by the run's own progress (a DFT worker running, a
training directory, MD workers, a database row or journal, a teacher
trajectory, the student's learning curve), not by a clock, so it lands in its
phase on a slow machine and a fast one alike.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ase.io import read

from pfd.db import RunDB
from pfd.layout import RunLayout
from pfd.state import RunState
from tests.conftest import merge, stand_in
from tests.test_proc import kill_and_list_survivors, processes_of, start_run

Trigger = Callable[[], bool]


def _config(make_config, tmp_path: Path, name: str, extra: dict | None = None) -> Path:
    return make_config(
        merge(
            stand_in(tmp_path, name),
            merge(
                {
                    "labeler": {"workers": 2},
                    "explore": {"workers": 2, "steps": 40},
                    "finetune": {"epochs": 2},
                    "convergence": {"max_iterations": 1},
                },
                extra or {},
            ),
        ),
        name=f"{name}.yaml",
    )


def _pfd(config: Path) -> subprocess.Popen:
    return start_run(config, f"plain-{config}")  # unique: the test's own path


@contextlib.contextmanager
def _beside(config: Path) -> Iterator[subprocess.Popen]:
    """``pfd run CONFIG`` running beside the block; killed if the block fails."""
    proc = _pfd(config)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()  # its workers die with it
            proc.wait()


def _errors(config: Path) -> str:
    return config.with_suffix(".stderr").read_text()[-4000:]


def _labelled(run_dir: Path) -> set[tuple]:
    db = RunDB(RunLayout(run_dir).db)
    return {
        (f.uid, round(float(f.atoms.positions.sum()), 6))
        for f in db.frames(status="labelled")
    }


# -- planned kill points ------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """A planned kill. ``arm(layout, run)``, called before each (re)start, gives
    the trigger to poll, or None when the run is already past this point."""

    phase: str
    arm: Callable[[RunLayout, str], Trigger | None]
    poll_s: float = 0.05


def _rows(layout: RunLayout, status: str | None = None) -> int:
    """Rows of the run database (0 before it exists). Not read-only: reading
    after a kill inside a write rolls the write back, as any reader must."""
    if not layout.db.exists():
        return 0
    where = "WHERE json_extract(key_value_pairs, '$.status') = ?" if status else ""
    try:
        with contextlib.closing(sqlite3.connect(layout.db, timeout=5)) as con:
            query = f"SELECT count(*) FROM systems {where}"
            return con.execute(query, (status,) if status else ()).fetchone()[0]
    except sqlite3.OperationalError:  # being created
        return 0


def file_appears(path: Callable[[RunLayout], Path], done: Callable[[RunLayout], Path]):
    def arm(layout: RunLayout, _run: str) -> Trigger | None:
        if done(layout).exists():
            return None
        return lambda: path(layout).exists()

    return arm


def process_runs(needle: str, done: Callable[[RunLayout], bool]):
    """Kill once a process of the run with ``needle`` in its command line runs."""

    def arm(layout: RunLayout, run: str) -> Trigger | None:
        if done(layout):
            return None
        return lambda: any(needle in cmd for cmd in processes_of(run).values())

    return arm


def db_write(status: str | None, done: Callable[[RunLayout], bool]):
    """Kill inside a database write (SQLite's journal exists) or right after one
    (the row count grew)."""

    def arm(layout: RunLayout, _run: str) -> Trigger | None:
        if done(layout):
            return None
        before = _rows(layout, status)  # rolls back a write the last kill cut
        journal = layout.db.with_name(layout.db.name + "-journal")
        return lambda: journal.exists() or _rows(layout, status) > before

    return arm


MD_WORKER = "spawn_main"  # multiprocessing's spawned worker processes
DFT_WORKER = "pfd.label.worker"


def fine_tuning_plan(labels_0: int, labels_1: int) -> list[Point]:
    """Labelling, a database write, training, exploration, the selection's
    database write, labelling again, the final training."""
    first, final = (lambda lay: lay.iteration(1)), (lambda lay: lay.final_model)
    return [
        Point("labelling", process_runs(DFT_WORKER, lambda lay: first(lay).exists())),
        Point(
            "database write",
            db_write("labelled", lambda lay: _rows(lay, "labelled") >= labels_0),
            poll_s=0.002,
        ),
        Point(
            "training",
            file_appears(
                lambda lay: lay.iteration(1) / "finetune", lambda lay: lay.model(1)
            ),
        ),
        Point(
            "exploration",
            process_runs(
                MD_WORKER, lambda lay: (first(lay) / "candidates.extxyz").exists()
            ),
        ),
        Point(
            "database write",
            db_write(None, lambda lay: _rows(lay) > labels_0),
            poll_s=0.002,
        ),
        Point(
            "labelling",
            process_runs(DFT_WORKER, lambda lay: _rows(lay, "labelled") >= labels_1),
        ),
        Point(
            "training",
            file_appears(
                lambda lay: lay.final_training(labels_1).parent / "finetune", final
            ),
        ),
    ]


def distill_plan() -> list[Point]:
    """Teacher MD (after its first trajectory is saved), student training."""
    return [
        Point(
            "teacher MD",
            file_appears(
                lambda lay: lay.distill / "md" / "000.json",
                lambda lay: lay.distill / "train.extxyz",
            ),
        ),
        Point(
            "student training",
            file_appears(
                lambda lay: lay.distill / "round_1" / "lcurve.out",
                lambda lay: lay.student,
            ),
        ),
    ]


def run_with_kills(config: Path, run_dir: Path, plan: list[Point]) -> list[str]:
    """Run ``config`` to the end, SIGKILLed at each point of ``plan`` the run
    reaches (none of its processes may outlive a kill); the phases killed."""
    layout, run = RunLayout(run_dir), f"kill-{run_dir}"  # unique to this test
    killed: list[str] = []
    proc = None
    for point in plan:
        trigger = point.arm(layout, run)
        if trigger is None:  # the run is past this point already
            continue
        proc = start_run(config, run)
        deadline = time.monotonic() + 900
        while proc.poll() is None and not trigger():
            assert time.monotonic() < deadline, f"never reached {point.phase}"
            time.sleep(point.poll_s)
        if proc.poll() is not None:  # it ended before this point: fine
            break
        survivors = kill_and_list_survivors(proc, run)
        assert survivors == {}, f"alive 10 s after a kill in {point.phase}"
        killed.append(point.phase)
        proc = None
    proc = proc or start_run(config, run)  # the last restart runs to the end
    assert proc.wait(timeout=900) == 0, _errors(config)
    deadline = time.monotonic() + 10
    while processes_of(run) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(run) == {}, "processes outlived the finished run"
    return killed


def _check_resumed_exactly(tmp_path: Path, expected: set[tuple]) -> Path:
    run = tmp_path / "run-kill"
    assert RunState.load(run).finished
    assert _labelled(run) == expected
    calls = (tmp_path / "calls-kill.log").read_text().splitlines()
    assert len(calls) == len(set(calls)) == len(expected)  # no DFT job twice
    assert RunDB(RunLayout(run).db).integrity_ok()
    return run


def test_sigkill_in_every_phase_resumes_exactly(make_config, tmp_path: Path):
    with _beside(_config(make_config, tmp_path, "ref")) as reference:
        killed = run_with_kills(
            _config(make_config, tmp_path, "kill"),
            tmp_path / "run-kill",
            fine_tuning_plan(3, 3 + 2),
        )
        print(f"killed in: {', '.join(killed)}")  # shown with -s or on failure
        assert reference.wait(timeout=900) == 0, _errors(tmp_path / "ref.yaml")
    expected = _labelled(tmp_path / "run-ref")
    assert len(expected) == 3 + 2  # initial + one iteration of 2
    _check_resumed_exactly(tmp_path, expected)
    # the triggers follow the run's progress, so no phase is skipped for speed
    assert {"labelling", "database write", "training", "exploration"} <= set(killed)


TINY_STUDENT = {
    "distill": {
        "enabled": True,
        "workers": 2,
        "steps": 40,
        "sample_every": 4,
        "max_frames": 60,
        "committee": 2,  # one extra member: its training is killed and resumed too
        "student": {
            "rcut_A": 4.5,
            "embedding": [8, 16],
            "axis_neuron": 4,
            "fitting": [16, 16],
            "steps": 400,
            "compress": False,
        },
    },
}


@pytest.mark.slow
def test_sigkill_in_every_phase_with_distillation_resumes_exactly(
    make_config, tmp_path: Path
):
    pytest.importorskip("deepmd")
    with _beside(_config(make_config, tmp_path, "ref", TINY_STUDENT)) as reference:
        killed = run_with_kills(
            _config(make_config, tmp_path, "kill", TINY_STUDENT),
            tmp_path / "run-kill",
            fine_tuning_plan(3, 3 + 2) + distill_plan(),
        )
        assert reference.wait(timeout=1800) == 0, _errors(tmp_path / "ref.yaml")
    expected = _labelled(tmp_path / "run-ref")
    run = _check_resumed_exactly(tmp_path, expected)
    assert {"teacher MD", "student training"} <= set(killed)
    teacher, again = (
        read(RunLayout(r).distill / "train.extxyz", ":")
        for r in (tmp_path / "run-ref", run)
    )
    assert [a.positions.tolist() for a in again] == [
        a.positions.tolist() for a in teacher
    ]
    assert (RunLayout(run).student / "graph.pb").exists()


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
    assert _pfd(path).wait(timeout=600) == 0, _errors(path)
    merged = _config(make_config, tmp_path, "a")
    text = merged.read_text().replace("max_iterations: 1", "max_iterations: 2")
    merged.write_text(text)
    assert _pfd(merged).wait(timeout=600) == 0, _errors(merged)
    state = RunState.load(tmp_path / "run-a")
    assert [r.iteration for r in state.iterations] == [1, 2]


def test_relaxed_threshold_on_resume_picks_the_iteration_that_meets_it(
    make_config, tmp_path
):
    path = _config(make_config, tmp_path, "b")
    path.write_text(path.read_text().replace("max_iterations: 1", "max_iterations: 2"))
    assert _pfd(path).wait(timeout=600) == 0, _errors(path)
    state = RunState.load(tmp_path / "run-b")
    assert not state.converged
    path.write_text(path.read_text().replace("1.0e-06", "10.0"))
    assert _pfd(path).wait(timeout=600) == 0, _errors(path)
    state = RunState.load(tmp_path / "run-b")
    assert state.converged
    final = RunLayout(tmp_path / "run-b").resolve(state.final_model)
    assert final == RunLayout(tmp_path / "run-b").model(1)
