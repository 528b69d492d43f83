"""Teacher data for distillation: MD with the teacher over conditions wider than
fine-tuning explored, sampled frames labelled by it, plus rattled copies, split
into the student's training, held-out and reserve frames.

One file per trajectory (``md/NNN.extxyz``, then its record ``md/NNN.json``),
so a killed generation resumes with the trajectories it had not finished. The
trajectories run side by side as ``md`` tasks of a :class:`pfd.execute.Executor`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.io import read

from pfd.config import DistillConfig, ExploreConfig, StructureExploreConfig
from pfd.db import write_frames_atomic, write_json_atomic
from pfd.errors import PFDError
from pfd.explore import MDTask, cached_calculator, labelled_by, plan_md, run_md
from pfd.progress import Reporter
from pfd.structures import perturb

_GENERATION = (
    "temperatures_K",
    "pressures_bar",
    "supercells",
    "steps",
    "sample_every",
    "rattles_per_frame",
    "rattle_A",
    "rattle_strain",
    "variants",
    "variant_conditions",
)


def check_settings(work: Path, cfg: DistillConfig) -> None:
    """Teacher data of one work directory comes from one set of MD settings."""
    path = work / "settings.json"
    new = {k: v for k, v in cfg.model_dump(mode="json").items() if k in _GENERATION}
    if path.exists():
        old = json.loads(path.read_text())
        changed = sorted(k for k in new if old.get(k) != new[k])
        if changed:
            raise PFDError(
                f"distill settings {', '.join(changed)} changed since the teacher "
                f"data in '{work}' was made; restore them, or delete '{work}' to "
                "generate it again"
            )
    write_json_atomic(path, new)


def md_settings(cfg: DistillConfig, explore: ExploreConfig) -> ExploreConfig:
    """The exploration settings of the teacher's MD (wider than fine-tuning)."""
    temps = cfg.temperatures_K
    if temps is None:
        base = explore.temperatures_K or [r.stop_K for r in explore.ramps]
        temps = sorted({0.5 * min(base), *base, 1.2 * max(base)})
    pressures = cfg.pressures_bar
    if pressures is None:
        pressures = [None, *(p for p in explore.pressures_bar if p is not None)]
    return explore.model_copy(
        update={
            "temperatures_K": [float(t) for t in temps],
            "pressures_bar": pressures,
            "ramps": explore.ramps,
            "steps": cfg.steps,
            "sample_every": cfg.sample_every,
            "per_structure": {},  # the loop's own conditions, not the student's
        }
    )


def variant_settings(
    settings: ExploreConfig, own: StructureExploreConfig | None
) -> ExploreConfig:
    """``settings`` with the keys ``own`` gives (the variants' conditions)."""
    if own is None:
        return settings
    given = {k: getattr(own, k) for k in type(own).model_fields}
    return settings.model_copy(update={k: v for k, v in given.items() if v is not None})


def supercells(structures: list[Atoms], cfg: DistillConfig) -> list[Atoms]:
    """Each structure at each supercell size (non-periodic ones as they are)."""
    out = []
    for atoms in structures:
        sizes = cfg.supercells if all(atoms.pbc) else [(1, 1, 1)]
        for size in dict.fromkeys(tuple(s) for s in sizes):
            big = atoms.repeat(size)
            big.info = dict(atoms.info) | {
                "structure": len(out),
                "supercell": "x".join(map(str, size)),
            }
            out.append(big)
    return out


def variant_cells(variants: list[Atoms], first: int) -> list[Atoms]:
    """Structure variants (:mod:`pfd.variants`) as teacher MD cells numbered from
    ``first`` on, each keeping its ``info['variant']`` (and a slab's fixed cell, a
    melt's ramps), so that every frame names the variant it comes from."""
    out = []
    for k, cell in enumerate(variants):
        cell = cell.copy()
        cell.info = dict(cell.info) | {"structure": first + k, "supercell": "1x1x1"}
        out.append(cell)
    return out


def generate(
    teacher: Callable[[], Calculator],
    structures: list[Atoms],
    cfg: DistillConfig,
    explore: ExploreConfig,
    seed: int,
    work: Path,
    report: Reporter,
    executor=None,
    variants: list[Atoms] | None = None,
) -> list[Atoms]:
    """Teacher MD over the distillation's conditions; one file per trajectory.

    ``structures`` run at each of ``cfg.supercells``, then ``variants`` as they
    are, at ``cfg.variant_conditions`` where given (a slab NVT only, a melt its
    own ramps; see :func:`pfd.explore.plan_md`).
    The trajectories run side by side as ``md`` tasks of ``executor`` (default:
    a local pool of ``cfg.workers`` processes, each with its share of threads).
    """
    systems = supercells(structures, cfg)
    settings = md_settings(cfg, explore)
    tasks = plan_md(systems, settings, seed=seed * 1000 + 999)
    cells = variant_cells(variants or [], len(systems))
    if cells:  # at their own conditions where asked (distill.variant_conditions)
        conditions = variant_settings(settings, cfg.variant_conditions)
        tasks += plan_md(cells, conditions, seed=seed * 1000 + 998)
        systems += cells
    md_dir = work / "md"
    md_dir.mkdir(exist_ok=True)
    todo = [k for k in range(len(tasks)) if not (md_dir / f"{k:03d}.json").exists()]
    if todo:
        own = executor is None
        workers = min(len(todo), cfg.workers or os.cpu_count() or 1)
        if own:
            from pfd.execute import LocalExecutor

            executor = LocalExecutor(1, workers)
        else:
            workers = executor.slots("md")
        report.info(
            f"distill: teacher MD, {len(todo)} of {len(tasks)} trajectories to run "
            f"({workers} side by side), {settings.steps} steps each"
        )
        jobs = {k: (systems[tasks[k].structure], tasks[k]) for k in todo}
        try:
            _teacher_md(
                _share(teacher, workers), jobs, settings, cfg, md_dir, report, executor
            )
        finally:
            if own:
                executor.close()
    frames: list[Atoms] = []
    for k in range(len(tasks)):
        path = md_dir / f"{k:03d}.extxyz"
        if path.stat().st_size:
            frames.extend(read(path, ":"))
    return frames


def _share(teacher: Callable[[], Calculator], workers: int) -> Callable[[], Calculator]:
    """A recipe with a threads field gets its share of them per worker."""
    if is_dataclass(teacher) and hasattr(teacher, "threads"):
        return replace(teacher, threads=max(1, teacher.threads // workers))
    return teacher


def _teacher_md(
    teacher: Callable[[], Calculator],
    jobs: dict[int, tuple[Atoms, MDTask]],
    settings: ExploreConfig,
    cfg: DistillConfig,
    md_dir: Path,
    report: Reporter,
    executor,
) -> None:
    """Submit every trajectory, longest (atoms x steps) first so that a melt's
    long ramp does not run alone at the end; write each one's frames and record
    as it ends."""
    longest = sorted(jobs, key=lambda k: -len(jobs[k][0]) * jobs[k][1].steps)
    futures = {
        executor.submit("md", teacher_job, teacher, *jobs[k], settings, cfg): k
        for k in longest
    }
    with report.bar("teacher MD", len(futures)) as update:
        for done, future in enumerate(as_completed(futures), start=1):
            k = futures[future]
            frames, record = future.result()
            write_frames_atomic(md_dir / f"{k:03d}.extxyz", frames)
            write_json_atomic(md_dir / f"{k:03d}.json", record)
            note = f", stopped at {record['stopped']}" if record["stopped"] else ""
            report.info(
                f"  teacher MD {record['label']}: {record['frames']} frames in "
                f"{record['seconds']:.0f} s{note}"
            )
            update(done)


def teacher_job(
    make_calc: Callable[[], Calculator],
    atoms: Atoms,
    task: MDTask,
    settings: ExploreConfig,
    cfg: DistillConfig,
) -> tuple[list[Atoms], dict[str, Any]]:
    """One teacher trajectory with labelled frames, plus rattled copies of them."""
    t0 = time.perf_counter()
    calc = cached_calculator(make_calc)
    traj = run_md(atoms, calc, task, settings, label=True)
    rng = np.random.default_rng(task.seed + 1)
    frames = []
    for frame in traj.frames:
        frame.info["supercell"] = atoms.info.get("supercell", "1x1x1")
        frames.append(frame)
        for r in range(cfg.rattles_per_frame):
            copy = perturb(frame, rng, cfg.rattle_A, cfg.rattle_strain)
            copy.info = dict(frame.info) | {"source": f"{frame.info['source']} r{r}"}
            copy.calc = calc
            labels = labelled_by(copy)  # one teacher call
            copy.calc = labels
            frames.append(copy)
    record = {
        "label": f"{task.label} {atoms.info.get('supercell', '1x1x1')}",
        "frames": len(frames),
        "stopped": traj.stopped,
        "steps_done": traj.steps_done,
        "seconds": time.perf_counter() - t0,
    }
    return frames, record


# --- split -------------------------------------------------------------------


def split_frames(
    frames: list[Atoms], cfg: DistillConfig, seed: int, work: Path
) -> tuple[list[Atoms], list[Atoms], list[Atoms]]:
    """Evenly spaced frames for the student (train and held-out test), rest in reserve.

    Decided once and written, so a resumed run trains on the same frames.
    """
    files = [work / f"{n}.extxyz" for n in ("train", "test", "pool")]
    if all(f.exists() for f in files):
        return tuple(read(f, ":") if f.stat().st_size else [] for f in files)
    n = len(frames)
    if n > cfg.max_frames:
        chosen = np.unique(np.linspace(0, n - 1, cfg.max_frames).round().astype(int))
    else:
        chosen = np.arange(n)
    rest = np.setdiff1d(np.arange(n), chosen)
    rng = np.random.default_rng([seed, 77])
    order = rng.permutation(chosen)
    n_test = max(1, round(cfg.test_fraction * len(order))) if len(order) > 1 else 0
    test = [frames[i] for i in sorted(order[:n_test])]
    train = [frames[i] for i in sorted(order[n_test:])]
    pool = [frames[i] for i in rest]
    for path, part in zip(files, (train, test, pool), strict=True):
        write_frames_atomic(path, part)
    return train, test, pool


def write_export(work: Path, train: list[Atoms], test: list[Atoms]) -> None:
    """The teacher-labelled data as one extxyz, for use elsewhere."""
    path = work / "teacher_labelled.extxyz"
    if not path.exists():
        frames = [_tagged(a, "train") for a in train]
        write_frames_atomic(path, frames + [_tagged(a, "test") for a in test])


def _tagged(atoms: Atoms, subset: str) -> Atoms:
    atoms.info["subset"] = subset
    return atoms
