"""How to run a command-line DFT code: its binary, its version, its environment.

Kept apart from what a labeller writes and reads: ``labeler.command`` (e.g.
``"mpirun -n 64 pw.x"``) and ``labeler.env`` are never part of the parameters.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from pfd.errors import PFDError

PROBE_TIMEOUT_S = 60.0


class CodeLabeler:
    """What the command-line DFT labellers share (mixed into each one's frozen
    dataclass, whose fields are ``parameters``, ``command``, ``env``, ``code``).

    A code says how to find its binary in ``command`` (:meth:`looks_like`), its
    default command, and how to ask its version.
    """

    parameters: dict[str, Any]
    command: str
    env: dict[str, str]
    code: str
    default_command: ClassVar[str]
    version_args: ClassVar[tuple[str, ...]] = ()
    version_pattern: ClassVar[str]

    @staticmethod
    def looks_like(name: str) -> bool:
        """Whether a word of ``command`` (a file name) is the code's binary."""
        raise NotImplementedError

    @classmethod
    def made(cls, cfg: Any, parameters: dict[str, Any]) -> Any:
        """The labeller of ``cfg`` (a LabelerConfig) with checked ``parameters``."""
        return cls(  # type: ignore[call-arg]
            parameters=parameters,
            command=cfg.command or cls.default_command,
            env=dict(cfg.env),
        )

    @property
    def binary(self) -> str:
        return binary_of(self.command, self.looks_like)

    def settings(self) -> dict[str, Any]:
        """Code, version (probed once), where the binary was found, parameters."""
        return code_settings(
            self.code,
            self.binary,
            self.env,
            self.version_args,
            self.version_pattern,
            self.parameters,
        )


def binary_of(command: str, looks_like: Callable[[str], bool]) -> str:
    """The code's executable in ``command``, skipping launcher words.

    The first word whose file name ``looks_like`` the code (``pw.x``,
    ``cp2k.psmp``), else the first word.
    """
    words = shlex.split(command)
    if not words:
        raise PFDError("labeler.command is empty; give the DFT code's binary")
    return next((w for w in words if looks_like(Path(w).name)), words[0])


def find_binary(binary: str, env: Mapping[str, str]) -> str | None:
    """The full path of ``binary`` on the job's PATH (``labeler.env`` may set it)."""
    return shutil.which(binary, path=env.get("PATH"))


def require_binary(
    command: str, binary: str, env: Mapping[str, str], code: str, hint: str
) -> str:
    """The full path of ``binary``, or a one-line error naming the fix."""
    path = find_binary(binary, env)
    if path is None:
        raise PFDError(
            f"{code} binary '{binary}' (from labeler.command '{command}') is not on "
            f"PATH; {hint}"
        )
    return path


def code_env(extra: Mapping[str, str]) -> dict[str, str]:
    """What a job sets for the code: one thread (as the runner does), then ``extra``.

    ``labeler.env`` may ask for more threads (``OMP_NUM_THREADS``).
    """
    from pfd.label.runner import SINGLE_THREAD_ENV

    return {**SINGLE_THREAD_ENV, **extra}


def job_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with :func:`code_env` on top."""
    return {**os.environ, **code_env(extra)}


@contextmanager
def environment(extra: Mapping[str, str]) -> Iterator[None]:
    """Apply :func:`code_env` to ``os.environ`` for the duration of one job.

    For ASE calculators that start the code with ``env=os.environ``; the worker
    process runs a single job, and the old values come back afterwards.
    """
    settings = code_env(extra)
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def code_settings(
    code: str,
    binary: str,
    env: Mapping[str, str],
    version_args: tuple[str, ...],
    pattern: str,
    parameters: dict,
) -> dict:
    """What is recorded with every label of a command-line code: the code, its
    version (probed once by running ``binary`` with ``version_args``), where the
    binary was found, and the parameters; never the command or environment."""
    path = find_binary(binary, env)
    version = None
    if path is not None:
        version = probe_version(
            (path, *version_args), pattern, tuple(sorted(env.items()))
        )
    return {
        "code": code,
        "version": version or "unknown",
        "binary": path or binary,
        "parameters": parameters,
    }


@lru_cache(maxsize=16)
def probe_version(
    argv: tuple[str, ...], pattern: str, env: tuple[tuple[str, str], ...] = ()
) -> str | None:
    """Run ``argv`` (stdin closed, in a scratch directory) and match its version.

    ``pattern`` is a regular expression whose first group is the version; None
    when the binary cannot be run or prints no version within the time limit.
    """
    with tempfile.TemporaryDirectory() as scratch:
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                cwd=scratch,
                env={**os.environ, **dict(env)},
                timeout=PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
    match = re.search(pattern, proc.stdout + proc.stderr)
    return match.group(1) if match else None
