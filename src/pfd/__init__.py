"""pfd: pre-train, fine-tune, distill material-specific force fields.

The public API, for a notebook as much as for the command line::

    import pfd

    pfd.run("examples/si/pfd.yaml")                   # what `pfd run` does
    model = pfd.finetune(dft_frames, "work/ft")       # labelled Atoms -> model file
    student = pfd.distill(model, structures, settings=None, workdir="work/st")
    calc = pfd.load_calculator(student.model)         # any model file -> ASE calculator
    pfd.analysis.equation_of_state(calc, atoms)       # one analysis, no run directory

Everything is imported on first use, so ``import pfd`` is instant and a missing
optional package matters only when the part that needs it is called.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

#: public name -> "module:attribute" (or "module" for a module)
_API = {
    "run": "pfd.workflow:run",
    "finetune": "pfd.workflow:finetune",
    "RunResult": "pfd.workflow:RunResult",
    "distill": "pfd.distillation:distill",
    "load_calculator": "pfd.calculators:load_calculator",
    "load_config": "pfd.config:load_config",
    "RunConfig": "pfd.config:RunConfig",
    "ModelConfig": "pfd.config:ModelConfig",
    "FineTuneConfig": "pfd.config:FineTuneConfig",
    "DistillConfig": "pfd.config:DistillConfig",
    "RunLayout": "pfd.layout:RunLayout",
    "analysis": "pfd.analysis",
    "PFDError": "pfd.errors:PFDError",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'pfd' has no attribute '{name}'")
    module, _, attr = target.partition(":")
    value = import_module(module)
    return getattr(value, attr) if attr else value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
