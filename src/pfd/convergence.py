"""The loop's test and stop rule: the model's error on DFT frames it never saw.

Each iteration's model is scored on the frames labelled for that iteration
*before* it trains on them; below both thresholds the loop stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pfd.analysis.errors import evaluate
from pfd.db import FAILED, LABELLED
from pfd.state import IterationRecord

if TYPE_CHECKING:
    from pfd.config import ConvergenceConfig
    from pfd.loop import Context


def test_iteration(
    ctx: Context, iteration: int, model: Path, stops: list[str], times: dict[str, float]
) -> IterationRecord:
    """Error of the model on the new DFT frames it never saw: the convergence test."""
    conv = ctx.config.convergence
    new = [f.atoms for f in ctx.db.frames(iteration=iteration, status=LABELLED)]
    n_failed = ctx.db.count(iteration=iteration, status=FAILED)
    n_train = len(ctx.db.labelled(max_iteration=iteration - 1))
    f_rmse = e_rmse = s_rmse = None  # nothing new: exploration found nothing unfamiliar
    if new:
        errs = evaluate(new, ctx.backend.calculator(model))
        f_rmse, e_rmse = errs.force_rmse_eV_A, errs.energy_rmse_eV_atom
        s_rmse = errs.stress_rmse_GPa
    record = IterationRecord(
        iteration=iteration,
        n_train=n_train,
        n_new=len(new),
        n_failed=n_failed,
        force_rmse_eV_A=f_rmse,
        energy_rmse_eV_atom=e_rmse,
        stress_rmse_GPa=s_rmse,
        converged=False,
        model=str(model),
        md_stops=stops,
        seconds=times,
    )
    record.converged = converged = meets_targets(record, conv)
    ctx.state.record(record)
    ctx.state.save(ctx.run_dir)
    ctx.report.info(
        f"iteration {iteration}: trained on {n_train}, tested on {len(new)} new DFT "
        f"frames: force RMSE {_fmt(f_rmse, 1)} eV/Å (target {conv.force_rmse_eV_A}), "
        f"energy RMSE {_fmt(e_rmse, 1000)} meV/atom (target "
        f"{conv.energy_rmse_eV_atom * 1000:g}) -> "
        f"{'converged' if converged else 'not converged'}"
    )
    return record


def meets_targets(record: IterationRecord, conv: ConvergenceConfig) -> bool:
    """Whether a recorded iteration meets the (current) convergence thresholds."""
    if record.n_new == 0:
        return True
    return (
        record.force_rmse_eV_A is not None
        and record.energy_rmse_eV_atom is not None
        and record.force_rmse_eV_A < conv.force_rmse_eV_A
        and record.energy_rmse_eV_atom < conv.energy_rmse_eV_atom
    )


def _fmt(value: float | None, scale: float) -> str:
    return "n/a" if value is None else f"{value * scale:.3f}"
