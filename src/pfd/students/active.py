"""Teacher-checked active learning of the student (``distill.active``).

Rounds of: student MD (ASE, the shipped student) on cells
``supercell_multiplier`` times larger than the teacher's, for longer; the
committee's max force deviation on every sampled frame; the frames it deviates
most on (and a few at random) labelled by the teacher and added to the
training data; every member retrained from its last checkpoint. Other random
frames of the same MD, labelled by the teacher and never trained on, measure
the student before and after: the rounds stop when its force RMSE on them is
below the target. Each round's files (``distill/active/round_R/``) are written
before the next step reads them, so a killed run neither reruns the MD nor
relabels: ``md.extxyz`` (frames with their deviation), ``fresh.extxyz`` and
``added.extxyz`` (teacher labels), ``member_K/`` (trainings), ``record.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.io import read

from pfd.analysis.errors import evaluate
from pfd.config import DistillConfig, ExploreConfig, StudentConfig
from pfd.db import write_frames_atomic, write_json_atomic
from pfd.errors import PFDError
from pfd.explore import explore, labelled_by
from pfd.progress import Reporter
from pfd.students import Student
from pfd.students.committee import committee_deviation, committee_record, member_file
from pfd.teacher import md_settings, supercells

#: the default target: this many times the student's held-out force RMSE
TARGET_FACTOR = 1.5
#: the added frames are repeated to make up about this share of the training
NEW_SHARE = 0.3
#: settings whose change makes earlier rounds stale (rounds, target: not)
_STALE = ("frames_per_round", "random_fraction", "fresh_frames", "steps",
          "supercell_multiplier", "retrain_steps", "retrain_start_lr")  # fmt: skip


@dataclass(frozen=True)
class ActivePaths:
    """The files of teacher-checked learning under ``root`` (``distill/active``)."""

    root: Path

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    def round_dir(self, r: int) -> Path:
        return self.root / f"round_{r}"

    def md(self, r: int) -> Path:
        """Student-MD frames of round ``r``, ``info['max_devi_f']`` each."""
        return self.round_dir(r) / "md.extxyz"

    def fresh(self, r: int) -> Path:
        return self.round_dir(r) / "fresh.extxyz"

    def added(self, r: int) -> Path:
        return self.round_dir(r) / "added.extxyz"

    def member(self, r: int, k: int) -> Path:
        return self.round_dir(r) / f"member_{k}"

    def record(self, r: int) -> Path:
        return self.round_dir(r) / "record.json"


def check_active(teacher: object, cfg: DistillConfig) -> None:
    """One-line errors for teacher-checked learning before anything runs."""
    if not cfg.active.rounds:
        return
    if cfg.committee < 2:
        raise PFDError(
            "teacher-checked learning picks frames by committee deviation: "
            "set distill.committee >= 2"
        )
    if teacher is None or (
        isinstance(teacher, str | Path) and not Path(teacher).is_file()
    ):
        raise PFDError(
            f"teacher model '{teacher}' not found: teacher-checked learning labels "
            "the student's frames with it; give the fine-tuned model "
            "(RUN_DIR/final_model.pth) or set distill.active.rounds: 0"
        )


def teacher_checked(
    teacher: Callable[[], Calculator],
    make: Callable[[StudentConfig], Student],
    structures: list[Atoms],
    members: list[Path],
    starts: list[Path],
    data: tuple[list[Atoms], list[Atoms]],
    cfg: DistillConfig,
    explore_cfg: ExploreConfig,
    work: Path,
    out: Path,
    *,
    held_out_rmse: float,
    seed: int = 0,
    report: Reporter | None = None,
    executor=None,
) -> tuple[list[Path], dict[str, Any]]:
    """Rounds of teacher-checked learning; the shipped committee and its record.

    ``members``: the committee's model files (the shipped student first);
    ``starts``: their training directories (checkpoints to retrain from);
    ``data``: the training and held-out teacher frames. The new models are
    shipped to ``out`` as the student and ``member_K``; the record holds
    ``active`` (every round), ``vs_teacher`` and ``committee`` (held-out).
    """
    report = report or Reporter(quiet=True)
    check_active(teacher, cfg)
    act, paths = cfg.active, ActivePaths(work / "active")
    _start_fresh(paths, members, cfg, report)
    target = act.force_rmse_eV_A or TARGET_FACTOR * held_out_rmse
    train, test = data
    models, dirs, rounds, added = list(members), list(starts), [], []
    stop = None
    for r in range(1, act.rounds + 1):
        rec = _stored(paths.record(r), target)
        if rec is None:
            state = (teacher, make, structures, models, dirs, train, added, test)
            rec = _round(
                r, state, cfg, explore_cfg, paths, target, seed, report, executor
            )
            write_json_atomic(paths.record(r), rec)
        if rec["retrained"]:
            models = [paths.root / m for m in rec["models"]]
            dirs = [m.parent for m in models]
            added += read(paths.added(r), ":")
        stop = _stop(rec, target) or ("max rounds" if r == act.rounds else None)
        rounds.append(rec | {"stop": stop})
        report.info(f"teacher-checked learning: {round_line(rounds[-1])}")
        if stop:
            break
    shipped = _ship(make(cfg.student), models, members, out)
    vs_teacher = evaluate(test, make(cfg.student).calculator(shipped[0]))
    record = {
        "rounds": rounds,
        "frames_added": len(added),
        "target_force_rmse_eV_A": target,
        "target_from": "distill.active.force_rmse_eV_A"
        if act.force_rmse_eV_A
        else f"{TARGET_FACTOR:g}x the student's held-out force RMSE",
        "stop": stop or "no rounds",
        "held_out_force_rmse_before_eV_A": held_out_rmse,
    }
    return shipped, {
        "active": record,
        "vs_teacher": vs_teacher.as_dict(),
        "committee": committee_record(shipped, test, cfg, report),
    }


def _round(r, state, cfg, explore_cfg, paths, target, seed, report, executor):
    """One round: MD, deviation, teacher labels, retraining; its record."""
    teacher, make, structures, models, dirs, train, added, test = state
    act, seconds, t0 = cfg.active, {}, time.perf_counter()
    student = make(cfg.student)
    frames = _student_md(student, models, structures, cfg, explore_cfg, paths.md(r),
                         seed * 1000 + 500 + r, executor)  # fmt: skip
    seconds["md_and_deviation"] = time.perf_counter() - t0
    dev = np.array([a.info["max_devi_f"] for a in frames])
    rec: dict[str, Any] = {"round": r, "md_frames": len(frames), "retrained": False}
    if len(frames) < 2:
        return rec | {"stop": "student MD gave fewer than 2 frames", "seconds": seconds}
    fresh_i, top_i, rand_i = choose(dev, act, np.random.default_rng([seed, 31, r]))
    t0 = time.perf_counter()
    fresh = _labelled(paths.fresh(r), [frames[i] for i in fresh_i], teacher)
    new = _labelled(paths.added(r), [frames[i] for i in [*top_i, *rand_i]], teacher)
    seconds["teacher_labels"] = time.perf_counter() - t0
    before = _rmse(student, models[0], fresh, new)
    rec |= {
        "deviation": _stats(dev),
        "deviation_of_added_min_eV_A": float(dev[top_i].min()) if len(top_i) else None,
        "frames_picked": len(new),
        "by_deviation": len(top_i),
        "at_random": len(rand_i),
        "fresh_frames": len(fresh),
        "fresh_force_rmse_before_eV_A": before[0],
        "added_force_rmse_before_eV_A": before[1],
    }
    if before[0] <= target:
        return rec | {"seconds": seconds}
    t0 = time.perf_counter()
    data = train + _repeat(added + new, len(train))
    trained = _retrain(make, cfg, dirs, data, test, paths, r, seed, report)
    seconds["retrain"] = time.perf_counter() - t0
    after = _rmse(student, trained[0], fresh, new)
    return rec | {
        "retrained": True,
        "models": [str(m.relative_to(paths.root)) for m in trained],
        "fresh_force_rmse_after_eV_A": after[0],
        "added_force_rmse_after_eV_A": after[1],
        "seconds": seconds,
    }


def _stored(path: Path, target: float) -> dict[str, Any] | None:
    """A finished round's record; None if there is none, or if it stopped below
    a target since lowered (then it is redone from its files, retraining)."""
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    below = rec.get("fresh_force_rmse_before_eV_A", 0.0) <= target
    return rec if rec["retrained"] or rec.get("stop") or below else None


def _stop(rec: dict[str, Any], target: float) -> str | None:
    """Why the rounds stop after ``rec`` (against the current target), if they do."""
    if rec.get("stop"):  # too few frames
        return rec["stop"]
    if not rec["retrained"]:
        return "below target before retraining"
    return "target reached" if rec["fresh_force_rmse_after_eV_A"] <= target else None


def _student_md(student, models, structures, cfg, explore_cfg, path, seed, executor):
    """The student's MD frames with the committee's deviation (made once)."""
    if path.exists():
        return read(path, ":") if path.stat().st_size else []
    from pfd.calculators import ModelCalculator

    act = cfg.active
    m = act.supercell_multiplier
    big = [tuple(m * n for n in s) for s in cfg.supercells]
    cells = supercells(structures, cfg.model_copy(update={"supercells": big}))
    settings = md_settings(cfg, explore_cfg).model_copy(
        update={"steps": act.steps or 3 * cfg.steps}
    )
    calc = ModelCalculator(str(models[0]), backend=student.name, threads=1)
    workers = cfg.workers or os.cpu_count() or 1
    trajs = explore(cells, calc, settings, seed, workers=workers, executor=executor)
    frames = [f for t in trajs for f in t.frames]
    if frames:
        for atoms, d in zip(frames, committee_deviation(models, frames), strict=True):
            atoms.info["max_devi_f"] = float(d)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_frames_atomic(path, frames)
    return frames


def choose(
    dev: np.ndarray, act, rng: np.random.Generator
) -> tuple[list[int], list[int], list[int]]:
    """Indices of the fresh check frames (random), of the frames added for
    their deviation (largest first) and of those added at random."""
    order = rng.permutation(len(dev))
    n_fresh = min(act.fresh_frames, len(dev) // 2)
    fresh, rest = order[:n_fresh], order[n_fresh:]
    n_add = min(act.frames_per_round, len(rest))
    n_rand = round(act.random_fraction * n_add)
    by_dev = rest[np.argsort(-dev[rest], kind="stable")]
    top = by_dev[: n_add - n_rand]
    rand = rng.choice(by_dev[n_add - n_rand :], n_rand, replace=False)
    return sorted(fresh.tolist()), top.tolist(), sorted(rand.tolist())


def _labelled(path: Path, frames: list[Atoms], teacher) -> list[Atoms]:
    """``frames`` with the teacher's energy, forces and stress (labelled once)."""
    if path.exists():
        return read(path, ":") if path.stat().st_size else []
    calc = teacher()
    out = []
    for atoms in frames:
        copy = atoms.copy()
        copy.calc = calc
        copy.calc = labelled_by(copy)
        out.append(copy)
    write_frames_atomic(path, out)
    return out


def _rmse(student, model, fresh, added) -> tuple[float, float | None]:
    """The student's force RMSE vs the teacher on the fresh and added frames."""
    calc = student.calculator(model)
    return (
        evaluate(fresh, calc).force_rmse_eV_A,
        evaluate(added, calc).force_rmse_eV_A if added else None,
    )


def _repeat(new: list[Atoms], n_train: int) -> list[Atoms]:
    """The added frames, repeated to about :data:`NEW_SHARE` of the training
    frames, so that a short retraining sees them."""
    if not new:
        return []
    times = max(1, round(NEW_SHARE / (1 - NEW_SHARE) * n_train / len(new)))
    return new * times


def _retrain(make, cfg, dirs, train, test, paths, r, seed, report) -> list[Path]:
    """Every member trained on, from its previous checkpoint; their model files."""
    act, models = cfg.active, []
    lr = min(act.retrain_start_lr, cfg.student.start_lr)
    for k, previous in enumerate(dirs, start=1):
        update = {"steps": act.retrain_steps, "start_lr": lr,
                  "stop_lr": min(cfg.student.stop_lr, lr)}  # fmt: skip
        spec = previous / "input.json"  # the network it was built with (DeePMD)
        if spec.exists():
            update["sel"] = json.loads(spec.read_text())["model"]["descriptor"]["sel"]
        member = make(cfg.student.model_copy(update=update))
        model = member.train(
            train,
            test,
            paths.member(r, k),
            seed=seed + 1000 * r + k,
            init_from=previous.resolve(),
            data_dir=paths.round_dir(r) / member.name,
            report=report,
        )
        models.append(model)
    return models


def _ship(student: Student, models: list[Path], members: list[Path], out: Path):
    """The last models where the student and members are shipped."""
    if models == members:
        return members
    shipped = [student.ship(models[0].parent, out)]
    for k, model in enumerate(models[1:], start=2):
        shipped.append(member_file(out, k, model.suffix))
        shutil.copyfile(model, shipped[-1])
    return shipped


def _start_fresh(paths, members, cfg: DistillConfig, report: Reporter) -> None:
    """Earlier rounds are reused only from the same committee and settings."""
    digest = hashlib.sha256()
    for m in members:
        digest.update(Path(m).read_bytes())
    act = cfg.active.model_dump(mode="json")
    key = {"committee": digest.hexdigest()} | {k: act[k] for k in _STALE}
    if paths.settings.exists() and json.loads(paths.settings.read_text()) != key:
        report.info("teacher-checked learning: committee or settings changed, redoing")
        shutil.rmtree(paths.root)
    paths.root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(paths.settings, key)


def _stats(dev: np.ndarray) -> dict[str, float]:
    return {
        "mean_eV_A": float(dev.mean()),
        "median_eV_A": float(np.median(dev)),
        "p95_eV_A": float(np.percentile(dev, 95)),
        "max_eV_A": float(dev.max()),
    }


def round_line(rec: dict[str, Any]) -> str:
    """One round in words (``pfd status``, the terminal)."""
    line = f"round {rec['round']}: {rec['md_frames']} student-MD frames"
    if "deviation" in rec:
        d = rec["deviation"]
        line += (
            f", max force deviation median {d['median_eV_A']:.3f}, max "
            f"{d['max_eV_A']:.3f} eV/Å; {rec['frames_picked']} "
            f"{'added' if rec['retrained'] else 'labelled, not added'} "
            f"({rec['by_deviation']} most deviating, {rec['at_random']} random); "
            f"F RMSE vs teacher on {rec['fresh_frames']} fresh frames "
            f"{rec['fresh_force_rmse_before_eV_A']:.3f}"
        )
        if rec["retrained"]:
            line += f" -> {rec['fresh_force_rmse_after_eV_A']:.3f}"
        line += " eV/Å"
    return line + (f"; stop: {rec['stop']}" if rec.get("stop") else "")


def active_lines(active: dict[str, Any]) -> list[str]:
    """The ``active`` record of ``student/check.json`` in words, a line per round."""
    head = (
        f"teacher-checked learning: {len(active['rounds'])} round(s), "
        f"{active['frames_added']} teacher frames added, target F RMSE "
        f"{active['target_force_rmse_eV_A']:.3f} eV/Å; stop: {active['stop']}"
    )
    return [head, *(f"  {round_line(r)}" for r in active["rounds"])]
