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
        str,
        typer.Option(help="Backend; 'deepmd' for a frozen student (.pb implies it)."),
    ] = "sevennet",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the errors as JSON.")
    ] = None,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 2,
) -> None:
    import json

    from ase.io import read
    from rich.console import Console
    from rich.table import Table

    from pfd.errors import PFDError
    from pfd.evaluate import evaluate_by_subset
    from pfd.models import backend_by_name

    if not data.is_file():
        raise PFDError(f"data file '{data}' not found")
    try:
        frames = read(data, ":")
    except Exception as err:
        raise PFDError(f"cannot read labelled frames from '{data}': {err}") from err
    frames = [a for a in frames if a.calc is not None and "energy" in a.calc.results]
    if not frames:
        raise PFDError(f"'{data}' holds no frames with energies and forces")
    symbols = {s for a in frames for s in a.get_chemical_symbols()}
    if backend == "deepmd" or model.endswith(".pb"):
        from pfd.distill import student_calculator

        path = Path(model)
        calc = student_calculator(path, sorted(symbols))
    else:
        ff = backend_by_name(backend, threads=threads)
        path = ff.resolve(model)
        ff.check_elements(path, symbols)
        calc = ff.calculator(path)
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
