"""Distil a finished run's fine-tuned model into a fast DeePMD student."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

NAME = "distill"


def command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with a teacher.")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Take the distill settings from this YAML file: a run's YAML, or "
            "one holding only a 'distill:' section that updates the run's settings.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    from pfd.cli.main import verbose
    from pfd.config import load_distill_settings
    from pfd.distillation import run_distill
    from pfd.logs import run_log
    from pfd.progress import Reporter
    from pfd.state import recorded_config, timed_phase

    cfg = recorded_config(run_dir)
    if config is not None:
        distill = load_distill_settings(config, cfg.distill)
        cfg = cfg.model_copy(update={"distill": distill})
    log = run_log(cfg.run_dir, verbose(), until_exit=True)
    with log, timed_phase(cfg.run_dir, "distill"):
        run_distill(cfg, Reporter(quiet=quiet))
