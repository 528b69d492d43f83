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
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

_terminal: TextIO | None = None
_log: Path | None = None


def terminal() -> TextIO:
    """The stream pfd's own lines go to: the terminal, even while redirected."""
    return _terminal or sys.stderr


def current_log() -> Path | None:
    """The log file third-party output is going to now (``None``: the terminal)."""
    return _log


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
def third_party_to(path: Path, verbose: bool = False) -> Iterator[Path | None]:
    """Send file descriptors 1 and 2 to ``path`` (appending) for the duration.

    Nested calls and ``verbose=True`` change nothing. On exit the descriptors
    are restored, so an error message printed afterwards reaches the terminal.
    """
    global _terminal, _log
    if verbose or _terminal is not None:
        yield _log
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
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
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            _terminal.close()
            _terminal, _log = None, None
