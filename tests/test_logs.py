"""pfd's own lines reach the terminal; third-party output goes to the run's log."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import os, subprocess, sys, warnings
    from pathlib import Path
    from pfd.logs import third_party_to
    from pfd.progress import Reporter

    report = Reporter()
    with third_party_to(Path(sys.argv[1]), verbose=sys.argv[2] == "1"):
        report.info("pfd progress line")
        print("a library's print")
        warnings.warn("a library's warning")
        os.write(2, b"C-level message on fd 2\\n")
        subprocess.run([sys.executable, "-c", "print('a subprocess line')"])
    print("after the step", file=sys.stderr)
    """
)


def _run(tmp_path: Path, verbose: bool) -> tuple[str, str]:
    log = tmp_path / "logs" / "pfd.log"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log), "1" if verbose else "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout + proc.stderr, log.read_text() if log.exists() else ""


def test_third_party_output_goes_to_the_log(tmp_path: Path):
    terminal, log = _run(tmp_path, verbose=False)
    assert "pfd progress line" in terminal
    assert "after the step" in terminal  # streams restored afterwards
    for line in (
        "a library's print",
        "a library's warning",
        "C-level message",
        "a subprocess line",
    ):
        assert line not in terminal
        assert line in log
    assert "pfd progress line" not in log


def test_verbose_leaves_everything_on_the_terminal(tmp_path: Path):
    terminal, log = _run(tmp_path, verbose=True)
    assert "a library's print" in terminal
    assert "C-level message" in terminal
    assert log == ""
