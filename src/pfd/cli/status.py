"""Show a run's progress: labels, new-frame errors per iteration, convergence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

NAME = "status"
COLUMNS = (
    "iter",
    "trained on",
    "new DFT",
    "failed",
    "F RMSE eV/Å",
    "E RMSE meV/atom",
    "S RMSE GPa",
    "conv.",
)


def command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the state as JSON.")
    ] = False,
) -> None:
    from dataclasses import asdict

    from rich.console import Console

    from pfd.convergence import material_lines, variant_lines
    from pfd.db import open_db
    from pfd.errors import PFDError
    from pfd.layout import RunLayout
    from pfd.state import RunState

    layout = RunLayout(run_dir)
    if not layout.db.exists():
        raise PFDError(
            f"'{run_dir}' is not a pfd run directory (no {layout.db.name}); "
            "check the path"
        )
    db = open_db(layout.db)
    state = RunState.load(run_dir)
    counts = {s: db.count(status=s) for s in ("labelled", "failed", "pending")}
    student = _read(layout.student_check)
    timings = _read(layout.timings) or {}
    if json_out:
        payload = {"frames": counts, **asdict(state), "student": student}
        payload["seconds"] = timings
        typer.echo(json.dumps(payload, indent=2))
        return
    console = Console()
    console.print(_table(run_dir, state, db.count(iteration=0, status="failed")))
    for r in state.iterations:
        times = ", ".join(f"{k} {v:.0f} s" for k, v in r.seconds.items())
        stops = f"; {len(r.md_stops)} MD trajectories stopped by guards" * bool(
            r.md_stops
        )
        console.print(f"iteration {r.iteration}: {times}{stops}")
        for line in variant_lines(r.variants):
            console.print(f"  {line}")
    if state.iterations:  # the last iteration's errors per material
        for line in material_lines(state.iterations[-1].materials):
            console.print(f"  {line}")
    final = (
        f"final model: {state.final_model}" if state.finished else "run not finished"
    )
    console.print(
        f"frames: {counts['labelled']} labelled, {counts['failed']} failed, "
        f"{counts['pending']} pending; {final}"
    )
    if student:
        console.print(_student_line(student))
        if rank := (student.get("committee") or {}).get("ranking"):
            from pfd.students.committee import ranking_line

            n = len(student["committee"]["members"])
            console.print(f"committee of {n}: {ranking_line(rank)}")
        if student.get("active"):
            from pfd.students.active import active_lines

            for line in active_lines(student["active"]):
                console.print(line)
    if timings:
        spent = ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items())
        console.print(f"wall time so far: {spent}")


def _read(path: Path) -> Any:
    from pfd.state import damaged

    try:
        return json.loads(path.read_text()) if path.exists() else None
    except ValueError as err:
        raise damaged(path, err, "delete it: 'pfd run' writes it again") from err


def _num(value: float | None, scale: float, digits: int) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def _table(run_dir: Path, state, failed_initial: int):
    from rich.table import Table

    table = Table(
        title=f"pfd run {run_dir}",
        caption="errors of each iteration's model on the new DFT frames it never saw; "
        "iteration 0: the foundation model, zero-shot, on the initial frames",
    )
    for col in COLUMNS:
        table.add_column(col, justify="right")
    if f := state.foundation:
        errors = (f["force_rmse_eV_A"], f["energy_rmse_eV_atom"], f["stress_rmse_GPa"])
        row = ("0", "0", str(f["n_frames"]), str(failed_initial))
        table.add_row(*row, *_errors(*errors), "-")
    for r in state.iterations:
        errors = (r.force_rmse_eV_A, r.energy_rmse_eV_atom, r.stress_rmse_GPa)
        row = (str(r.iteration), str(r.n_train), str(r.n_new), str(r.n_failed))
        table.add_row(*row, *_errors(*errors), "yes" if r.converged else "no")
    return table


def _errors(force: float | None, energy: float | None, stress: float | None):
    return _num(force, 1, 3), _num(energy, 1000, 1), _num(stress, 1, 2)


def _student_line(student: dict[str, Any]) -> str:
    t = student["vs_teacher"]
    line = (
        f"student: {student['student']}; vs teacher on {t['n_frames']} held-out "
        f"frames: F RMSE {t['force_rmse_eV_A']:.3f} eV/Å, E RMSE "
        f"{t['energy_rmse_eV_atom'] * 1000:.1f} meV/atom"
    )
    if variants := student.get("vs_teacher_by_variant"):
        line += (
            " ("
            + ", ".join(
                f"{k} {v['force_rmse_eV_A']:.3f}/{v['energy_rmse_eV_atom'] * 1000:.1f}"
                for k, v in variants.items()
            )
            + " per variant)"
        )
    if dft := student.get("vs_dft"):
        line += (
            f"; vs DFT: F RMSE {dft['student']['force_rmse_eV_A']:.3f} eV/Å "
            f"(teacher {dft['teacher']['force_rmse_eV_A']:.3f}, "
            f"{dft['force_rmse_ratio']:.2f}x)"
        )
    if student.get("learned") is False:
        line += (
            f"; NOT LEARNED: its force error is most of the teacher's forces "
            f"({student['teacher_force_rms_eV_A']:.3f} eV/Å RMS): lower "
            "distill.student.start_lr and run 'pfd distill'"
        )
    return line
