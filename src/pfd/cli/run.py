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
    from pfd.cli.main import verbose
    from pfd.config import load_config
    from pfd.logs import run_log
    from pfd.progress import Reporter
    from pfd.workflow import run

    cfg = load_config(config)
    if run_dir is not None:
        cfg = cfg.model_copy(update={"run_dir": run_dir.resolve()})
    if dry_run:
        from pfd.plan import dry_run as plan_run
        from pfd.plan import format_plan

        typer.echo("\n".join(format_plan(plan_run(cfg), cfg)))
        return
    with run_log(cfg.run_dir, verbose(), until_exit=True):
        run(cfg, Reporter(quiet=quiet))
