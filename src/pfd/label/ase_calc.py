"""Any ASE calculator as a labeller, given by import path (e.g. EMT for tests)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
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


def unknown_keywords(target: Callable[..., Any], keys: Iterable[str]) -> list[str]:
    """The keywords of ``keys`` that ``target`` (a function or an ASE calculator
    class) does not take; none when it takes any keyword and cannot tell.

    A calculator whose ``__init__`` passes ``**kwargs`` on to ASE's
    ``Calculator`` stores them with ``set()`` unchecked: its keywords are then
    its ``default_parameters`` (unless it overrides ``set`` to check them).
    """
    allowed: set[str] = set()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    for init in _initialisers(target):
        params = inspect.signature(init).parameters.values()
        allowed |= {p.name for p in params if p.kind in named}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return sorted(set(keys) - allowed)
        if init is Calculator.__init__:
            defaults = getattr(target, "default_parameters", None)
            if not defaults or target.set is not Calculator.set:
                return []
            return sorted(set(keys) - allowed - set(defaults))
    return []  # **kwargs to the end: anything may be meant


def _initialisers(target: Callable[..., Any]) -> list[Callable[..., Any]]:
    if not isinstance(target, type):
        return [target]
    return [c.__dict__["__init__"] for c in target.__mro__ if "__init__" in c.__dict__]


def keyword_error(name: str, bad: list[str], target: Callable[..., Any]) -> PFDError:
    """The one-line error for keywords a calculator does not take."""
    known = sorted(
        set(getattr(target, "default_parameters", None) or {})
        | {k for k in _signature_names(target) if k not in _GENERIC}
    )
    return PFDError(
        f"labeler.parameters: {name} has no keyword "
        f"{', '.join(repr(k) for k in bad)} (it takes: {', '.join(known[:40])}); "
        "fix the spelling"
    )


#: keywords every ASE calculator takes (not worth listing)
_GENERIC = {"self", "restart", "ignore_bad_restart_file", "label", "atoms", "directory"}


def _signature_names(target: Callable[..., Any]) -> set[str]:
    names: set[str] = set()
    for init in _initialisers(target):
        names |= set(inspect.signature(init).parameters)
    return names - {"args", "kwargs"}


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
        bad = unknown_keywords(cls, self.parameters)
        if bad:
            raise keyword_error(cls.__name__, bad, cls)
        try:
            cls(**self.parameters)
        except TypeError as err:
            raise PFDError(
                f"labeler.parameters do not fit {self.calculator}: {err}"
            ) from err

    def calculate(self, atoms: Atoms, workdir: str) -> Atoms:
        calc = import_calculator(self.calculator)(**self.parameters)
        return single_point(atoms, calc)
