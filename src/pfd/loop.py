"""Phase 1, the fine-tuning loop: label, fine-tune, explore, select, label, test.

Each step writes its result to the run directory before the next starts, and
each step first looks for its result there, so a run killed anywhere resumes
where it stopped and never repeats a DFT calculation:

``pfd.db``                        every frame and its label (the source of truth)
``iter_NNN/finetune/``            SevenNet's training directory
``iter_NNN/model.pth``            the model of iteration N (trained on frames < N)
``iter_NNN/candidates.extxyz``    explored frames
``iter_NNN/selected.extxyz``      frames chosen for DFT
``label/<uid>/``                  one DFT job per frame (input, output, log)
``state.json``                    finished iterations and their errors
``dft.extxyz``                    all DFT-labelled frames, for use elsewhere
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from pfd.analysis.errors import evaluate
from pfd.config import RunConfig
from pfd.convergence import meets_targets, test_iteration
from pfd.db import FAILED, LABELLED, VARIANT_KEYS, RunDB, write_frames_atomic
from pfd.errors import PFDError
from pfd.execute import Executor, make_executor
from pfd.explore import explore
from pfd.label import Labeler, make_labeler
from pfd.label.runner import label_frames
from pfd.layout import RunLayout
from pfd.materials import check_materials
from pfd.models import (
    CalculatorFactory,
    ForceFieldBackend,
    make_backend,
)
from pfd.progress import Reporter
from pfd.recover import export_dft as export_dft_file
from pfd.replay import run_replay
from pfd.select import filter_frames, select_frames
from pfd.state import IterationRecord, RunState, open_run_dir
from pfd.structures import (
    cell_key,
    exploration_cells,
    perturb,
    read_inputs,
    structures_digest,
)
from pfd.training import check_one_reference, fine_tune_task, training_job
from pfd.variants import (
    check_requests,
    describe,
    requests_key,
    run_variants,
    with_variants,
)


@dataclass
class Context:
    """What every step of one run shares."""

    config: RunConfig
    run_dir: Path
    db: RunDB
    state: RunState
    structures: list[Atoms]
    cells: list[Atoms]  # what MD explores: the structures, then their variants
    backend: ForceFieldBackend
    foundation: Path
    labeler: Labeler
    report: Reporter
    executor: Executor | None = None


def setup(config: RunConfig, report: Reporter) -> Context:
    """Check everything that can be checked before any expensive work."""
    inputs = read_inputs(config.structures)
    structures = [atoms for atoms, _ in inputs]
    added = check_requests(inputs)  # variants that cannot be made: before any write
    if config.distill.enabled:  # the teacher's variants: refused now, not after DFT
        added |= check_requests(with_variants(inputs, config.distill.variants))
    check_materials(config.explore, inputs)  # names, per_structure, NPT of molecules
    symbols = {s for atoms in structures for s in atoms.get_chemical_symbols()}
    symbols |= added
    backend = make_backend(config.model)
    foundation = backend.resolve(config.model.checkpoint)
    backend.check_elements(foundation, symbols)
    labeler = make_labeler(config.labeler)
    labeler.check(symbols)
    digest = structures_digest(structures, requests_key(inputs))
    db = open_run_dir(config, digest, foundation, report)
    variants = run_variants(
        inputs,
        RunLayout(config.run_dir).variants,
        partial(backend.calculator, foundation),  # relaxes random phases
        config.seed,
    )
    report_variants(config, variants, report)
    return Context(
        config=config,
        run_dir=config.run_dir,
        db=db,
        state=RunState.load(config.run_dir),
        structures=structures,
        cells=exploration_cells(structures, variants),
        backend=backend,
        foundation=foundation,
        labeler=labeler,
        report=report,
    )


def report_variants(config: RunConfig, variants: list[Atoms], report: Reporter) -> None:
    """What the structure variants add to the run's DFT, before anything runs."""
    if not variants:
        return
    per = config.initial.frames_per_variant
    report.info(
        f"{len(variants)} structure variants, each explored like a structure: "
        f"{per * len(variants)} initial DFT jobs ({per} each), and a share of the "
        f"{config.select.max_per_iteration} DFT jobs of each iteration"
    )
    for line in describe(variants):
        report.info(f"  variants {line}")


def run_finetune(config: RunConfig, report: Reporter | None = None) -> RunState:
    """Run (or resume) the fine-tuning loop to convergence or the iteration limit."""
    report = report or Reporter()
    ctx = setup(config, report)
    cores = os.cpu_count() or 1
    ctx.executor = make_executor(
        config.execution,
        ctx.run_dir,
        dft_workers=config.labeler.workers or cores,
        md_workers=config.explore.workers or cores,
    )
    try:
        return _loop(ctx)
    finally:
        ctx.executor.close()


def _loop(ctx: Context) -> RunState:
    config, report = ctx.config, ctx.report
    ctx.state.finished = False
    conv = config.convergence
    report.info(f"run directory {ctx.run_dir} ({ctx.executor.name} executor)")

    add_initial_frames(ctx)
    label_iteration(ctx, 0)
    if ctx.state.foundation is None:
        test_foundation(ctx)

    converged: IterationRecord | None = None
    for it in range(1, conv.max_iterations + 1):
        done = ctx.state.get(it)
        model = RunLayout(ctx.run_dir).model(it)
        if done is not None:
            done.converged = meets_targets(done, conv)  # thresholds may have changed
            if done.converged:
                converged = done
                break
            continue
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        train_model(ctx, it, model)
        times["train"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        stops = explore_and_select(ctx, it, model)
        times["explore_select"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        label_iteration(ctx, it)
        times["label"] = time.perf_counter() - t0
        record = test_iteration(ctx, it, model, stops, times)
        if record.converged:
            converged = record
            break

    state = ctx.state
    state.converged = converged is not None
    if converged is not None:
        state.final_model = converged.model
    else:
        n_labels = ctx.db.count(status=LABELLED)
        final = RunLayout(ctx.run_dir).final_training(n_labels)
        report.info(
            f"not converged: training a final model on all {n_labels} DFT frames"
        )
        train_model(ctx, conv.max_iterations + 1, final)
        state.final_model = str(final)
    final_model = RunLayout(ctx.run_dir).final_model
    shutil.copyfile(state.final_model, final_model)
    state.finished = True
    state.save(ctx.run_dir)
    report.info(
        f"{'converged' if state.converged else 'NOT converged'}; "
        f"{ctx.db.count(status=LABELLED)} DFT labels; model: {final_model}"
    )
    return state


def add_initial_frames(ctx: Context) -> None:
    """Insert the perturbed initial frames (deterministic from the seed, idempotent):
    ``initial.frames_per_structure`` of each structure, then
    ``initial.frames_per_variant`` of each of their variants."""
    cfg, seed = ctx.config.initial, ctx.config.seed
    n_base = len(ctx.structures)
    for j, atoms in enumerate(ctx.cells):
        index, variant = cell_key(atoms)
        base = j < n_base
        for k in range(cfg.frames_per_structure if base else cfg.frames_per_variant):
            key = [seed, 0, index, k] + ([] if base else [j - n_base + 1])
            rng = np.random.default_rng(key)
            # the first frame of each cell is only displaced; a slab never strained
            fixed = atoms.info.get("fixed_cell", False)
            strain = cfg.strain if k and not fixed else 0.0
            frame = perturb(atoms, rng, cfg.displacement_A, strain)
            frame.info = {x: atoms.info[x] for x in VARIANT_KEYS if x in atoms.info}
            ctx.db.add_pending(
                frame,
                uid=f"init-s{index}-{k}" if base else f"init-s{index}-{variant}-{k}",
                iteration=0,
                stage="init",
                source=f"{atoms.info['name']} perturbed #{k}",
            )


def label_iteration(ctx: Context, iteration: int) -> None:
    """Label the pending frames of one iteration; stop if too many fail."""
    cfg = ctx.config.labeler
    pending = ctx.db.count(iteration=iteration, status="pending")
    if pending:
        workers = ctx.executor.slots("dft") if ctx.executor else cfg.workers or 1
        ctx.report.info(
            f"iteration {iteration}: labelling {pending} frames with "
            f"{ctx.labeler.code} ({workers} parallel jobs)"
        )
        with ctx.report.bar(f"DFT iteration {iteration}", pending) as update:
            stats = label_frames(
                ctx.db,
                ctx.labeler,
                iteration,
                RunLayout(ctx.run_dir).labels,
                workers=workers,
                timeout_s=cfg.timeout_s,
                max_attempts=cfg.max_attempts,
                launcher=cfg.launcher,
                on_done=lambda done, _total: update(done),
                executor=ctx.executor,
            )
        ctx.report.info(
            f"iteration {iteration}: {stats.labelled} labelled, {stats.failed} failed"
        )
        export_dft(ctx)
    total = ctx.db.count(iteration=iteration)
    failed = ctx.db.count(iteration=iteration, status=FAILED)
    if total and failed / total > cfg.max_failed_fraction:
        raise PFDError(too_many_failures(ctx, iteration, failed, total))


def too_many_failures(ctx: Context, iteration: int, failed: int, total: int) -> str:
    """Why an iteration's labels failed, and what the user can change."""
    reasons = ctx.db.failure_reasons(iteration)
    reason, n = reasons[0] if reasons else ("unknown", failed)
    why = f"{n} with '{reason[:200]}'" + (", ..." if len(reasons) > 1 else "")
    labels = RunLayout(ctx.run_dir).labels
    if ctx.db.count(status=LABELLED):  # the labeller's physics is now frozen
        fix = (
            "fix the cause (labeler.timeout_s, command, launcher, env and "
            "max_attempts may change) and run again: failed frames are retried"
        )
    else:
        fix = (
            "fix the labeler settings and run again: no frame is labelled yet, so "
            "any labeler.* may change, and failed frames are retried"
        )
    return (
        f"{failed} of {total} DFT calculations of iteration {iteration} failed "
        f"({why}; see {labels}/*/error.txt); {fix}"
    )


def export_dft(ctx: Context) -> None:
    """All labelled frames as extxyz (atomic replace; never fewer than before)."""
    export_dft_file(RunLayout(ctx.run_dir), ctx.db)


def test_foundation(ctx: Context) -> None:
    """Zero-shot errors of the foundation model on the initial DFT frames."""
    frames = ctx.db.labelled(max_iteration=0)
    if not frames:
        raise PFDError("no initial frame could be labelled; check the labeler settings")
    errs = evaluate(frames, ctx.backend.calculator(ctx.foundation))
    ctx.state.foundation = errs.as_dict()
    ctx.state.save(ctx.run_dir)
    ctx.report.info(
        f"foundation model on {errs.n_frames} initial DFT frames: "
        f"force RMSE {errs.force_rmse_eV_A:.3f} eV/Å, "
        f"energy RMSE {errs.energy_rmse_eV_atom * 1000:.1f} meV/atom"
    )


def train_model(ctx: Context, iteration: int, out: Path) -> None:
    """Fine-tune on every labelled frame of earlier iterations (skip if done)."""
    if out.exists():
        return
    cfg = ctx.config.finetune
    workdir = out.parent / "finetune"
    shutil.rmtree(workdir, ignore_errors=True)
    frames = ctx.db.labelled(max_iteration=iteration - 1)
    check_one_reference(ctx.db, iteration - 1, ctx.config.labeler.allow_mixed)
    start = ctx.foundation
    if not cfg.from_foundation and iteration > 1:
        previous = RunLayout(ctx.run_dir).model(iteration - 1)
        start = previous if previous.exists() else start
    seed = ctx.config.seed
    replay = run_replay(
        ctx.config, ctx.structures, ctx.backend, ctx.foundation, ctx.report
    )
    job = training_job(
        ctx.backend, start, frames, workdir, cfg, seed, iteration, replay
    )
    ctx.report.info(
        f"iteration {iteration}: fine-tuning on {len(job.train)} frames "
        f"({len(job.valid)} for validation"
        + (f", {len(job.replay)} replayed" if job.replay else "")
        + f"), {cfg.epochs} epochs"
    )
    with ctx.report.bar(f"train iteration {iteration}", cfg.epochs) as update:
        if ctx.executor is not None and ctx.executor.name != "local":
            task = ctx.executor.submit("train", fine_tune_task, ctx.config.model, job)
            result = task.result()
        else:
            result = ctx.backend.fine_tune(job, lambda epoch, _total: update(epoch))
    tmp = out.with_suffix(".tmp")
    shutil.copyfile(result, tmp)
    os.replace(tmp, out)


def explore_iteration(
    ctx: Context, iteration: int, model: Path, candidates_file: Path
) -> None:
    """MD with iteration ``iteration``'s model; candidates and guard stops to disk."""
    cfg = ctx.config
    workers = ctx.executor.slots("md") if ctx.executor else 1
    factory = CalculatorFactory(
        cfg.model.backend,
        str(model),
        cfg.model.device,
        threads=max(1, cfg.model.threads // workers),
        head=cfg.model.head,
        python=cfg.model.python,
    )
    ctx.report.info(
        f"iteration {iteration}: exploring with MD ({workers} trajectories "
        "side by side)"
    )

    def log(traj):  # one line per trajectory
        note = f" stopped at {traj.stopped}" if traj.stopped else ""
        ctx.report.info(f"  MD {traj.task.label}: {len(traj.frames)} frames{note}")

    seed = cfg.seed * 1000 + iteration
    trajs = explore(
        ctx.cells,
        factory,
        cfg.explore,
        seed,
        on_trajectory=log,
        workers=workers,
        executor=ctx.executor,
    )
    frames = [f for t in trajs for f in t.frames]
    stops = [f"{t.task.label}: {t.stopped}" for t in trajs if t.stopped]
    write_frames_atomic(candidates_file, frames)
    (candidates_file.parent / "md_stops.txt").write_text("\n".join(stops))


def explore_and_select(ctx: Context, iteration: int, model: Path) -> list[str]:
    """MD with the model, then choose frames for DFT; insert them as pending."""
    it_dir = model.parent
    candidates_file = it_dir / "candidates.extxyz"
    selected_file = it_dir / "selected.extxyz"
    stops: list[str] = []  # read back from md_stops.txt below
    if not selected_file.exists():
        cfg = ctx.config
        if not candidates_file.exists():
            explore_iteration(ctx, iteration, model, candidates_file)
        candidates = (
            read(candidates_file, ":") if candidates_file.stat().st_size else []
        )
        kept = filter_frames(candidates, ctx.cells, cfg.select, cfg.explore.guards)
        rng = np.random.default_rng([cfg.seed, iteration, 2])
        chosen = select_frames(kept, ctx.db.labelled(), cfg.select, rng)
        ctx.report.info(
            f"iteration {iteration}: {len(candidates)} explored, {len(kept)} passed "
            f"filters, {len(chosen)} selected ({cfg.select.method})"
        )
        write_frames_atomic(selected_file, chosen)
    stops_file = it_dir / "md_stops.txt"
    if stops_file.exists():
        stops = [s for s in stops_file.read_text().splitlines() if s]
    chosen = read(selected_file, ":") if selected_file.stat().st_size else []
    for k, atoms in enumerate(chosen):
        ctx.db.add_pending(
            atoms,
            uid=f"it{iteration}-{k}",
            iteration=iteration,
            stage="explore",
            source=str(atoms.info.get("source", "")),
        )
    return stops
