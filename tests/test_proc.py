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


def test_guarded_child_is_killed_with_its_driver():
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True
    )
    child = int(driver.stdout.readline())
    time.sleep(0.5)  # the child is exec'd into its real command
    assert _alive(child)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


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
