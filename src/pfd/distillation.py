"""Phase 2, distillation: the fine-tuned teacher labels many frames, a small
student (:mod:`pfd.students`, DeePMD-kit ``se_e2_a`` by default) is trained on
them from scratch.

:func:`distill` is the step on its own (a teacher, structures, settings, a work
directory); :func:`run_distill` runs it on a finished run directory. Each part
writes its result before the next starts and looks for it first, so a killed
distillation resumes where it stopped:

``distill/settings.json``     what the teacher data was generated with
``distill/md/NNN.extxyz``     teacher MD frames (+ rattled copies), labelled
``distill/md/NNN.json``       that trajectory's record (written last)
``distill/train.extxyz``      the student's training frames (teacher labels)
``distill/test.extxyz``       held-out teacher frames
``distill/pool.extxyz``       frames not (yet) used, for later rounds
``distill/deepmd/``           the same in the student's format
``distill/round_N/``          the student's training directory of round N
``distill/committee_K/``      member K of the committee (2..N, other seeds)
``student/``                  the model, its input and learning curve,
                              member_K.pb, check.json, lammps/ (in.lammps)
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.io import read

from pfd.analysis.errors import Errors, errors_of, evaluate, predict
from pfd.config import DistillConfig, ExploreConfig, RunConfig
from pfd.db import write_frames_atomic, write_json_atomic
from pfd.errors import PFDError
from pfd.layout import RunLayout
from pfd.progress import Reporter
from pfd.students import Student, make_student
from pfd.students.active import check_active, teacher_checked
from pfd.students.committee import build_committee, member_dir
from pfd.students.lammps import write_lammps_input
from pfd.teacher import check_settings, generate, split_frames, write_export

#: the student distillation trains unless told otherwise
STUDENT = "deepmd"
#: a student whose held-out force RMSE is at least this share of the teacher's
#: force RMS has learned (almost) nothing: it is flagged, not silently shipped
UNLEARNED = 0.7


@dataclass
class DistillResult:
    """Where the student is and how well it learned the teacher."""

    model: Path
    check: dict[str, Any] = field(default_factory=dict)


def require_student(name: str = STUDENT) -> None:
    """Raise one line when the student's packages are not installed."""
    make_student(name).check_available()


def distill(
    teacher: str | Path | Callable[[], Calculator],
    structures: list[Atoms] | Atoms | str | Path,
    settings: DistillConfig | None = None,
    workdir: str | Path = "distill",
    *,
    explore: ExploreConfig | None = None,
    reference: list[Atoms] | None = None,
    variants: list[Atoms] | None = None,
    student_dir: str | Path | None = None,
    student: str = STUDENT,
    seed: int = 0,
    threads: int = 2,
    executor=None,
    report: Reporter | None = None,
) -> DistillResult:
    """Distil ``teacher`` into a student: teacher MD from ``structures``, training.

    ``teacher``: a model file (any :func:`pfd.load_calculator` reads) or a
    picklable callable returning an ASE calculator. ``explore``: the MD
    settings the teacher data widens (temperatures, timestep); ``reference``:
    labelled frames (DFT) to compare student and teacher on; ``variants``:
    structure variants (:func:`pfd.variants.generate`) the teacher's MD also
    runs, each at its own conditions. The student and
    its LAMMPS input go to ``student_dir`` (default ``WORKDIR/student``).
    Resumable: a rerun with the same ``workdir`` reuses every finished part.
    """
    settings, explore = settings or DistillConfig(), explore or ExploreConfig()
    report = report or Reporter(quiet=True)
    check_active(teacher, settings)
    work = Path(workdir)
    out = Path(student_dir) if student_dir is not None else work / "student"
    teacher = _as_teacher(teacher, threads)
    structures = _as_structures(structures)
    type_map = _type_map(structures, settings)
    make = functools.partial(make_student, student, type_map=type_map, threads=threads)
    learner = make(settings.student)
    learner.check_available()
    work.mkdir(parents=True, exist_ok=True)
    check_settings(work, settings)

    t0 = time.perf_counter()
    frames = generate(
        teacher, structures, settings, explore, seed, work, report, executor, variants
    )
    seconds = {"generate": time.perf_counter() - t0}
    train, test, pool = _split(frames, settings, seed, work, report)
    rounds = train_rounds(learner, train, test, pool, settings, work, seed, report)
    seconds |= rounds.seconds
    final = learner.ship(rounds.workdir, out)
    members, committee = build_committee(
        make, final, rounds.train, test, settings, work, out, seed, report
    )
    active: dict[str, Any] = {}
    if settings.active.rounds:  # the committee's members learn where they disagree
        t0, n = time.perf_counter(), settings.committee
        starts = [rounds.workdir, *(member_dir(work, k) for k in range(2, n + 1))]
        members, active = teacher_checked(
            teacher, make, structures, members, starts, (rounds.train, test),
            settings, explore, work, out, held_out_rmse=rounds.errors.force_rmse_eV_A,
            seed=seed, report=report, executor=executor,
        )  # fmt: skip
        seconds["active"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    check = _record(rounds, len(test), settings, final) | committee
    if active:  # the shipped student and committee are the retrained ones
        check |= active | {"committee": check["committee"] | active["committee"]}
    if reference:
        check["vs_dft"] = _versus_reference(learner, final, teacher, reference, report)
    check["seconds"] = seconds | {"check": time.perf_counter() - t0}
    lammps = _lammps_input(
        structures[0], learner, members, type_map, out, settings, explore, seed
    )
    report.info(f"student: {final} (ASE: pfd.load_calculator; LAMMPS: {lammps})")
    return DistillResult(final, check)


def _as_teacher(teacher, threads: int) -> Callable[[], Calculator]:
    """A picklable teacher factory: ``teacher`` itself, or its model file's."""
    from pfd.calculators import ModelCalculator

    return (
        teacher if callable(teacher) else ModelCalculator(str(teacher), threads=threads)
    )


def _lammps_input(atoms, learner, models, type_map, out, settings, explore, seed):
    """The student's LAMMPS NVT input at the exploration's first temperature."""
    return write_lammps_input(
        atoms,
        learner,
        models,
        type_map,
        out / "lammps",
        natoms=settings.lammps_atoms,
        steps=settings.lammps_steps,
        temperature_K=(explore.temperatures_K or [300.0])[0],
        timestep_fs=explore.timestep_fs,
        seed=seed,
    )


def _record(
    rounds: Rounds, n_test: int, settings: DistillConfig, final: Path
) -> dict[str, Any]:
    return {
        "student": str(final),
        "rounds": rounds.round,
        "n_train": len(rounds.train),
        "n_test": n_test,
        "steps": settings.student.steps,
        "vs_teacher": rounds.errors.as_dict(),
        "vs_teacher_by_variant": {k: e.as_dict() for k, e in rounds.by_variant.items()},
        "teacher_force_rms_eV_A": rounds.force_scale,
        "learned": rounds.learned,
    }


def _split(
    frames: list[Atoms], cfg: DistillConfig, seed: int, work: Path, report: Reporter
) -> tuple[list[Atoms], list[Atoms], list[Atoms]]:
    """:func:`split_frames`, said, refused when too few, exported."""
    train, test, pool = split_frames(frames, cfg, seed, work)
    report.info(
        f"distill: {len(frames)} teacher frames: {len(train)} to train the student, "
        f"{len(test)} held out, {len(pool)} in reserve"
    )
    if len(train) < 1 or len(test) < 1:
        raise PFDError(
            f"teacher MD gave only {len(frames)} usable frames, too few for a student; "
            "raise distill.steps or lower distill.sample_every"
        )
    write_export(work, train, test)
    return train, test, pool


def run_distill(config: RunConfig, report: Reporter | None = None) -> DistillResult:
    """Distil the run's fine-tuned model into a student (resumable)."""
    from pfd.models import CalculatorFactory
    from pfd.state import RunState
    from pfd.structures import read_inputs

    report = report or Reporter()
    layout = RunLayout(config.run_dir)
    teacher = layout.final_model
    if not RunState.load(layout.root).finished or not teacher.exists():
        raise PFDError(
            f"run directory '{layout.root}' has no fine-tuned teacher "
            f"({teacher.name}); run 'pfd run CONFIG' to finish fine-tuning first"
        )
    require_student()
    model = config.model
    factory = CalculatorFactory(
        model.backend,
        str(teacher),
        model.device,
        model.threads,
        model.head,
        model.python,
    )
    dft = layout.dft
    reference = read(dft, ":") if dft.exists() and dft.stat().st_size else []
    executor = None  # the engine's, when not the local default
    if config.execution.engine != "local":
        from pfd.execute import make_executor

        executor = make_executor(config.execution, layout.root, 1, 1)
    inputs = read_inputs(config.structures)
    variants = teacher_variants(config, inputs, layout, factory, report)
    try:
        result = distill(
            factory,
            [atoms for atoms, _ in inputs],
            config.distill,
            layout.distill,
            explore=config.explore,
            reference=reference,
            variants=variants,
            student_dir=layout.student,
            seed=config.seed,
            threads=model.threads,
            executor=executor,
            report=report,
        )
    finally:
        if executor is not None:
            executor.close()
    write_json_atomic(layout.student_check, _relocatable(result.check, layout))
    return result


def teacher_variants(
    config: RunConfig,
    inputs: list,
    layout: RunLayout,
    teacher: Callable[[], Calculator],
    report: Reporter,
) -> list[Atoms]:
    """The structure variants the teacher's MD runs: ``distill.variants`` of
    every structure, made once (random phases relaxed by the teacher) into
    ``distill/variants.extxyz``; by default the loop's own (``variants.extxyz``)."""
    from pfd.variants import check_requests, describe, run_variants, with_variants

    asked = with_variants(inputs, config.distill.variants)
    check_requests(asked)
    own = config.distill.variants is None
    path = layout.variants if own else layout.distill / "variants.extxyz"
    path.parent.mkdir(parents=True, exist_ok=True)
    variants = run_variants(asked, path, teacher, config.seed)
    if variants:
        where = "the loop's" if own else "distill.variants"
        report.info(f"distill: {len(variants)} structure variants ({where}) as well")
        for line in describe(variants):
            report.info(f"  variants {line}")
    return variants


def _relocatable(check: dict[str, Any], layout: RunLayout) -> dict[str, Any]:
    """``check`` with its paths relative to the run directory (it may move)."""
    out = check | {"student": layout.relative(check["student"])}
    if "committee" in out:
        members = [layout.relative(m) for m in out["committee"]["members"]]
        out["committee"] = out["committee"] | {"members": members}
    if "vs_dft" in out:
        out["vs_dft"] = out["vs_dft"] | {"data": layout.relative(layout.dft)}
    return out


def student_model(run_dir: str | Path) -> Path | None:
    """The run's distilled student as recorded in ``student/check.json``, if any."""
    layout = RunLayout(Path(run_dir))
    if not layout.student_check.is_file():
        return None
    return layout.resolve(json.loads(layout.student_check.read_text())["student"])


def _as_structures(structures: list[Atoms] | Atoms | str | Path) -> list[Atoms]:
    if isinstance(structures, Atoms):
        return [structures]
    if isinstance(structures, str | Path):
        return list(read(structures, ":"))
    if not structures:
        raise PFDError("distill needs at least one structure to run teacher MD from")
    return list(structures)


def _type_map(structures: list[Atoms], settings: DistillConfig) -> list[str]:
    symbols = sorted({s for a in structures for s in a.get_chemical_symbols()})
    type_map = list(settings.student.type_map or symbols)
    missing = [s for s in symbols if s not in type_map]
    if missing:
        raise PFDError(
            f"distill.student.type_map {type_map} lacks {', '.join(missing)} of the "
            "structures; add them to type_map (or leave it out)"
        )
    return type_map


# --- train ---------------------------------------------------------------------


def worst_predicted(
    pool: list[Atoms], calc: Calculator, n: int
) -> tuple[list[Atoms], list[Atoms]]:
    """The ``n`` reserve frames whose forces the student (``calc``) gets most wrong."""
    preds = predict(pool, calc)
    err = [float(np.abs(p.forces[1] - p.forces[0]).max()) for p in preds]
    order = np.argsort(err)[::-1]
    take = set(order[:n].tolist())
    added = [pool[i] for i in sorted(take)]
    rest = [a for i, a in enumerate(pool) if i not in take]
    return added, rest


@dataclass
class Rounds:
    """Where the rounds of student training ended."""

    workdir: Path
    round: int
    train: list[Atoms]
    errors: Errors
    seconds: dict[str, float]
    force_scale: float  # RMS of the teacher's force components on the test frames
    by_variant: dict[str, Errors] = field(default_factory=dict)

    @property
    def learned(self) -> bool:
        """False when the student's force error is most of the forces themselves:
        a student that predicts (nearly) zero forces everywhere."""
        return self.errors.force_rmse_eV_A < UNLEARNED * self.force_scale


def by_variant(frames: list[Atoms], predictions: list) -> dict[str, Errors]:
    """Errors per structure variant of the frames (``'bulk'`` for a structure
    itself); empty when the frames come from the structures alone."""
    groups: dict[str, list] = {}
    for atoms, pred in zip(frames, predictions, strict=True):
        groups.setdefault(str(atoms.info.get("variant", "bulk")), []).append(pred)
    if len(groups) < 2:
        return {}
    return {k: errors_of(v) for k, v in sorted(groups.items())}


def train_rounds(
    student: Student,
    train: list[Atoms],
    test: list[Atoms],
    pool: list[Atoms],
    cfg: DistillConfig,
    work: Path,
    seed: int,
    report: Reporter,
) -> Rounds:
    """Train; while the held-out force error is above target, add the reserve
    frames the student predicts worst and train again (``cfg.max_rounds``)."""
    seconds: dict[str, float] = {}
    previous = None
    for round_ in range(1, cfg.max_rounds + 1):
        round_dir = work / f"round_{round_}"
        t0 = time.perf_counter()
        model = student.train(
            train,
            test,
            round_dir,
            seed=seed + round_,
            init_from=previous,
            data_dir=work / student.name,
            report=report,
        )
        seconds[f"train_round_{round_}"] = time.perf_counter() - t0
        calc = student.calculator(model)
        predictions = predict(test, calc)
        errs = errors_of(predictions)
        report.info(
            f"distill round {round_}: student vs teacher on {errs.n_frames} held-out "
            f"frames: force RMSE {errs.force_rmse_eV_A:.4f} eV/Å, energy RMSE "
            f"{errs.energy_rmse_eV_atom * 1000:.2f} meV/atom"
        )
        target = cfg.target_force_rmse_eV_A
        if target is None or errs.force_rmse_eV_A <= target or round_ == cfg.max_rounds:
            break
        if not pool:
            report.info("distill: no frames left in reserve to add; stopping rounds")
            break
        added, pool = worst_predicted(pool, calc, cfg.add_per_round)
        train = train + added
        write_frames_atomic(work / f"train_round_{round_ + 1}.extxyz", train)
        write_frames_atomic(work / f"pool_round_{round_ + 1}.extxyz", pool)
        report.info(
            f"distill: force RMSE above {target} eV/Å: adding the {len(added)} "
            "frames the student predicts worst and retraining"
        )
        previous = round_dir
    forces = np.concatenate([a.get_forces().ravel() for a in test])
    scale = float(np.sqrt(np.mean(forces**2)))
    rounds = Rounds(round_dir, round_, train, errs, seconds, scale)
    rounds.by_variant = by_variant(test, predictions)
    for variant, e in rounds.by_variant.items():
        report.info(
            f"  {variant}: {e.n_frames} held-out frames, force RMSE "
            f"{e.force_rmse_eV_A:.4f} eV/Å, energy RMSE "
            f"{e.energy_rmse_eV_atom * 1000:.2f} meV/atom"
        )
    if not rounds.learned:
        report.info(
            f"WARNING: the student did not learn the teacher: its force RMSE "
            f"{errs.force_rmse_eV_A:.3f} eV/Å is {errs.force_rmse_eV_A / scale:.0%} of "
            f"the teacher's forces themselves ({scale:.3f} eV/Å RMS); lower "
            f"distill.student.start_lr (now {cfg.student.start_lr:g}, e.g. to 1e-3) "
            "and retrain: 'pfd distill RUN_DIR -c CONFIG'"
        )
    return rounds


def _versus_reference(
    student: Student,
    model: Path,
    teacher: Callable[[], Calculator],
    frames: list[Atoms],
    report: Reporter,
) -> dict[str, Any]:
    """Student and teacher errors on reference (DFT) frames, and their ratio."""
    ours = evaluate(frames, student.calculator(model))
    theirs = evaluate(frames, teacher())
    ratio = ours.force_rmse_eV_A / theirs.force_rmse_eV_A
    report.info(
        f"distill: on the run's {len(frames)} DFT frames: student force RMSE "
        f"{ours.force_rmse_eV_A:.4f} eV/Å, teacher {theirs.force_rmse_eV_A:.4f} "
        f"({ratio:.2f}x)"
    )
    return {
        "student": ours.as_dict(),
        "teacher": theirs.as_dict(),
        "force_rmse_ratio": ratio,
    }
