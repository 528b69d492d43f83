"""The whole workflow, and fine-tuning on frames, as plain functions for a notebook.

``run(config)`` does what ``pfd run`` does: fine-tuning loop, distillation,
report, each resumable from the run directory. ``finetune(frames, ...)`` is the
loop's training step alone: labelled frames in, a model file out, no run
directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from pfd.config import FineTuneConfig, ModelConfig, RunConfig, load_config
from pfd.layout import RunLayout
from pfd.progress import Reporter


@dataclass
class RunResult:
    """Where a finished run left its products."""

    run_dir: Path
    converged: bool
    n_labels: int
    teacher: Path
    student: Path | None
    report: Path | None


def run(config: RunConfig | str | Path, report: Reporter | None = None) -> RunResult:
    """Run (or resume) fine-tuning, distillation and the report of one config."""
    from pfd.loop import run_finetune
    from pfd.state import timed_phase

    cfg = config if isinstance(config, RunConfig) else load_config(config)
    report = report or Reporter()
    if cfg.distill.enabled:  # before hours of fine-tuning, not after
        from pfd.distillation import require_student

        require_student()
    with timed_phase(cfg.run_dir, "finetune"):
        state = run_finetune(cfg, report)
    layout = RunLayout(Path(cfg.run_dir))
    student = report_page = None
    if cfg.distill.enabled:
        from pfd.distillation import run_distill

        with timed_phase(cfg.run_dir, "distill"):
            student = run_distill(cfg, report).model
    if cfg.report.enabled:
        from pfd.report import write_report

        with timed_phase(cfg.run_dir, "report"):
            report_page = write_report(cfg, report)
    from pfd.db import LABELLED, RunDB

    return RunResult(
        run_dir=layout.root,
        converged=state.converged,
        n_labels=RunDB(layout.db).count(status=LABELLED),
        teacher=layout.final_model,
        student=student,
        report=report_page,
    )


def finetune(
    frames: list[Atoms],
    workdir: str | Path,
    model: ModelConfig | None = None,
    settings: FineTuneConfig | None = None,
    seed: int = 0,
    structures: list[Atoms] | None = None,
) -> Path:
    """Fine-tune ``model`` (default SevenNet-0) on DFT-labelled ``frames``.

    As one iteration of the loop does: per-element reference energies refitted
    to the frames' energy zero first (``settings.refit_e0``), a tenth of the
    frames (at least 2, once there are 10) held out to pick the best epoch.
    With ``structures`` (crystals, e.g. the frames' unperturbed cell), their
    vacancies, slabs and melt labelled by the untouched model are replayed
    (``settings.replay``; ``workdir/replay.extxyz``, reused by a second call).
    Returns the path of the fine-tuned model file, in ``workdir``.
    """
    from pfd.models import make_backend
    from pfd.training import training_job

    model = model or ModelConfig()
    settings = settings or FineTuneConfig()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    backend = make_backend(model)
    start = backend.resolve(model.checkpoint)
    symbols = {s for atoms in frames for s in atoms.get_chemical_symbols()}
    backend.check_elements(start, symbols)
    replay = None
    if structures:
        from pfd.config import ExploreConfig
        from pfd.replay import replay_set

        tagged = [a.copy() for a in structures]
        for k, atoms in enumerate(tagged):
            atoms.info = {"structure": k, "name": atoms.get_chemical_formula()}
        replay = replay_set(
            workdir / "replay.extxyz", tagged, backend, start, settings.replay,
            ExploreConfig(), seed,
        )  # fmt: skip
    job = training_job(
        backend, start, frames, workdir / "train", settings, seed, replay=replay
    )
    return backend.fine_tune(job)
