"""The loop's test and stop rule: the model's error on DFT frames it never saw.

Each iteration's model is scored on the frames labelled for that iteration
*before* it trains on them; below both thresholds the loop stops. In a run of
several structures (materials), every material with new frames must be below
them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase import Atoms

from pfd.analysis.errors import Prediction, errors_of, predict
from pfd.db import FAILED, LABELLED
from pfd.materials import material_of, structure_names
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
    per_material: dict[str, dict[str, Any]] = {}
    if new:
        predictions = predict(new, ctx.backend.calculator(model))
        errs = errors_of(predictions)
        f_rmse, e_rmse = errs.force_rmse_eV_A, errs.energy_rmse_eV_atom
        s_rmse = errs.stress_rmse_GPa
        per_variant = errors_per_variant(new, predictions)
        if len(ctx.structures) > 1:
            names = structure_names(ctx.structures)
            per_material = errors_per_material(new, predictions, names)
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
        materials=per_material,
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
    for line in variant_lines(per_variant) + material_lines(per_material, conv):
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
    return _summaries(groups)


def errors_per_material(
    frames: list[Atoms], predictions: list[Prediction], names: dict[int, str]
) -> dict[str, dict[str, Any]]:
    """Errors of the frames of each input structure (material), by its name
    (see :func:`pfd.materials.material_of`); variants count with their structure."""
    groups: dict[str, list[Prediction]] = {}
    for atoms, prediction in zip(frames, predictions, strict=True):
        material = material_of(atoms, names)
        if material is not None:
            groups.setdefault(material, []).append(prediction)
    return _summaries(groups)


def _summaries(groups: dict[str, list[Prediction]]) -> dict[str, dict[str, Any]]:
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


def material_lines(
    per_material: dict[str, dict[str, Any]], conv: ConvergenceConfig | None = None
) -> list[str]:
    """One line per material: its new frames, their errors and (with ``conv``)
    whether they meet the targets."""
    lines = variant_lines({f"material {k}": e for k, e in per_material.items()})
    if conv is None:
        return lines
    return [
        f"{line} -> {'meets' if _meets(e, conv) else 'misses'} the targets"
        for line, e in zip(lines, per_material.values(), strict=True)
    ]


def meets_targets(record: IterationRecord, conv: ConvergenceConfig) -> bool:
    """Whether a recorded iteration meets the (current) convergence thresholds:
    overall and, in a run of several materials, every material with new frames
    (from the errors the record keeps, so a resumed run decides the same way)."""
    if record.n_new == 0:
        return True
    overall = {
        "force_rmse_eV_A": record.force_rmse_eV_A,
        "energy_rmse_eV_atom": record.energy_rmse_eV_atom,
    }
    return _meets(overall, conv) and all(
        _meets(e, conv) for e in record.materials.values()
    )


def _meets(errors: dict[str, Any], conv: ConvergenceConfig) -> bool:
    force, energy = errors.get("force_rmse_eV_A"), errors.get("energy_rmse_eV_atom")
    return (
        force is not None
        and energy is not None
        and force < conv.force_rmse_eV_A
        and energy < conv.energy_rmse_eV_atom
    )


def _fmt(value: float | None, scale: float) -> str:
    return "n/a" if value is None else f"{value * scale:.3f}"
