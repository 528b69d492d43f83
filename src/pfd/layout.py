"""Every path of a run directory, named once.

A run directory is relocatable: what pfd records inside it (``state.json``,
``student/check.json``) stores paths relative to the run directory, and
:meth:`RunLayout.resolve` turns them back into paths wherever the directory
now lies. Absolute paths recorded by older versions are read back by their
part below the run directory's name when they no longer exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    """The files and folders of one run directory (``root``)."""

    root: Path

    # --- the run's records ---------------------------------------------------
    @property
    def db(self) -> Path:
        """ASE SQLite database: every frame, its status and DFT label."""
        return self.root / "pfd.db"

    @property
    def dft(self) -> Path:
        """All DFT-labelled frames as extxyz, for use elsewhere."""
        return self.root / "dft.extxyz"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    @property
    def log(self) -> Path:
        """What trainers, libraries and subprocesses printed (not with --verbose)."""
        return self.root / "logs" / "pfd.log"

    # --- fine-tuning ---------------------------------------------------------
    @property
    def variants(self) -> Path:
        """The structure variants the run explores, made once (extxyz)."""
        return self.root / "variants.extxyz"

    def iteration(self, n: int) -> Path:
        return self.root / f"iter_{n:03d}"

    def model(self, n: int) -> Path:
        """The model of iteration ``n`` (trained on the frames of iterations < n)."""
        return self.iteration(n) / "model.pth"

    def final_training(self, n_labels: int) -> Path:
        """The model trained on all labels when the loop did not converge."""
        return self.root / f"final_{n_labels:04d}" / "model.pth"

    @property
    def final_model(self) -> Path:
        return self.root / "final_model.pth"

    @property
    def labels(self) -> Path:
        """One DFT job directory per frame: ``label/<uid>/``."""
        return self.root / "label"

    def job(self, uid: str) -> Path:
        return self.labels / uid

    @property
    def replay(self) -> Path:
        """Frames labelled by the untouched foundation for replay (its energy zero)."""
        return self.root / "replay.extxyz"

    # --- distillation ----------------------------------------------------------
    @property
    def distill(self) -> Path:
        """Teacher trajectories, training data and training directories."""
        return self.root / "distill"

    @property
    def student(self) -> Path:
        """The shipped student, its input, learning curve and checks."""
        return self.root / "student"

    @property
    def student_check(self) -> Path:
        return self.student / "check.json"

    # --- report ------------------------------------------------------------------
    @property
    def report(self) -> Path:
        return self.root / "report"

    # --- relocatable paths ---------------------------------------------------
    def relative(self, path: str | Path) -> str:
        """``path`` as recorded in the run's files: relative to the root if inside."""
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)

    def resolve(self, recorded: str | Path) -> Path:
        """A recorded path where it is now, wherever the run directory was moved."""
        path = Path(recorded)
        if not path.is_absolute():
            return self.root / path
        if path.exists():
            return path
        # an absolute path of an older version: its part below the old root
        parts = path.parts
        for k in range(1, len(parts)):  # the longest tail that exists
            candidate = self.root.joinpath(*parts[k:])
            if candidate.exists():
                return candidate
        return path
