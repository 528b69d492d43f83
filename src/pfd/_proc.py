"""Child processes that never outlive the driver (so no job runs twice on resume).

``guarded(cmd)`` prefixes a command with ``python -m pfd._proc PID``: that small
trampoline asks Linux to SIGKILL it when the driver dies (``PR_SET_PDEATHSIG``,
kept across ``exec``), checks the driver is still there, then ``exec``s the
command in its own place. This replaces ``subprocess``'s ``preexec_fn``, which
runs Python code between ``fork`` and ``exec`` and can deadlock the child when
the driver has other threads (the labelling pool, numba, torch).

A DFT job whose result is in hand should not lose it in the milliseconds it
takes to write it: label workers are guarded with ``SIGTERM`` instead, which
kills them at once (its default action) except inside :func:`finish_first`.

Python worker processes (the MD pool of :mod:`pfd.execute`) call
:func:`die_with_parent` themselves, as their pool's initializer.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent(
    death_signal: int = signal.SIGKILL, parent: int | None = None
) -> None:
    """Ask Linux to send ``death_signal`` to this process when its parent dies (a
    no-op elsewhere); exit at once if ``parent`` (its expected pid) is already gone.

    Linux sends it when the *thread* that started this process ends: start such
    processes from a thread that lives as long as they should (the main thread).
    """
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(death_signal))
    if parent is not None and os.getppid() != parent:  # died before we asked
        os._exit(1)


def guarded(cmd: list[str], death_signal: int = signal.SIGKILL) -> list[str]:
    """``cmd``, run so that it gets ``death_signal`` when this process dies (on
    Linux): SIGKILL, or SIGTERM for a command that guards its last steps with
    :func:`finish_first`."""
    if sys.platform != "linux":
        return list(cmd)
    return [
        sys.executable,
        "-m",
        "pfd._proc",
        str(os.getpid()),
        str(int(death_signal)),
        *cmd,
    ]


@contextlib.contextmanager
def finish_first() -> Iterator[None]:
    """Hold off SIGTERM (e.g. the driver died) until the block ends, then die of
    it: for writing a result that exists, where dying would throw it away."""
    received: list[int] = []
    previous = signal.signal(
        signal.SIGTERM, lambda signum, _frame: received.append(signum)
    )
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if received:
            os.kill(os.getpid(), signal.SIGTERM)


def stream(
    cmd: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    on_line: Callable[[str], None] | None = None,
    append: bool = False,
) -> int:
    """Run ``cmd`` guarded, copy its output (stdout and stderr) to ``log`` line by
    line, passing each line to ``on_line`` (progress bars); its exit code."""
    with open(log, "a" if append else "w") as out:
        proc = subprocess.Popen(
            guarded(cmd),
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if on_line:
                on_line(line)
        return proc.wait()


def run_logged(
    cmd: list[str],
    *,
    what: str,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    on_line: Callable[[str], None] | None = None,
    append: bool = False,
) -> None:
    """:func:`stream` ``cmd``; a non-zero exit is a one-line :class:`PFDError`
    naming ``what`` failed, the exit code, the log's last error line and the log."""
    from pfd.errors import PFDError

    code = stream(cmd, cwd=cwd, env=env, log=log, on_line=on_line, append=append)
    if code:
        text = log.read_text(errors="replace") if log.exists() else ""
        lines = [x.strip() for x in text.splitlines() if x.strip()]
        errors = [x for x in lines if "Error" in x or "error" in x]
        last = (errors or lines or ["(no output)"])[-1]
        raise PFDError(f"{what} failed (exit {code}): {last[:300]}; see {log}")


def main(argv: list[str]) -> int:  # pragma: no cover - replaced by exec
    parent, death_signal, cmd = int(argv[0]), int(argv[1]), argv[2:]
    die_with_parent(death_signal, parent)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as err:
        print(f"cannot start {cmd[0]}: {err}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
