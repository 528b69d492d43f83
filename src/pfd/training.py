"""The training step: which frames a fine-tuning sees and how it is started.

Shared by the loop (one training per iteration) and :func:`pfd.finetune`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from pfd.config import FineTuneConfig, ModelConfig
from pfd.db import RunDB
from pfd.errors import PFDError
from pfd.models import ForceFieldBackend, TrainingJob, make_backend
from pfd.replay import ReplaySet, foundation_shifts, shift_energies


def training_job(
    backend: ForceFieldBackend,
    start: Path,
    frames: list[Atoms],
    workdir: Path,
    settings: FineTuneConfig,
    seed: int,
    iteration: int = 1,
    replay: ReplaySet | None = None,
) -> TrainingJob:
    """The job that fine-tunes ``start`` on ``frames`` (E0 refitted first if asked).

    ``seed`` is the run's seed; the job's is ``seed + iteration``, and a tenth of
    the frames (at least 2, once there are 10) is held out by
    :func:`split_frames` for picking the best epoch.

    DFT codes count energies from different zeros (GPAW from isolated atoms,
    VASP from its PAW references), so the foundation's per-element reference
    energies are refitted to the frames by least squares before training.

    ``replay`` frames (labelled by the untouched foundation, :mod:`pfd.replay`)
    are shifted into the DFT frames' zero and trained on with their weight; they
    never validate. The shift is fitted from the foundation, not from ``start``
    (a previous iteration's model when ``from_foundation`` is false).
    """
    train, valid = split_frames(frames, seed, iteration)
    replayed: tuple[Atoms, ...] = ()
    if replay is not None and replay.frames:
        if not getattr(backend, "supports_weighted_replay", False):
            raise PFDError(
                f"model backend '{backend.name}' cannot weight replayed frames; "
                "set finetune.replay.frames: 0"
            )
        shifts = foundation_shifts(frames, backend.calculator(replay.foundation))
        replayed = tuple(shift_energies(replay.frames, shifts))
    if settings.refit_e0:
        start = backend.refit_e0(start, frames, Path(workdir) / "e0_refit.pth")
    weights = replay.weights if replayed and replay else {}
    return TrainingJob(
        start, train, valid, workdir, settings, seed + iteration, replayed, weights
    )


def split_frames(
    frames: list[Atoms], seed: int, iteration: int
) -> tuple[list[Atoms], list[Atoms]]:
    """Iteration ``iteration``'s training and validation frames: a tenth (at least
    2) held out for picking the best epoch once there are 10 frames."""
    rng = np.random.default_rng([seed, iteration, 1])
    order = rng.permutation(len(frames))
    n_valid = max(2, len(frames) // 10) if len(frames) >= 10 else 0
    valid = [frames[i] for i in order[:n_valid]]
    train = [frames[i] for i in order[n_valid:]]
    return train, valid


def fine_tune_task(model_cfg: ModelConfig, job: TrainingJob) -> Path:
    """One training as a task (for remote executors): builds its own backend."""
    return make_backend(model_cfg).fine_tune(job)


def check_one_reference(db: RunDB, max_iteration: int, allow_mixed: bool) -> None:
    """Refuse a training set labelled with several codes or settings.

    Energy zeros differ by up to hundreds of eV between codes (and move with
    cutoffs, pseudopotentials, smearing): one model cannot fit both.
    """
    settings = db.label_settings(max_iteration)
    if len(settings) > 1 and not allow_mixed:
        kinds = "; ".join(f"{n} frames by {key[:120]}" for key, n in settings.items())
        raise PFDError(
            f"the labelled frames come from {len(settings)} different reference "
            f"settings ({kinds}): their energies are not comparable; relabel them "
            "with one setting, or set labeler.allow_mixed: true"
        )
