"""Errors of any model on any labelled file (energy/atom, force, stress; per subset)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

NAME = "test"


def command(
    model: Annotated[str, typer.Argument(help="Model file or shipped name (7net-0).")],
    data: Annotated[
        Path, typer.Argument(help="Labelled frames (extxyz or any ase.io).")
    ],
    backend: Annotated[
        str | None,
        typer.Option(
            help="Backend or student name (sevennet, chgnet, mace, dpa, deepmd) or "
            "module:Class; default: the run directory's, else found from the file."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the errors as JSON.")
    ] = None,
    threads: Annotated[int, typer.Option(help="CPU threads of the model.")] = 2,
) -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    from pfd.analysis.errors import evaluate_by_subset
    from pfd.calculators import load_calculator
    from pfd.errors import PFDError

    if threads < 1:
        raise PFDError(f"--threads {threads}: give 1 or more CPU threads")
    frames = _labelled_frames(data)
    symbols = sorted({s for a in frames for s in a.get_chemical_symbols()})
    calc = load_calculator(model, threads=threads, type_map=symbols, backend=backend)
    path = Path(model) if Path(model).exists() else model
    result = evaluate_by_subset(frames, calc)
    payload = {"model": str(path), "data": str(data)} | {
        k: v.as_dict() for k, v in result.items()
    }
    if output:
        output.write_text(json.dumps(payload, indent=2))
    table = Table(title=f"{Path(model).name} on {data.name}")
    for col in (
        "subset",
        "frames",
        "E RMSE meV/atom",
        "E MAE meV/atom",
        "F RMSE eV/Å",
        "F MAE eV/Å",
        "S RMSE GPa",
    ):
        table.add_column(col, justify="right")
    for name, e in result.items():
        table.add_row(
            name,
            str(e.n_frames),
            f"{e.energy_rmse_eV_atom * 1000:.2f}",
            f"{e.energy_mae_eV_atom * 1000:.2f}",
            f"{e.force_rmse_eV_A:.4f}",
            f"{e.force_mae_eV_A:.4f}",
            "-" if e.stress_rmse_GPa is None else f"{e.stress_rmse_GPa:.3f}",
        )
    Console().print(table)
    if output:
        typer.echo(f"errors written to {output}")


def _labelled_frames(data: Path) -> list:
    """The frames of ``data`` with an energy and forces to compare with."""
    from ase.io import read

    from pfd.errors import PFDError

    if not data.is_file():
        raise PFDError(f"data file '{data}' not found")
    try:
        frames = read(data, ":")
    except Exception as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise PFDError(
            f"cannot read labelled frames from '{data}' ({reason}); give an extxyz "
            "(or any ase.io format) with energies and forces"
        ) from err
    results = [a.calc.results if a.calc is not None else {} for a in frames]
    usable = [
        a
        for a, r in zip(frames, results, strict=True)
        if {"energy", "forces"} <= set(r)
    ]
    if usable:
        return usable
    if any("energy" in r for r in results):
        raise PFDError(
            f"'{data}' holds energies but no forces; pfd test compares forces too: "
            "give frames labelled with forces (extxyz with a forces column)"
        )
    raise PFDError(
        f"'{data}' holds no frames with energies and forces; give labelled frames "
        "(e.g. a run's dft.extxyz)"
    )
