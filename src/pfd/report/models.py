"""The models of a run the report compares: foundation, teacher, student."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ase.calculators.calculator import Calculator

from pfd.config import RunConfig
from pfd.layout import RunLayout
from pfd.report.cache import file_digest


@dataclass
class Model:
    """One model of the run; its calculator is built once, when first asked for."""

    name: str
    path: Path
    build: Callable[[], Calculator] = field(repr=False)
    _calc: Calculator | None = field(default=None, repr=False)

    def __call__(self) -> Calculator:
        """The calculator (a factory for :mod:`pfd.analysis`)."""
        if self._calc is None:
            self._calc = self.build()
        return self._calc

    def digest(self) -> str:
        """Hash of the model file's bytes: the same wherever the run lies."""
        return file_digest(self.path)


def run_models(config: RunConfig) -> list[Model]:
    """Foundation, teacher and (when distilled) student of a run.

    Foundation and teacher load through the run's backend (its threads, head,
    python), the student through :func:`pfd.calculators.load_calculator`.
    """
    from pfd.calculators import load_calculator
    from pfd.distillation import student_model
    from pfd.models import make_backend

    backend = make_backend(config.model)
    found = backend.resolve(config.model.checkpoint)
    models = [Model("foundation", found, partial(backend.calculator, found))]
    teacher = RunLayout(config.run_dir).final_model
    if teacher.exists():
        models.append(Model("teacher", teacher, partial(backend.calculator, teacher)))
    student = student_model(config.run_dir)
    if student is not None:
        build = partial(load_calculator, student, threads=config.model.threads)
        models.append(Model("student", student, build))
    return models
