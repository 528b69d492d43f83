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
    from pfd.config import RunConfig, load_config
    from pfd.errors import PFDError
    from pfd.progress import Reporter
    from pfd.report import write_report
    from pfd.state import CONFIG

    recorded = run_dir / CONFIG
    if not recorded.is_file():
        raise PFDError(
            f"'{run_dir}' is not a pfd run directory (no {CONFIG}); "
            "give the run_dir of a 'pfd run'"
        )
    cfg = RunConfig.model_validate_json(recorded.read_text())
    if config is not None:
        cfg = cfg.model_copy(update={"report": load_config(config).report})
    cfg = cfg.model_copy(update={"run_dir": run_dir.resolve()})
    path = write_report(cfg, Reporter(quiet=quiet))
    typer.echo(f"report written to {path}")
