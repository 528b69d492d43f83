"""Errors of any model on any labelled file (energy/atom, force, stress; per subset)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

NAME = "test"


def command(
    model: Annotated[
        str,
        typer.Argument(
            help="Model file or shipped name (7net-0); a run directory: its student."
        ),
    ],
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
    committee: Annotated[
        list[Path] | None,
        typer.Option(
            help="Another member of a committee with MODEL (repeat it: --committee "
            "g2.pb --committee g3.pb): their max force deviation per frame is shown. "
            "Default: the run's committee when MODEL is its student.",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the errors as JSON.")
    ] = None,
    threads: Annotated[int, typer.Option(help="CPU threads of the model.")] = 2,
) -> None:
    import json

    from pfd.analysis.errors import errors_by_subset_of, predict
    from pfd.calculators import load_calculator
    from pfd.errors import PFDError

    if threads < 1:
        raise PFDError(f"--threads {threads}: give 1 or more CPU threads")
    frames = _labelled_frames(data)
    model, group = _committee(model, committee or [])
    symbols = sorted({s for a in frames for s in a.get_chemical_symbols()})
    calc = load_calculator(model, threads=threads, type_map=symbols, backend=backend)
    path = Path(model) if Path(model).exists() else model
    predictions = predict(frames, calc)
    result = errors_by_subset_of(frames, predictions)
    payload = {"model": str(path), "data": str(data)} | {
        k: v.as_dict() for k, v in result.items()
    }
    devs = None
    if group is not None:
        devs, payload["committee"] = _deviation(group, frames, predictions, threads)
    if output:
        output.write_text(json.dumps(payload, indent=2))
    _print_table(f"{Path(model).name} on {data.name}", result, devs)
    if group is not None:
        _say_committee(group, payload["committee"]["ranking"], data.name)
    if output:
        typer.echo(f"errors written to {output}")


def _committee(model: str, extra: list[Path]):
    """The model file to test and its committee (None: no committee)."""
    from pfd.distillation import student_model
    from pfd.errors import PFDError
    from pfd.students.committee import Committee, committee_of

    if Path(model).is_dir():
        student = student_model(model)
        if student is None:
            raise PFDError(
                f"'{model}' is a directory without a distilled student; give a "
                "model file, or a run directory after 'pfd distill'"
            )
        found, model = committee_of(model), str(student)
    else:
        found = committee_of(model)
    if extra:
        files = [
            Path(model),
            *(p for p in extra if p.resolve() != Path(model).resolve()),
        ]
        found = Committee(files) if len(files) > 1 else None
    return model, found


def _deviation(committee, frames: list, predictions: list, threads: int):
    """Per-subset summaries of the committee's deviation, and its JSON record
    (with how well it ranks the model's errors on these frames)."""
    from pfd.analysis.errors import max_force_errors
    from pfd.students.committee import by_subset, deviation, ranking

    dev = deviation(committee.members, frames, threads=threads)
    summary = by_subset(frames, dev.max_force_eV_A, committee.threshold_eV_A)
    errors = max_force_errors(predictions)
    record = {
        "members": [str(m) for m in committee.members],
        "threshold_eV_A": committee.threshold_eV_A,
        "threshold_from": committee.threshold_from,
        "max_force_deviation_eV_A": dev.max_force_eV_A.tolist(),
        "energy_deviation_eV_atom": dev.energy_eV_atom.tolist(),
        "max_force_error_eV_A": errors.tolist(),
        "ranking": ranking(dev.max_force_eV_A, errors),
    }
    return summary, record | {"by_subset": {k: v.as_dict() for k, v in summary.items()}}


def _print_table(title: str, result: dict, devs: dict | None) -> None:
    """The errors per subset; with a committee, its deviation beside the force error."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("subset", "frames", "E RMSE meV/atom", "E MAE meV/atom",
                "F RMSE eV/Å", "F MAE eV/Å", "S RMSE GPa"):  # fmt: skip
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
    if devs is None:
        return
    table = Table(title="committee: max force deviation per frame (model_devi)")
    for col in ("subset", "frames", "F RMSE eV/Å", "deviation mean eV/Å",
                "deviation max eV/Å", "flagged"):  # fmt: skip
        table.add_column(col, justify="right")
    for name, d in devs.items():
        flagged = "-" if d.n_flagged is None else f"{d.n_flagged}/{d.n_frames}"
        table.add_row(
            name,
            str(d.n_frames),
            f"{result[name].force_rmse_eV_A:.4f}",
            f"{d.mean_eV_A:.4f}",
            f"{d.max_eV_A:.4f}",
            flagged,
        )
    Console().print(table)


def _say_committee(committee, rank: dict, data: str) -> None:
    from pfd.students.committee import ranking_line

    names = ", ".join(Path(m).name for m in committee.members)
    typer.echo(
        f"committee of {len(committee.members)} ({names}): max force deviation per "
        "frame, as DeePMD's model_devi (max over atoms of the force spread)"
    )
    if committee.threshold_eV_A is not None:
        typer.echo(
            f"flagged: frames above {committee.threshold_eV_A:.3f} eV/Å "
            f"({committee.threshold_from})"
        )
    typer.echo(ranking_line(rank, f"frames of {data}", of="the model's"))
    if committee.ranking:  # as distillation measured it
        typer.echo(ranking_line(committee.ranking))


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
