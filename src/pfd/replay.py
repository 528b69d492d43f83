"""Replay of pseudo-labels: fine-tuning that does not forget where it did not label.

A few DFT frames of one crystal pull a foundation model toward that crystal and
away from what it knew elsewhere: on the Si example the fine-tuned SevenNet-0
predicted vacancy, liquid and surface forces worse than the untouched model
(``benchmarks/replay.py``). Replay keeps that knowledge at no DFT cost: short MD
with the *untouched* foundation model on default variants of each crystal that
the run does not label (a vacancy per distinct site, (100) and (111) slabs;
:mod:`pfd.variants`), frames sampled from it and labelled with the foundation's
own energy, forces and stress, then trained on beside the DFT frames with a
small loss weight (``finetune.replay``; by default forces only).

The labels are stored in the foundation's energy zero (``RUN_DIR/replay.extxyz``,
reused by a resumed run); each training shifts them by the per-element E0 that
maps the foundation onto the DFT frames (:func:`shift_energies`), so replayed
and DFT energies share one zero.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read

from pfd.config import ExploreConfig, RunConfig
from pfd.config.loop import ReplayConfig
from pfd.db import write_frames_atomic
from pfd.explore import MDTask, run_md
from pfd.layout import RunLayout
from pfd.models import ForceFieldBackend
from pfd.models.e0 import fit_e0_shift, predicted_energies
from pfd.progress import Reporter
from pfd.state import file_digest
from pfd.structures import structures_digest

#: Replayed frames when ``finetune.replay.frames`` is not set and the backend can
#: weight frames: enough to cover each variant at each temperature once or twice,
#: few enough that a training takes at most about twice as long
DEFAULT_FRAMES = 24
SLAB_MILLER = ((1, 0, 0), (1, 1, 1))
#: what :func:`replay_cells` makes, part of the cache key
CELLS = f"vacancies, slabs {SLAB_MILLER}"


@dataclass(frozen=True)
class ReplaySet:
    """Frames labelled by the untouched ``foundation`` (its energy zero), trained
    on with loss ``weights`` (``energy``, ``force``, ``stress``) relative to a
    DFT frame's."""

    frames: list[Atoms]
    foundation: Path
    weights: dict[str, float]


def frames_wanted(cfg: ReplayConfig, backend: object) -> int:
    """How many frames to replay: the configured number, else the default where
    ``backend`` weights frames in its loss (``supports_weighted_replay``)."""
    if cfg.frames is not None:
        return cfg.frames
    return DEFAULT_FRAMES if getattr(backend, "supports_weighted_replay", False) else 0


def replay_cells(structures: list[Atoms], min_atoms: int = 16) -> list[Atoms]:
    """The cells replay MD starts from: each crystal's (periodic, no
    ``info['variant']``) vacancies and (100) and (111) slabs, unless the run
    already holds that variant of it.

    The run's own structures are not replayed: DFT labels them, and the
    foundation's labels there would pull the model back toward its own errors.
    Nor is a melt: short MD of a crystal cell stays a hot, 4-fold coordinated
    crystal (the Si liquid is 4.5-fold and denser), and replaying it made the
    Si example's liquid forces worse (``benchmarks/replay.py``).
    """
    from pfd import variants

    have = {(a.info.get("structure"), a.info.get("variant")) for a in structures}
    out = []
    for atoms in structures:
        if "variant" in atoms.info or not all(atoms.pbc):
            continue
        made = variants.vacancies(atoms, min_atoms) + variants.slabs(
            atoms, SLAB_MILLER, min_atoms=min_atoms
        )
        out += [v for v in made if (v.info["structure"], v.info["variant"]) not in have]
    return out


def replay_tasks(
    cells: list[Atoms], cfg: ReplayConfig, temperatures_K: list[float], seed: int
) -> list[MDTask]:
    """One NVT trajectory per cell and temperature (``MDTask.structure`` indexes
    ``cells``)."""
    rng = np.random.default_rng([seed, 7])
    return [
        MDTask(k, t, t, None, cfg.steps, int(rng.integers(2**31)))
        for k in range(len(cells))
        for t in temperatures_K
    ]


def generate_replay(
    structures: list[Atoms],
    calc: Calculator,
    cfg: ReplayConfig,
    explore: ExploreConfig,
    n_frames: int,
    seed: int = 0,
    on_trajectory: Callable[[str, int], None] | None = None,
) -> list[Atoms]:
    """About ``n_frames`` frames of short MD with ``calc`` (the untouched
    foundation), each labelled with its energy, forces and stress.

    Each trajectory of :func:`replay_tasks` keeps its last frames, spread over
    its second half; the MD uses ``explore``'s time step, friction, guards and
    start perturbation. Frames carry ``info['replay']`` True and
    ``info['variant']``.
    """
    cells = replay_cells(structures, cfg.min_atoms)
    if n_frames <= 0 or not cells:
        return []
    temperatures = explore.temperatures_K or [300.0]
    tasks = replay_tasks(cells, cfg, temperatures, seed)
    keep = math.ceil(n_frames / len(tasks))
    frames: list[Atoms] = []
    for task in tasks:
        md = explore.model_copy(
            update={"sample_every": max(1, task.steps // (2 * keep))}
        )
        traj = run_md(cells[task.structure], calc, task, md, label=True)
        cell = cells[task.structure]
        variant = cell.info["variant"]
        for frame in traj.frames[-keep:]:
            frame.info = {
                "structure": cell.info["structure"],
                "variant": variant,
                "replay": True,
                "source": f"replay {variant} {task.label}",
            }
            frames.append(frame)
        if on_trajectory:
            on_trajectory(f"{variant} {task.label}", len(traj.frames[-keep:]))
    if len(frames) > n_frames:  # evenly over all trajectories
        pick = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
        frames = [frames[i] for i in pick]
    return frames


#: the exploration settings replay MD uses (others may change on resume)
_MD_FIELDS = ("temperatures_K", "timestep_fs", "friction_fs", "displacement_A",
              "strain", "guards")  # fmt: skip


def replay_key(
    structures: list[Atoms],
    foundation: Path,
    cfg: ReplayConfig,
    explore: ExploreConfig,
    seed: int,
    n_frames: int,
) -> str:
    """What the cached frames depend on: structures, foundation, settings, MD."""
    parts = {
        "structures": structures_digest(structures),
        "cells": CELLS,
        "foundation": file_digest(foundation),
        "replay": cfg.model_dump(mode="json", include={"steps", "min_atoms"}),
        "explore": explore.model_dump(mode="json", include=set(_MD_FIELDS)),
        "seed": seed,
        "frames": n_frames,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def cached_replay(
    path: Path,
    key: str,
    make: Callable[[], list[Atoms]],
) -> list[Atoms]:
    """The frames cached at ``path`` if they were made with ``key``; else
    ``make()``'s, written there atomically and read back (a resumed run trains
    on the same numbers)."""
    if path.is_file() and path.stat().st_size:
        frames = read(path, ":")
        if frames and all(f.info.get("replay_key") == key for f in frames):
            return frames
    frames = make()
    for frame in frames:
        frame.info["replay_key"] = key
    write_frames_atomic(path, frames)
    return read(path, ":") if frames else []


def foundation_shifts(
    frames: list[Atoms], foundation_calc: Calculator
) -> dict[int, float]:
    """Per-element energies that map the foundation's zero onto ``frames``' (DFT)."""
    return fit_e0_shift(frames, predicted_energies(frames, foundation_calc))


def shift_energies(frames: list[Atoms], shifts: dict[int, float]) -> list[Atoms]:
    """Copies of ``frames`` whose energies move by ``sum_Z n_Z shift_Z``."""
    out = []
    for atoms in frames:
        results = dict(atoms.calc.results)
        delta = sum(shifts.get(int(z), 0.0) for z in atoms.numbers)
        for name in ("energy", "free_energy"):
            if name in results:
                results[name] = float(results[name]) + delta
        copy = atoms.copy()
        copy.calc = SinglePointCalculator(copy, **results)
        out.append(copy)
    return out


def run_replay(
    config: RunConfig,
    structures: list[Atoms],
    backend: ForceFieldBackend,
    foundation: Path,
    report: Reporter | None = None,
) -> ReplaySet | None:
    """A run's replay set (None when off), cached in ``RUN_DIR/replay.extxyz``."""
    path = RunLayout(config.run_dir).replay
    cfg, explore = config.finetune.replay, config.explore
    return replay_set(
        path, structures, backend, foundation, cfg, explore, config.seed, report
    )


def replay_set(
    path: Path,
    structures: list[Atoms],
    backend: ForceFieldBackend,
    foundation: Path,
    cfg: ReplayConfig,
    explore: ExploreConfig,
    seed: int = 0,
    report: Reporter | None = None,
) -> ReplaySet | None:
    """The replay set of ``structures`` (None when off): read from ``path`` if
    it was made with the same inputs, else generated and written there."""
    n_frames = frames_wanted(cfg, backend)
    if not n_frames:
        return None
    key = replay_key(structures, foundation, cfg, explore, seed, n_frames)

    def make() -> list[Atoms]:
        if report:
            report.info(
                "replay: MD of each crystal's vacancies and slabs with the "
                f"untouched foundation, {n_frames} frames labelled by it"
            )
        calc = backend.calculator(foundation)
        return generate_replay(structures, calc, cfg, explore, n_frames, seed)

    frames = cached_replay(path, key, make)
    return ReplaySet(frames, foundation, cfg.weights) if frames else None
