"""Any ASE calculator as a labeller, given by import path (e.g. EMT for tests)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator

from pfd.config import LabelerConfig
from pfd.errors import PFDError
from pfd.label.results import single_point


def import_calculator(path: str) -> type[Calculator]:
    """Resolve ``'module:Class'`` to a calculator class, with a clear error."""
    module_name, _, class_name = path.partition(":")
    if not class_name:
        raise PFDError(
            f"labeler.calculator '{path}' must look like 'module:Class', "
            "e.g. 'ase.calculators.emt:EMT'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise PFDError(
            f"labeler.calculator: cannot import module '{module_name}' ({err}); "
            "install it or fix the path"
        ) from err
    try:
        return getattr(module, class_name)
    except AttributeError as err:
        raise PFDError(
            f"labeler.calculator: module '{module_name}' has no '{class_name}'"
        ) from err


@dataclass(frozen=True)
class ASELabeler:
    """Labels with ``Class(**parameters)`` from an importable module."""

    calculator: str
    parameters: dict[str, Any] = field(default_factory=dict)
    code: str = "ase"

    @classmethod
    def from_config(cls, cfg: LabelerConfig) -> ASELabeler:
        assert cfg.calculator is not None
        return cls(calculator=cfg.calculator, parameters=dict(cfg.parameters))

    def settings(self) -> dict[str, Any]:
        return {"code": self.calculator, "parameters": self.parameters}

    def check(self, symbols: set[str]) -> None:
        cls = import_calculator(self.calculator)
        try:
            cls(**self.parameters)
        except TypeError as err:
            raise PFDError(
                f"labeler.parameters do not fit {self.calculator}: {err}"
            ) from err

    def calculate(self, atoms: Atoms, workdir: str) -> Atoms:
        calc = import_calculator(self.calculator)(**self.parameters)
        return single_point(atoms, calc)
