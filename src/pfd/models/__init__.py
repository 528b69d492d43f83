"""Force-field backends: the foundation model and its fine-tuned descendants.

A backend is a small object with four jobs (check elements, give an ASE
calculator, refit reference energies, fine-tune); one module per backend,
imported lazily so a missing package only matters when that backend is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ase import Atoms
from ase.calculators.calculator import Calculator

from pfd.config import FineTuneConfig, ModelConfig
from pfd.errors import PFDError
from pfd.registry import BACKENDS, load_class

#: called with (epoch, total epochs) as a training progresses
EpochCallback = Callable[[int, int], None] | None


@dataclass(frozen=True)
class TrainingJob:
    """One fine-tuning: start from ``model``, learn ``train``, pick the best epoch
    on ``valid`` (may be empty), with ``settings``, in ``workdir``.

    ``replay``: frames labelled by the untouched foundation (energies already in
    the DFT frames' zero), learnt beside ``train`` with loss weights
    ``replay_weights`` (``energy``, ``force``, ``stress``) relative to a DFT
    frame's; only backends with
    ``supports_weighted_replay`` take them (see :mod:`pfd.replay`).
    """

    model: Path
    train: list[Atoms]
    valid: list[Atoms]
    workdir: Path
    settings: FineTuneConfig
    seed: int = 0
    replay: tuple[Atoms, ...] = ()
    replay_weights: dict[str, float] = field(default_factory=dict)

    def prepared(
        self,
    ) -> tuple[Path, list[Atoms], list[Atoms], Path, FineTuneConfig, int]:
        """Its parts, with absolute paths and the work directory made.

        Training tools run inside ``workdir``, so paths handed to them must be absolute.
        """
        workdir = Path(self.workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        model = Path(self.model).resolve()
        return model, self.train, self.valid, workdir, self.settings, self.seed


class ForceFieldBackend(Protocol):
    """What the loop needs from a machine-learning force field.

    Class attributes the config reads before anything runs: ``name`` (the
    registry key), ``default_checkpoint`` (used when ``model.checkpoint`` is
    empty; ``None``: the user must give one), ``supports_replay`` (whether
    ``finetune.replay_data`` means anything to it) and, optionally,
    ``supports_weighted_replay`` (whether ``fine_tune`` learns
    ``TrainingJob.replay`` with its weight: ``finetune.replay``).
    """

    name: str
    default_checkpoint: str | None
    supports_replay: bool

    def resolve(self, model: str) -> Path:
        """Path of a model file (a shipped checkpoint name or a local file)."""
        ...

    def check_elements(self, model: Path, symbols: set[str]) -> None:
        """Raise :class:`pfd.errors.PFDError` naming elements the model lacks."""
        ...

    def calculator(self, model: Path) -> Calculator:
        """An ASE calculator for ``model``."""
        ...

    def refit_e0(self, model: Path, frames: list[Atoms], out: Path) -> Path:
        """A copy of ``model`` whose per-element energies fit ``frames``' zero."""
        ...

    def fine_tune(self, job: TrainingJob, on_epoch: EpochCallback = None) -> Path:
        """Run ``job``; return the path of the new model file (in ``job.workdir``).

        ``on_epoch(epoch, total)`` is called as epochs finish, for progress bars.
        """
        ...


def check_covered(model: str | Path, missing: list[str], why: str = "") -> None:
    """Raise the one-line error for elements a foundation model does not cover."""
    from pfd.errors import PFDError

    if missing:
        raise PFDError(
            f"the foundation model '{Path(model).name}' does not cover element(s) "
            f"{', '.join(missing)}{f' ({why})' if why else ''}; choose another model"
        )


def has_stress(atoms: Atoms) -> bool:
    """Whether a labelled frame carries a stress to train on (periodic cells only)."""
    return all(atoms.pbc) and atoms.calc is not None and "stress" in atoms.calc.results


def make_backend(cfg: ModelConfig) -> ForceFieldBackend:
    """The backend for ``cfg.backend``: a registered name or ``module:Class``."""
    return backend_by_name(
        cfg.backend, cfg.device, cfg.threads, head=cfg.head, python=cfg.python
    )


def backend_class(name: str) -> type:
    """The backend class of a registered name or a ``module:Class`` path."""
    return load_class(name, BACKENDS, "model backend")


def backend_by_name(
    name: str,
    device: str = "cpu",
    threads: int = 2,
    head: str | None = None,
    python: str | None = None,
) -> ForceFieldBackend:
    """A backend instance; options it does not take are a one-line error."""
    cls = backend_class(name)
    options = {k: v for k, v in {"head": head, "python": python}.items() if v}
    try:
        return cls(device=device, threads=threads, **options)
    except TypeError as err:
        keys = " and ".join(f"model.{k}" for k in options)
        raise PFDError(
            f"model backend '{name}' does not take {keys}; remove it"
        ) from err


@dataclass(frozen=True)
class CalculatorFactory:
    """A picklable, hashable recipe for a model's calculator (for worker processes)."""

    backend: str
    model: str
    device: str = "cpu"
    threads: int = 1
    head: str | None = None
    python: str | None = None

    def __call__(self) -> Calculator:
        ff = backend_by_name(
            self.backend, self.device, self.threads, self.head, self.python
        )
        return ff.calculator(Path(self.model))
