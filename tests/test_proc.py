"""Guarded child processes die with the driver and start without preexec_fn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pfd._proc import guarded

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG")

DRIVER = """
import subprocess, sys, time
from pfd._proc import guarded
child = subprocess.Popen(guarded([sys.executable, "-c", "import time; time.sleep(60)"]))
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _survives_its_driver(driver: subprocess.Popen, pid: int) -> bool:
    """SIGKILL ``driver``; whether ``pid`` is still alive 10 s later."""
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(pid)


def test_guarded_child_is_killed_with_its_driver():
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True
    )
    child = int(driver.stdout.readline())
    time.sleep(0.5)  # the child is exec'd into its real command
    assert _alive(child)
    assert not _survives_its_driver(driver, child)


def test_guarded_command_runs_and_reports_its_exit_code(tmp_path: Path):
    out = subprocess.run(
        guarded([sys.executable, "-c", "print('hi'); raise SystemExit(3)"]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (out.returncode, out.stdout.strip()) == (3, "hi")
    missing = subprocess.run(
        guarded(["no-such-program-xyz"]), capture_output=True, text=True, check=False
    )
    assert missing.returncode == 127
    assert "cannot start no-such-program-xyz" in missing.stderr


SAVER = """
import os, signal, sys, time
from pathlib import Path
from pfd._proc import finish_first
out = Path(sys.argv[1])
with finish_first():
    os.kill(os.getpid(), signal.SIGTERM)  # e.g. the driver died: PDEATHSIG
    time.sleep(0.2)
    out.write_text("saved")
print("went on after the block", flush=True)
"""


def test_finish_first_saves_the_result_then_dies_of_the_signal(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-c", SAVER, str(tmp_path / "result")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == -signal.SIGTERM, out.stderr
    assert (tmp_path / "result").read_text() == "saved"
    assert "went on" not in out.stdout


LABEL_DRIVER = """
import sys
from pathlib import Path
from ase.build import bulk
from pfd.config import LabelerConfig
from pfd.label import make_labeler
from pfd.label.runner import label_one
cfg = LabelerConfig(code="ase", calculator="pfd.testing:FlakyEMT",
                    parameters={"mode": "hang", "every": 1})
label_one(make_labeler(cfg), bulk("Cu", cubic=True), Path(sys.argv[1]))
"""


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_label_worker_still_calculating_dies_with_its_driver(tmp_path: Path):
    """SIGTERM, not SIGKILL, reaches label workers: it must still end a job that
    has no result yet (the resumed run labels that frame again)."""
    jobdir = tmp_path / "job"
    driver = subprocess.Popen([sys.executable, "-c", LABEL_DRIVER, str(jobdir)])
    deadline = time.monotonic() + 60
    worker = None
    while worker is None and time.monotonic() < deadline:
        for pid in _children(driver.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:  # exited meanwhile
                continue
            if b"pfd.label.worker" in cmdline and b"pfd._proc" not in cmdline:
                worker = pid
        time.sleep(0.1)
    assert worker is not None, "the label worker never started"
    time.sleep(2.0)  # imports done: the worker is inside the (hanging) calculation
    assert not _survives_its_driver(driver, worker)
    assert not (jobdir / "output.extxyz").exists()


RUN_MARK = "PFD_TEST_RUN"


def processes_of(run: str) -> dict[int, str]:
    """Live processes started by the run marked ``run`` (``PFD_TEST_RUN=run`` in
    their environment, which every child inherits, orphaned or not): pid ->
    command line."""
    needle = f"{RUN_MARK}={run}".encode()
    found = {}
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle not in environ.read_bytes().split(b"\0"):
                continue  # a zombie's environment reads empty: not alive
            cmdline = (environ.parent / "cmdline").read_bytes()
        except OSError:  # exited meanwhile, or not ours to read
            continue
        found[int(environ.parent.name)] = cmdline.replace(b"\0", b" ").decode()
    return found


def start_run(config: Path, run: str) -> subprocess.Popen:
    """``pfd run CONFIG`` marked as ``run``, stderr in ``CONFIG.stderr``."""
    with open(config.with_suffix(".stderr"), "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "pfd", "run", str(config), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=config.parent,
            env=os.environ | {RUN_MARK: run},
        )


def kill_and_list_survivors(driver: subprocess.Popen, run: str) -> dict[int, str]:
    """SIGKILL ``driver``; the processes of its run still alive 10 s later."""
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 10
    while processes_of(run) and time.monotonic() < deadline:
        time.sleep(0.1)
    return processes_of(run)


def test_md_workers_and_resource_tracker_die_with_a_killed_run(
    make_config, tmp_path: Path
):
    from tests.conftest import merge, stand_in

    config = make_config(
        merge(
            stand_in(tmp_path, "md"),
            {"explore": {"workers": 2, "steps": 1_000_000}},  # MD outlasts the test
        ),
        name="md.yaml",
    )
    run = f"md-{tmp_path}"  # unique to this test
    driver = start_run(config, run)
    deadline = time.monotonic() + 300
    workers: list[int] = []
    while len(workers) < 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        workers = [p for p, cmd in processes_of(run).items() if "spawn_main" in cmd]
    assert len(workers) == 2, config.with_suffix(".stderr").read_text()[-2000:]
    time.sleep(2.0)  # the workers are inside their trajectories
    processes = processes_of(run)
    assert any("resource_tracker" in cmd for cmd in processes.values())
    assert kill_and_list_survivors(driver, run) == {}
