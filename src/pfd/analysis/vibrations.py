"""Harmonic vibrations of a molecule or cluster: relax, finite-difference Hessian.

A model relaxes the molecule (BFGS), then each atom is displaced by ±``delta``
along x, y and z (6N force calls, central differences). The six (five for a
linear molecule) rigid translations and rotations are projected out of the
mass-weighted Hessian (Eckart conditions), so they come out as exact zeros and
no vibration is mistaken for one; ASE's :class:`~ase.vibrations.VibrationsData`
then gives the frequencies in cm⁻¹ (an imaginary one as a negative number).

DFT frequencies (:func:`frequencies_at` with the DFT as calculator) are taken
at another model's relaxed geometry: the Hessian at the same geometry, not at
DFT's own minimum (that would need a DFT relaxation first).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms
from ase.vibrations import VibrationsData

from pfd.analysis._common import CalculatorSource, as_calculator, relax_positions

#: below this (amu Å², the smallest moment of inertia) a molecule is linear
LINEAR_INERTIA = 1e-3


@dataclass(frozen=True)
class Vibrations:
    """Harmonic frequencies of one model's relaxed molecule."""

    natoms: int
    energy_eV: float  # at the relaxed geometry
    max_force_eV_A: float  # left after the relaxation
    converged: bool  # relaxation reached fmax
    frequencies_cm1: list[float]  # the 3N-6 (3N-5) vibrations, ascending
    positions_A: list[list[float]]  # the relaxed geometry

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def n_imaginary(self) -> int:
        return sum(1 for f in self.frequencies_cm1 if f < 0)


def displaced(atoms: Atoms, delta_A: float) -> list[Atoms]:
    """The 6N geometries of the central differences: atom i, axis c, -delta, +delta."""
    frames = []
    for i in range(len(atoms)):
        for c in range(3):
            for sign in (-1.0, 1.0):
                frame = atoms.copy()
                frame.calc = None
                frame.positions[i, c] += sign * delta_A
                frames.append(frame)
    return frames


def hessian(atoms: Atoms, model: CalculatorSource, delta_A: float = 0.01) -> np.ndarray:
    """The (3N, 3N) Hessian (eV/Å²) by central differences of the forces, symmetrised.

    The model is asked for the geometries of :func:`displaced`, in that order.
    """
    calc = as_calculator(model)
    n = len(atoms)
    rows = np.empty((3 * n, 3 * n))
    frames = displaced(atoms, delta_A)
    for k in range(3 * n):
        minus, plus = frames[2 * k], frames[2 * k + 1]
        minus.calc = calc
        f_minus = np.array(minus.get_forces()).ravel()
        plus.calc = calc
        f_plus = np.array(plus.get_forces()).ravel()
        rows[k] = -(f_plus - f_minus) / (2 * delta_A)
    return 0.5 * (rows + rows.T)


def rigid_modes(atoms: Atoms) -> np.ndarray:
    """Orthonormal mass-weighted translations and rotations, (3N, 6) or (3N, 5)."""
    masses = atoms.get_masses()
    sqrt_m = np.repeat(np.sqrt(masses), 3)
    centred = atoms.positions - atoms.get_center_of_mass()
    vectors = []
    for axis in np.eye(3):
        vectors.append(np.tile(axis, len(atoms)) * sqrt_m)  # translation
        vectors.append(np.cross(axis, centred).ravel() * sqrt_m)  # rotation
    u, s, _ = np.linalg.svd(np.array(vectors).T, full_matrices=False)
    rank = 5 if is_linear(atoms) else 6
    rank = min(rank, int(np.sum(s > 1e-8 * s.max())), 3 * len(atoms))
    return u[:, :rank]


def is_linear(atoms: Atoms) -> bool:
    """A diatomic, or atoms on one line (its smallest moment of inertia ~0)."""
    return len(atoms) == 2 or bool(
        np.min(atoms.get_moments_of_inertia()) < LINEAR_INERTIA
    )


def frequencies(atoms: Atoms, hessian_eV_A2: np.ndarray) -> np.ndarray:
    """Vibrational frequencies (cm⁻¹, imaginary ones negative, ascending) of
    ``hessian_eV_A2`` at ``atoms``' geometry, rigid motions projected out."""
    sqrt_m = np.repeat(np.sqrt(atoms.get_masses()), 3)
    modes = rigid_modes(atoms)
    project = np.eye(len(sqrt_m)) - modes @ modes.T
    weighted = hessian_eV_A2 / np.outer(sqrt_m, sqrt_m)
    cleaned = project @ weighted @ project * np.outer(sqrt_m, sqrt_m)
    found = VibrationsData.from_2d(atoms, cleaned).get_frequencies()
    signed = np.where(np.abs(found.imag) > np.abs(found.real), -found.imag, found.real)
    rigid = np.argsort(np.abs(signed))[: modes.shape[1]]  # the projected zeros
    return np.sort(np.delete(signed, rigid))


def frequencies_at(
    atoms: Atoms, model: CalculatorSource, delta_A: float = 0.01
) -> np.ndarray:
    """:func:`frequencies` of ``model``'s Hessian at ``atoms`` as they are."""
    return frequencies(atoms, hessian(atoms, model, delta_A))


def molecule_vibrations(
    model: CalculatorSource,
    atoms: Atoms,
    fmax_eV_A: float = 0.005,
    max_steps: int = 500,
    delta_A: float = 0.01,
) -> Vibrations:
    """Relax ``atoms`` with ``model`` (positions; a molecule has no cell to relax),
    then its harmonic frequencies there."""
    calc = as_calculator(model)
    relaxed, energy, converged = relax_positions(atoms, calc, fmax_eV_A, max_steps)
    probe = relaxed.copy()
    probe.calc = calc
    fmax = float(np.linalg.norm(probe.get_forces(), axis=1).max())
    found = frequencies_at(relaxed, calc, delta_A)
    return Vibrations(
        natoms=len(atoms),
        energy_eV=energy,
        max_force_eV_A=fmax,
        converged=converged,
        frequencies_cm1=[float(f) for f in found],
        positions_A=relaxed.positions.tolist(),
    )


def compare_frequencies(
    found: np.ndarray | list[float], reference: np.ndarray | list[float]
) -> dict[str, float]:
    """MAE, RMSE and largest difference (cm⁻¹) of two spectra, sorted mode by mode,
    and the mean relative difference (%) over modes above 100 cm⁻¹ in the reference."""
    a, b = np.sort(np.asarray(found)), np.sort(np.asarray(reference))
    if a.shape != b.shape:
        raise ValueError(f"{len(a)} modes against {len(b)}: not one molecule")
    diff = a - b
    stiff = np.abs(b) > 100.0
    rel = 100 * np.mean(np.abs(diff[stiff]) / np.abs(b[stiff])) if stiff.any() else 0.0
    return {
        "mae_cm1": float(np.mean(np.abs(diff))),
        "rmse_cm1": float(np.sqrt(np.mean(diff**2))),
        "max_cm1": float(np.max(np.abs(diff))),
        "mean_relative_pct": float(rel),
    }
