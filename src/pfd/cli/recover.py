"""Rebuild a run's database (pfd.db) from its DFT job directories (label/<uid>/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

NAME = "recover"


def command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
) -> None:
    from pfd.db import open_db
    from pfd.errors import PFDError
    from pfd.layout import RunLayout
    from pfd.recover import count_frames, export_dft, rebuild_db
    from pfd.state import recorded_config

    layout = RunLayout(run_dir)
    if not layout.labels.is_dir() and not layout.db.exists():
        raise PFDError(
            f"'{run_dir}' is not a pfd run directory (no label/ and no pfd.db); "
            "check the path"
        )
    try:
        max_attempts = recorded_config(run_dir).labeler.max_attempts
    except PFDError:  # no or a damaged config.json: the default
        max_attempts = 2
    found = rebuild_db(layout, max_attempts)
    db = open_db(layout.db)
    line = (
        f"rebuilt {layout.db}: {found.labelled} labelled, {found.failed} failed, "
        f"{found.pending} pending frames ({found.from_jobs} from label/)"
    )
    if found.backup:
        line += f"; the old file is {found.backup.name}"
    if found.labelled >= count_frames(layout.dft):
        export_dft(layout, db)
    else:
        line += (
            f"; {layout.dft} holds more frames than were recovered and is left as it is"
        )
    typer.echo(line)
