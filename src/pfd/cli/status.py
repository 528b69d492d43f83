"""Show a run's progress: labels, new-frame errors per iteration, convergence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

NAME = "status"


def command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the state as JSON.")
    ] = False,
) -> None:
    import json
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from pfd.db import open_db
    from pfd.errors import PFDError
    from pfd.layout import RunLayout
    from pfd.state import RunState, damaged

    layout = RunLayout(run_dir)
    if not layout.db.exists():
        raise PFDError(
            f"'{run_dir}' is not a pfd run directory (no {layout.db.name}); "
            "check the path"
        )
    db = open_db(layout.db)
    state = RunState.load(run_dir)
    counts = {s: db.count(status=s) for s in ("labelled", "failed", "pending")}

    def read(path: Path) -> Any:
        try:
            return json.loads(path.read_text()) if path.exists() else None
        except ValueError as err:
            raise damaged(path, err, "delete it: 'pfd run' writes it again") from err

    student = read(layout.student_check)
    timings = read(layout.timings) or {}
    if json_out:
        payload = {"frames": counts, **asdict(state), "student": student}
        payload["seconds"] = timings
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(
        title=f"pfd run {run_dir}",
        caption="errors of each iteration's model on the new DFT frames it never saw; "
        "iteration 0: the foundation model, zero-shot, on the initial frames",
    )
    for col in (
        "iter",
        "trained on",
        "new DFT",
        "failed",
        "F RMSE eV/Å",
        "E RMSE meV/atom",
        "S RMSE GPa",
        "conv.",
    ):
        table.add_column(col, justify="right")
    if state.foundation:
        f = state.foundation
        table.add_row(
            "0",
            "0",
            str(f["n_frames"]),
            str(db.count(iteration=0, status="failed")),
            f"{f['force_rmse_eV_A']:.3f}",
            f"{f['energy_rmse_eV_atom'] * 1000:.1f}",
            "-" if f["stress_rmse_GPa"] is None else f"{f['stress_rmse_GPa']:.2f}",
            "-",
        )
    for r in state.iterations:
        table.add_row(
            str(r.iteration),
            str(r.n_train),
            str(r.n_new),
            str(r.n_failed),
            "-" if r.force_rmse_eV_A is None else f"{r.force_rmse_eV_A:.3f}",
            "-"
            if r.energy_rmse_eV_atom is None
            else f"{r.energy_rmse_eV_atom * 1000:.1f}",
            "-" if r.stress_rmse_GPa is None else f"{r.stress_rmse_GPa:.2f}",
            "yes" if r.converged else "no",
        )
    console = Console()
    console.print(table)
    for r in state.iterations:
        times = ", ".join(f"{k} {v:.0f} s" for k, v in r.seconds.items())
        stops = f"; {len(r.md_stops)} MD trajectories stopped by guards" * bool(
            r.md_stops
        )
        console.print(f"iteration {r.iteration}: {times}{stops}")
    console.print(
        f"frames: {counts['labelled']} labelled, {counts['failed']} failed, "
        f"{counts['pending']} pending; "
        + (
            f"final model: {state.final_model}"
            if state.finished
            else "run not finished"
        )
    )
    if student:
        t = student["vs_teacher"]
        line = (
            f"student: {student['student']}; vs teacher on {t['n_frames']} held-out "
            f"frames: F RMSE {t['force_rmse_eV_A']:.3f} eV/Å, E RMSE "
            f"{t['energy_rmse_eV_atom'] * 1000:.1f} meV/atom"
        )
        dft = student.get("vs_dft")
        if dft:
            line += (
                f"; vs DFT: F RMSE {dft['student']['force_rmse_eV_A']:.3f} eV/Å "
                f"(teacher {dft['teacher']['force_rmse_eV_A']:.3f}, "
                f"{dft['force_rmse_ratio']:.2f}x)"
            )
        console.print(line)
    if timings:
        spent = ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items())
        console.print(f"wall time so far: {spent}")
