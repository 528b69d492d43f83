"""Child processes that never outlive the driver (so no job runs twice on resume)."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
from collections.abc import Callable


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for subprocess: on Linux the child is killed with the driver."""
    return _die_with_parent if sys.platform == "linux" else None
