"""The loop's test and stop rule: the model's error on DFT frames it never saw.

Each iteration's model is scored on the frames labelled for that iteration
*before* it trains on them; below both thresholds the loop stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase import Atoms

from pfd.analysis.errors import Prediction, errors_of, predict
from pfd.db import FAILED, LABELLED
from pfd.state import IterationRecord
from pfd.structures import cell_key

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
    per_variant: dict[str, dict[str, Any]] = {}
    if new:
        predictions = predict(new, ctx.backend.calculator(model))
        errs = errors_of(predictions)
        f_rmse, e_rmse = errs.force_rmse_eV_A, errs.energy_rmse_eV_atom
        s_rmse = errs.stress_rmse_GPa
        per_variant = errors_per_variant(new, predictions)
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
        variants=per_variant,
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
    for line in variant_lines(per_variant):
        ctx.report.info(f"  {line}")
    return record


def errors_per_variant(
    frames: list[Atoms], predictions: list[Prediction]
) -> dict[str, dict[str, Any]]:
    """Errors of the frames of each structure variant (``'s0 slab-111'``); empty
    for frames without variants."""
    groups: dict[str, list[Prediction]] = {}
    for atoms, prediction in zip(frames, predictions, strict=True):
        if "variant" in atoms.info:
            structure, variant = cell_key(atoms)
            groups.setdefault(f"s{structure} {variant}", []).append(prediction)
    out = {}
    for key, group in sorted(groups.items()):
        errs = errors_of(group)
        out[key] = {
            "n_frames": errs.n_frames,
            "force_rmse_eV_A": errs.force_rmse_eV_A,
            "energy_rmse_eV_atom": errs.energy_rmse_eV_atom,
            "stress_rmse_GPa": errs.stress_rmse_GPa,
        }
    return out


def variant_lines(per_variant: dict[str, dict[str, Any]]) -> list[str]:
    """One line per variant: its new frames and their errors."""
    return [
        f"{key}: {e['n_frames']} frames, force RMSE {_fmt(e['force_rmse_eV_A'], 1)} "
        f"eV/Å, energy RMSE {_fmt(e['energy_rmse_eV_atom'], 1000)} meV/atom"
        for key, e in per_variant.items()
    ]


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
