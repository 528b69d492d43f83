"""Labellers: reference calculators (DFT codes, any ASE calculator) behind one protocol.

A labeller is a small picklable object; :func:`make_labeler` picks the module for
``labeler.code`` and imports it lazily so a missing code only matters when used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Protocol

from ase import Atoms

from pfd.config import LabelerConfig
from pfd.registry import LABELERS


class Labeler(Protocol):
    """What the loop needs from a reference calculator."""

    code: str

    def settings(self) -> dict[str, Any]:
        """Code, version and parameters, recorded with every frame."""
        ...

    def check(self, symbols: set[str]) -> None:
        """Raise :class:`pfd.errors.PFDError` if these elements cannot be labelled."""
        ...

    def calculate(self, atoms: Atoms, workdir: str) -> Atoms:
        """A copy of ``atoms`` with energy, forces (and stress if periodic)."""
        ...


def make_labeler(cfg: LabelerConfig) -> Labeler:
    """The labeller for ``cfg.code``."""
    module, _, name = LABELERS[cfg.code].partition(":")
    return getattr(import_module(module), name).from_config(cfg)
