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
            "--config", "-c", help="Take the distill settings from this YAML file."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    from pfd.config import RunConfig, load_config
    from pfd.distill import run_distill
    from pfd.errors import PFDError
    from pfd.progress import Reporter
    from pfd.state import CONFIG

    recorded = run_dir / CONFIG
    if not recorded.is_file():
        raise PFDError(
            f"'{run_dir}' is not a pfd run directory (no {CONFIG}); "
            "give the run_dir of a 'pfd run'"
        )
    cfg = RunConfig.model_validate_json(recorded.read_text())
    if config is not None:
        cfg = cfg.model_copy(update={"distill": load_config(config).distill})
    cfg = cfg.model_copy(update={"run_dir": run_dir.resolve()})
    run_distill(cfg, Reporter(quiet=quiet))
