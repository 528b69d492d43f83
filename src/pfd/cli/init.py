"""Write a commented run YAML that fits a structure (then: pfd run --dry-run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

NAME = "init"


def command(
    structure: Annotated[
        Path, typer.Argument(help="Any structure file ASE reads (cif, POSCAR, xyz...).")
    ],
    dft: Annotated[
        str, typer.Option("--dft", help="gpaw, qe, cp2k, vasp or abacus.")
    ] = "gpaw",
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Foundation model: sevennet, chgnet, mace, dpa, module:Class.",
        ),
    ] = "sevennet",
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", help="Model file; default: the backend's own."),
    ] = None,
    melting_k: Annotated[
        float | None,
        typer.Option(
            "--melting-K", min=1.0, help="The material's melting point, if known (K)."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--output", "-o", help="The YAML to write.")
    ] = Path("pfd.yaml"),
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite an existing YAML.")
    ] = False,
) -> None:
    from pfd.errors import PFDError
    from pfd.init import init_config

    if out.exists() and not force:
        raise PFDError(
            f"'{out}' exists; give another --output or --force to replace it"
        )
    path = init_config(
        structure, out, dft=dft, model=model, checkpoint=checkpoint, melting_K=melting_k
    )
    typer.echo(f"wrote {path}; next: pfd run --dry-run {path}")
