"""Students: the small, fast force fields that distillation trains from scratch.

A student is a small object with five jobs (say whether its packages are
installed, train on labelled frames, give an ASE calculator, check elements,
write LAMMPS pair lines); one module per student, imported lazily, beside the
foundation backends of :mod:`pfd.models`. DeePMD-kit ``se_e2_a`` is the first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ase import Atoms
from ase.calculators.calculator import Calculator

from pfd.config import StudentConfig

if TYPE_CHECKING:
    from pfd.progress import Reporter

#: students: name -> "module:Class"
STUDENTS: dict[str, str] = {
    "deepmd": "pfd.students.deepmd:DeepMDStudent",
}


class Student(Protocol):
    """What distillation needs from a student force field."""

    name: str
    #: suffixes of its model files (``.pb``): how :func:`pfd.load_calculator` knows it
    suffixes: tuple[str, ...]

    def check_available(self) -> None:
        """Raise :class:`pfd.errors.PFDError` naming the missing package and the fix."""
        ...

    def train(
        self,
        train: list[Atoms],
        test: list[Atoms],
        workdir: Path,
        *,
        seed: int = 0,
        init_from: Path | None = None,
        data_dir: Path | None = None,
        report: Reporter | None = None,
    ) -> Path:
        """Train on ``train`` (``test`` held out) in ``workdir``; the model file.

        Resumes from the checkpoint a killed training left in ``workdir``, and
        returns the model at once when ``workdir`` holds it for these settings.
        ``init_from``: the work directory of an earlier training to start from;
        ``data_dir``: where to write the training data in the student's format.
        """
        ...

    def ship(self, workdir: Path, out: Path) -> Path:
        """Copy the model (and its input, learning curve) to ``out``; the model file."""
        ...

    def resolve(self, model: str) -> Path:
        """Path of a model file (raises one line when there is none)."""
        ...

    def check_elements(self, model: Path, symbols: set[str]) -> None:
        """Raise :class:`pfd.errors.PFDError` naming elements the model lacks."""
        ...

    def calculator(self, model: Path) -> Calculator:
        """An ASE calculator for ``model``."""
        ...

    def lammps_pair_lines(self, models: list[str]) -> list[str]:
        """LAMMPS ``pair_style``/``pair_coeff`` lines for the model file(s)."""
        ...


def student_class(name: str) -> type:
    """The class registered as ``name``, or imported from ``module:Class``."""
    from pfd.registry import load_class

    return load_class(name, STUDENTS, "student")


def is_student(name: str) -> bool:
    """Whether ``name`` names a student (rather than a foundation backend)."""
    if name in STUDENTS:
        return True
    if ":" not in name:
        return False
    return hasattr(student_class(name), "lammps_pair_lines")


def make_student(
    name: str = "deepmd",
    cfg: StudentConfig | None = None,
    *,
    type_map: list[str] | None = None,
    threads: int = 1,
) -> Student:
    """The student ``name`` with its settings, elements and CPU threads."""
    cls: Callable[..., Student] = student_class(name)
    return cls(cfg or StudentConfig(), type_map=type_map, threads=threads)
