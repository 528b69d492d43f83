"""Write (or update) a run's report: errors, learning curve, EOS, phonons, ..."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

NAME = "report"


def command(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Take the report settings from this YAML."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    from pfd.cli.main import verbose
    from pfd.config import load_config
    from pfd.logs import run_log
    from pfd.progress import Reporter
    from pfd.report import write_report
    from pfd.state import recorded_config, timed_phase

    cfg = recorded_config(run_dir)
    if config is not None:
        cfg = cfg.model_copy(update={"report": load_config(config).report})
    log = run_log(cfg.run_dir, verbose(), until_exit=True)
    with log, timed_phase(cfg.run_dir, "report"):
        path = write_report(cfg, Reporter(quiet=quiet))
    typer.echo(f"report written to {path}")
