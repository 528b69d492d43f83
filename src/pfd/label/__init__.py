"""Labellers: reference calculators (DFT codes, any ASE calculator) behind one protocol.

A labeller is a small picklable object; :func:`make_labeler` picks the module for
``labeler.code`` (a name in :data:`pfd.registry.LABELERS` or ``module:Class``)
and imports it lazily so a missing code only matters when used.
"""

from __future__ import annotations

from typing import Any, Protocol

from ase import Atoms

from pfd.config import LabelerConfig
from pfd.errors import PFDError
from pfd.registry import LABELERS, load_class


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
    """The labeller for ``cfg.code``: a registered name or ``module:Class``.

    The class builds itself with ``from_config(cfg)`` when it has one, else it
    is called with ``labeler.parameters`` as keyword arguments.
    """
    cls = load_class(cfg.code, LABELERS, "labeler code")
    if hasattr(cls, "from_config"):
        return cls.from_config(cfg)
    try:
        return cls(**cfg.parameters)
    except TypeError as err:
        raise PFDError(f"labeler.parameters do not fit {cfg.code}: {err}") from err
