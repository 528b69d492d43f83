"""Where output goes: pfd's own lines to the terminal, everything else to a log.

TensorFlow's C++ logging, DeePMD-kit's library loader, Numba's and ASE's
warnings, training libraries' prints and the subprocesses that inherit the
driver's standard streams (MD workers, ``dp``, ``lmp``) all write to file
descriptors 1 and 2. While :func:`third_party_to` is active those descriptors
point at a log file of the run; pfd's :class:`~pfd.progress.Reporter` writes
to a copy of the terminal taken before, so the terminal shows pfd's progress
and one line per problem. ``pfd --verbose`` leaves every stream where it was.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

_terminal: TextIO | None = None
_log: Path | None = None
_last: Path | None = None


def terminal() -> TextIO:
    """The stream pfd's own lines go to: the terminal, even while redirected."""
    return _terminal or sys.stderr


def current_log() -> Path | None:
    """The log file third-party output is going to now (``None``: the terminal)."""
    return _log


def last_log() -> Path | None:
    """Where the last command's third-party output went, if it still exists."""
    if _last is not None and _last.is_file() and _last.stat().st_size:
        return _last
    return None


class TerminalStream:
    """A file-like view of :func:`terminal`, resolved at each write.

    Give it to a console created before a redirect starts: it follows.
    """

    def write(self, text: str) -> int:
        return terminal().write(text)

    def flush(self) -> None:
        terminal().flush()

    def isatty(self) -> bool:
        return terminal().isatty()

    def fileno(self) -> int:
        return terminal().fileno()

    @property
    def encoding(self) -> str:
        return getattr(terminal(), "encoding", "utf-8")


@contextlib.contextmanager
def third_party_to(
    path: Path, verbose: bool = False, until_exit: bool = False
) -> Iterator[Path | None]:
    """Send file descriptors 1 and 2 to ``path`` (appending) for the duration.

    Nested calls and ``verbose=True`` change nothing. On exit Python's
    ``sys.stdout`` and ``sys.stderr`` write to the terminal again, so an error
    message printed afterwards reaches it. With ``until_exit`` (a command-line
    process that ends next) the descriptors themselves stay on the log: what
    C libraries print as the process shuts down (DeePMD-kit's CUDA stubs) goes
    there too.
    """
    global _terminal, _log
    if verbose or _terminal is not None:
        yield _log
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    own = _is_fd2(sys.stderr)  # else a test runner's buffer: keep writing to it
    _terminal = sys.stderr
    if own:
        _terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8")
    _log = path
    with open(path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield path
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            if own and until_exit:
                sys.stdout = os.fdopen(saved[0], "w", buffering=1, encoding="utf-8")
                sys.stderr = os.fdopen(saved[1], "w", buffering=1, encoding="utf-8")
            else:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
            if own:
                _terminal.close()
            _terminal, _log = None, None


def _is_fd2(stream: TextIO) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def run_log(
    run_dir: Path, verbose: bool = False, until_exit: bool = False
) -> Iterator[Path | None]:
    """Third-party output of a command on ``run_dir`` into ``run_dir/logs/pfd.log``.

    A run directory that does not exist yet is not created for the log: the
    output goes to a temporary file, appended to the run's log at the end if
    the command made the run directory (a command refused at its checks leaves
    nothing behind).
    """
    from pfd.layout import RunLayout

    global _last
    log = RunLayout(run_dir).log
    if verbose or run_dir.is_dir():
        _last = None if verbose else log
        with third_party_to(log, verbose, until_exit) as path:
            yield path
        return
    fd, name = tempfile.mkstemp(prefix="pfd-", suffix=".log")
    os.close(fd)
    tmp = Path(name)
    try:
        with third_party_to(tmp, until_exit=until_exit) as path:
            yield path
    finally:
        _last = tmp
        if run_dir.is_dir():
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as out:
                out.write(tmp.read_bytes())
            tmp.unlink(missing_ok=True)
            _last = log
        elif not tmp.stat().st_size:
            tmp.unlink()
