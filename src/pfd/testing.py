"""Stand-in calculators for tests and demos: EMT that counts calls or fails on purpose.

They are importable by path (``pfd.testing:CountingEMT``) so the labelling
worker processes can build them from a YAML ``labeler.calculator`` entry.
"""

from __future__ import annotations

import fcntl
import time
from pathlib import Path

import numpy as np
from ase.calculators.emt import EMT

from pfd.errors import LabelError


def _append(path: str | Path, line: str) -> None:
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(line + "\n")


def _fingerprint(atoms) -> str:
    return f"{len(atoms)}:{np.round(atoms.positions.sum(), 6)}:{np.round(atoms.cell.volume, 6)}"


class CountingEMT(EMT):
    """EMT that appends one line per energy calculation to ``log`` (a file path)."""

    def __init__(self, log: str, delay_s: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.log = log
        self.delay_s = delay_s

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        if system_changes is None:
            from ase.calculators.calculator import all_changes

            system_changes = all_changes
        super().calculate(atoms, properties, system_changes)
        if self.delay_s:
            time.sleep(self.delay_s)
        _append(self.log, _fingerprint(self.atoms))


class FlakyEMT(EMT):
    """EMT that fails on some frames, the way DFT codes do.

    ``mode``: ``raise`` (an exception), ``nan`` (non-finite forces), ``hang``
    (sleeps, for timeouts) or ``crash`` (the process dies). A frame fails when
    the integer part of ``1000 * sum(positions)`` is divisible by ``every``.
    """

    def __init__(self, mode: str = "raise", every: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.every = every

    def _fails(self, atoms) -> bool:
        return int(abs(atoms.positions.sum()) * 1000) % self.every == 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        from ase.calculators.calculator import all_changes

        super().calculate(atoms, properties, system_changes or all_changes)
        if not self._fails(self.atoms):
            return
        if self.mode == "raise":
            raise LabelError("SCF did not converge (injected)")
        if self.mode == "nan":
            self.results["forces"] = np.full_like(self.results["forces"], np.nan)
        elif self.mode == "hang":
            time.sleep(3600)
        elif self.mode == "crash":
            import os

            os._exit(9)
