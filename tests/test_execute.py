"""Executors: the embedded local pool and Parsl (real HTEX workers over loopback)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pfd.config import ExecutionConfig, load_config
from pfd.db import RunDB
from pfd.errors import PFDError
from pfd.execute import ParslExecutor, load_parsl_config
from pfd.loop import run_finetune
from pfd.progress import Reporter
from tests.conftest import merge, stand_in

pytest.importorskip("parsl")

QUIET = Reporter(quiet=True)


def _config(make_config, tmp_path: Path, name: str, engine: str, delay: float = 0.0):
    return load_config(
        make_config(
            merge(
                stand_in(tmp_path, name, delay),
                {
                    "explore": {"workers": 2},
                    "convergence": {"max_iterations": 2},
                    "execution": {"engine": engine, "config": "local-htex"},
                },
            ),
            name=f"{name}.yaml",
        )
    )


def _labelled(cfg) -> set[tuple]:
    db = RunDB(cfg.run_dir / "pfd.db")
    return {
        (f.uid, round(float(f.atoms.get_potential_energy()), 6)) for f in db.frames()
    }


def test_parsl_runs_the_loop_to_the_same_result_as_local(make_config, tmp_path):
    local = _config(make_config, tmp_path, "local", "local")
    parsl = _config(make_config, tmp_path, "parsl", "parsl")
    run_finetune(local, QUIET)
    state = run_finetune(parsl, QUIET)
    assert state.finished
    assert _labelled(parsl) == _labelled(local)
    assert len(_labelled(parsl)) == 3 + 2 * 2
    assert (parsl.run_dir / "parsl").is_dir()  # Parsl's own logs live in the run


def _kill_one_busy_worker(stop: threading.Event, killed: list[int], root: Path) -> None:
    """Kill an HTEX worker process while it runs a DFT job of the run in ``root``
    (only that run's: other runs on the machine are not this test's)."""
    import psutil

    while not stop.is_set() and not killed:
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if "pfd.label.worker" not in cmd or str(root) not in cmd:
                continue
            try:
                worker = proc.parent()
                if worker and "process_worker_pool" not in " ".join(worker.cmdline()):
                    worker.kill()  # the HTEX worker that runs this task
                    killed.append(worker.pid)
                    return
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.2)


def test_killed_parsl_worker_task_is_retried(make_config, tmp_path):
    cfg = _config(make_config, tmp_path, "kill", "parsl", delay=2.0)
    stop, killed = threading.Event(), []
    killer = threading.Thread(
        target=_kill_one_busy_worker, args=(stop, killed, cfg.run_dir)
    )
    killer.start()
    try:
        state = run_finetune(cfg, QUIET)
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was killed"
    assert state.finished
    db = RunDB(cfg.run_dir / "pfd.db")
    assert db.count(status="labelled") == 3 + 2 * 2
    assert db.count(status="failed") == 0


def test_bad_execution_settings(tmp_path, make_config):
    with pytest.raises(PFDError, match="not found"):
        load_parsl_config(str(tmp_path / "cluster.py"))
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(PFDError, match="defines no 'config"):
        load_parsl_config(str(tmp_path / "empty.py"))
    cfg = ExecutionConfig(
        engine="parsl", config="local-htex", resources={"dft": {"executor": "cpu"}}
    )
    with pytest.raises(
        PFDError, match=r"resources\.dft\.executor 'cpu' is not an executor"
    ):
        ParslExecutor(cfg, tmp_path)
    from pfd.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'execution\.engine'"):
        load_config(make_config({"execution": {"engine": "dask"}}))
