"""Run (or resume) the whole workflow described by one YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

NAME = "run"


def command(
    config: Annotated[Path, typer.Argument(help="The run's YAML file.")],
    run_dir: Annotated[
        Path | None,
        typer.Option("--run-dir", "-d", help="Override run_dir from the YAML."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check everything, print the DFT jobs and their estimated time "
            "from one timed frame; start nothing else.",
        ),
    ] = False,
) -> None:
    from pfd.config import load_config
    from pfd.loop import run_finetune
    from pfd.progress import Reporter
    from pfd.state import timed_phase

    cfg = load_config(config)
    if run_dir is not None:
        cfg = cfg.model_copy(update={"run_dir": run_dir.resolve()})
    if dry_run:
        from pfd.plan import dry_run as plan_run
        from pfd.plan import format_plan

        typer.echo("\n".join(format_plan(plan_run(cfg), cfg)))
        return
    report = Reporter(quiet=quiet)
    if cfg.distill.enabled:  # before hours of fine-tuning, not after
        from pfd.distillation import require_student

        require_student()
    with timed_phase(cfg.run_dir, "finetune"):
        run_finetune(cfg, report)
    if cfg.distill.enabled:
        from pfd.distillation import run_distill

        with timed_phase(cfg.run_dir, "distill"):
            run_distill(cfg, report)
    if cfg.report.enabled:
        from pfd.report import write_report

        with timed_phase(cfg.run_dir, "report"):
            write_report(cfg, report)
