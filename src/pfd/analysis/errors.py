"""Errors of a model against labelled frames: energy per atom, forces, stress.

``pfd test``, the fine-tuning loop, distillation's checks and the report's
parity plots all measure a model this way.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms
from ase.units import GPa

from pfd.analysis._common import CalculatorSource, as_calculator


@dataclass(frozen=True)
class Errors:
    """RMSE and MAE; energy in eV/atom, forces in eV/Å (components), stress in GPa."""

    n_frames: int
    energy_rmse_eV_atom: float
    energy_mae_eV_atom: float
    force_rmse_eV_A: float
    force_mae_eV_A: float
    stress_rmse_GPa: float | None
    stress_mae_GPa: float | None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Prediction:
    """Reference and predicted values of one frame."""

    natoms: int
    energy: tuple[float, float]
    forces: tuple[np.ndarray, np.ndarray]
    stress: tuple[np.ndarray, np.ndarray] | None


def predict(frames: list[Atoms], model: CalculatorSource) -> list[Prediction]:
    """Predict every frame with ``model`` and pair it with the stored reference."""
    calc = as_calculator(model)
    out = []
    for atoms in frames:
        ref_e = atoms.get_potential_energy()
        ref_f = atoms.get_forces()
        ref_s = atoms.calc.results.get("stress") if atoms.calc else None
        work = atoms.copy()
        work.calc = calc
        pred_e = float(work.get_potential_energy())
        pred_f = np.array(work.get_forces())
        stress = None
        if ref_s is not None and all(atoms.pbc):
            stress = (
                np.asarray(ref_s).reshape(-1)[:6],
                np.array(work.get_stress())[:6],
            )
        out.append(Prediction(len(atoms), (ref_e, pred_e), (ref_f, pred_f), stress))
    return out


def errors_of(predictions: list[Prediction]) -> Errors:
    """Aggregate errors over predictions (force errors over all components)."""
    if not predictions:
        raise ValueError("no frames to evaluate")
    de = np.array([(p.energy[1] - p.energy[0]) / p.natoms for p in predictions])
    df = np.concatenate([(p.forces[1] - p.forces[0]).ravel() for p in predictions])
    ds = [
        (p.stress[1] - p.stress[0]) / GPa for p in predictions if p.stress is not None
    ]
    ds_all = np.concatenate(ds) if ds else None
    return Errors(
        n_frames=len(predictions),
        energy_rmse_eV_atom=float(np.sqrt(np.mean(de**2))),
        energy_mae_eV_atom=float(np.mean(np.abs(de))),
        force_rmse_eV_A=float(np.sqrt(np.mean(df**2))),
        force_mae_eV_A=float(np.mean(np.abs(df))),
        stress_rmse_GPa=None if ds_all is None else float(np.sqrt(np.mean(ds_all**2))),
        stress_mae_GPa=None if ds_all is None else float(np.mean(np.abs(ds_all))),
    )


def max_force_errors(predictions: list[Prediction]) -> np.ndarray:
    """Per frame, the largest atomic force error |F_model - F_ref| (eV/Å): the
    error a committee's ``max_devi_f`` stands for."""
    return np.array(
        [np.linalg.norm(p.forces[1] - p.forces[0], axis=-1).max() for p in predictions]
    )


def evaluate(frames: list[Atoms], model: CalculatorSource) -> Errors:
    """Errors of ``model`` on labelled ``frames``."""
    return errors_of(predict(frames, model))


def evaluate_by_subset(
    frames: list[Atoms], model: CalculatorSource
) -> dict[str, Errors]:
    """Errors overall (key ``all``) and per group of :func:`errors_by_group`."""
    return errors_by_subset_of(frames, predict(frames, model))


def errors_by_subset_of(
    frames: list[Atoms], predictions: list[Prediction]
) -> dict[str, Errors]:
    """:func:`evaluate_by_subset` of predictions already made."""
    return {"all": errors_of(predictions), **errors_by_group(frames, predictions)}


def errors_by_group(
    frames: list[Atoms], predictions: list[Prediction]
) -> dict[str, Errors]:
    """Errors per group of frames: per ``info['subset']`` when frames carry one,
    else per material (``info['name']``, or ``s<index>`` of
    ``info['structure']``); frames of two or more materials are also grouped per
    material beside their subsets."""
    from pfd.materials import material_of

    materials = [material_of(atoms) for atoms in frames]
    several = len({m for m in materials if m is not None}) > 1
    groups: dict[str, list[Prediction]] = defaultdict(list)
    by_material: dict[str, list[Prediction]] = defaultdict(list)
    for atoms, material, pred in zip(frames, materials, predictions, strict=True):
        if "subset" in atoms.info:
            groups[str(atoms.info["subset"])].append(pred)
        if material is not None and ("subset" not in atoms.info or several):
            by_material[material].append(pred)
    result = {k: errors_of(v) for k, v in sorted(groups.items())}
    result.update({k: errors_of(v) for k, v in sorted(by_material.items())})
    return result
