"""Diffusion: MSD from Langevin MD, D where the MSD is linear, Arrhenius, RDF.

A crystal's atoms vibrate about their sites: its MSD rises within a few
hundred femtoseconds to a plateau and stays there. A slope fitted to that
plateau is noise, not diffusion, so D is reported only where the MSD leaves
the vibrational range (a fraction of the squared nearest-neighbour distance)
and keeps rising over the second half of the run; elsewhere the answer is
"no diffusion at T" with the reason. Arrhenius is fitted only to the
temperatures with such a linear regime, and a negative activation energy is
reported as "not determined", never as a result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms, units

from pfd.analysis._common import (
    CalculatorSource,
    as_calculator,
    min_height,
    supercell,
)
from pfd.config import DiffusionReportConfig

LANGEVIN_FRICTION = 0.01  # ASE units (1/fs x ~0.1): weak, leaves the dynamics
SAMPLES = 50  # MSD points per run


@dataclass(frozen=True)
class Trajectory:
    """MSD (Å²) per species against time (ps) after equilibration; the frames."""

    temperature_K: float
    times_ps: np.ndarray
    msd_A2: dict[str, np.ndarray]
    frames: list[Atoms]


@dataclass(frozen=True)
class DiffusionFit:
    """D of one species at one temperature, or None and why not."""

    D_cm2_s: float | None
    reason: str | None
    slope_A2_ps: float  # of the second half of MSD(t)
    rise: float  # MSD gained over the second half / MSD at its start (fitted)
    msd_end_A2: float  # the fitted MSD at the end of the run


@dataclass(frozen=True)
class ArrheniusFit:
    """D = D0 exp(-Ea / kT) over ``temperatures_K``, or None and why not."""

    Ea_eV: float | None
    D0_cm2_s: float | None
    temperatures_K: list[float]
    reason: str | None


@dataclass(frozen=True)
class RDF:
    """Radial distribution function g(r), r in Å."""

    r: list[float]
    g: list[float]


@dataclass(frozen=True)
class DiffusionRun:
    temperature_K: float
    times_ps: list[float]
    msd_A2: dict[str, list[float]]
    species: dict[str, DiffusionFit]


@dataclass(frozen=True)
class DiffusionResult:
    """MSD runs at each temperature, Arrhenius per species, RDF at the hottest."""

    natoms: int
    nn_distance_A: float
    runs: list[DiffusionRun]
    arrhenius: dict[str, ArrheniusFit]
    rdf: RDF

    def to_dict(self) -> dict:
        return asdict(self)


def msd_run(
    model: CalculatorSource,
    atoms: Atoms,
    temperature_K: float,
    steps: int,
    equilibration: int,
    timestep_fs: float,
    seed: int = 0,
) -> Trajectory:
    """NVT Langevin MD of ``atoms``; MSD per species after ``equilibration`` steps."""
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    system = atoms.copy()
    system.calc = as_calculator(model)
    rng = np.random.default_rng(seed)
    thermalize_momenta(system, temperature_K=temperature_K, rng=rng)
    Stationary(system)
    dyn = Langevin(
        system,
        timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=LANGEVIN_FRICTION,
        fixcm=False,
        rng=rng,
    )
    dyn.run(equilibration)
    start = system.get_positions(wrap=False).copy()  # ASE keeps positions unwrapped
    start -= start.mean(0)
    symbols = np.array(system.get_chemical_symbols())
    every = max(1, steps // SAMPLES)
    times, frames = [], []
    msd: dict[str, list[float]] = {str(s): [] for s in sorted(set(symbols))}
    for k in range(0, steps + 1, every):
        if k:
            dyn.run(every)
        d2 = ((system.positions - system.positions.mean(0)) - start) ** 2
        times.append(k * timestep_fs / 1000)
        for s, values in msd.items():
            values.append(float(d2[symbols == s].sum(1).mean()))
        frames.append(system.copy())
    arrays = {s: np.array(v) for s, v in msd.items()}
    return Trajectory(temperature_K, np.array(times), arrays, frames)


def fit_diffusion(
    times_ps,
    msd_A2,
    nn_distance_A: float,
    settings: DiffusionReportConfig | None = None,
) -> DiffusionFit:
    """D (cm²/s) from MSD(t) = 6 D t over the second half, if the MSD is linear.

    No diffusion when the MSD stays below ``solid_msd_fraction`` of the
    squared nearest-neighbour distance, or when it rises over the second half
    by less than ``min_msd_rise`` of its value there (a plateau).
    """
    settings = settings or DiffusionReportConfig()
    t, msd = np.asarray(times_ps, float), np.asarray(msd_A2, float)
    half = len(t) // 2
    slope, intercept = np.polyfit(t[half:], msd[half:], 1)  # Å²/ps
    level = intercept + slope * t[half]
    end = intercept + slope * t[-1]
    rise = float((end - level) / level) if level > 0 else float("inf")
    floor = settings.solid_msd_fraction * nn_distance_A**2
    reason = None
    if end < floor:
        reason = (
            f"MSD {end:.3g} Å² stays below {settings.solid_msd_fraction:g} x the "
            f"squared nearest-neighbour distance ({floor:.3g} Å²): atoms vibrate "
            "about their sites"
        )
    elif rise < settings.min_msd_rise:
        reason = (
            f"MSD plateaus: it rises {rise:.0%} over the second half of the run, "
            f"a linear regime rises at least {settings.min_msd_rise:.0%}"
        )
    diffusing = reason is None
    return DiffusionFit(
        D_cm2_s=float(slope / 6 * 1e-4) if diffusing else None,  # Å²/ps -> cm²/s
        reason=reason,
        slope_A2_ps=float(slope),
        rise=rise,
        msd_end_A2=float(end),
    )


def arrhenius(temperatures_K, coefficients) -> ArrheniusFit:
    """Ea (eV) and D0 (cm²/s) from the temperatures where D is not None.

    Needs two or more such temperatures; a fit with Ea <= 0 (D not rising
    with temperature) is "not determined", with the fitted value in the reason.
    """
    pts = [
        (t, d)
        for t, d in zip(temperatures_K, coefficients, strict=True)
        if d is not None and d > 0
    ]
    used = [float(t) for t, _ in pts]
    if len(pts) < 2:
        return ArrheniusFit(
            None,
            None,
            used,
            f"not determined: a linear MSD regime at {len(pts)} temperature(s), "
            "the fit needs 2 or more",
        )
    t, d = np.array(pts).T
    slope, intercept = np.polyfit(1 / (units.kB * t), np.log(d), 1)
    if -slope <= 0:
        return ArrheniusFit(
            None,
            None,
            used,
            f"not determined: D does not rise with temperature (the fit gives "
            f"Ea = {-slope:.3g} eV)",
        )
    return ArrheniusFit(float(-slope), float(np.exp(intercept)), used, None)


def rdf(frames: list[Atoms], rmax: float, nbins: int = 100) -> RDF:
    """g(r) averaged over ``frames`` up to ``rmax`` Å."""
    from ase.geometry.rdf import get_rdf

    curves = [get_rdf(a, rmax, nbins) for a in frames]
    g = np.mean([c[0] for c in curves], axis=0)
    return RDF(r=curves[0][1].tolist(), g=g.tolist())


def nearest_neighbour_distance(atoms: Atoms) -> float:
    """The shortest interatomic distance (Å), periodic images included."""
    from ase.neighborlist import neighbor_list

    for cutoff in (4.0, 8.0, 16.0):
        d = neighbor_list("d", atoms, cutoff)
        if len(d):
            return float(d.min())
    raise ValueError(f"no two atoms of {atoms.get_chemical_formula()} within 16 Å")


def rdf_range(cell: Atoms) -> float:
    """The RDF's rmax: 6 Å, or less than half the cell's smallest height."""
    return min(6.0, 0.49 * min_height(cell)) if all(cell.pbc) else 6.0


def diffusion(
    model: CalculatorSource,
    atoms: Atoms,
    settings: DiffusionReportConfig | None = None,
    *,
    temperatures_K: list[float] | None = None,
) -> DiffusionResult:
    """MSD runs of ``atoms`` (as a supercell of ``settings.min_atoms``) per T.

    ``temperatures_K`` defaults to ``settings.temperatures_K``; the RDF is of
    the second half of the hottest run.
    """
    settings = settings or DiffusionReportConfig()
    temps = temperatures_K or settings.temperatures_K
    if not temps:
        raise ValueError("diffusion needs temperatures: give temperatures_K")
    calc = as_calculator(model)
    cell = supercell(atoms, settings.min_atoms)
    nn = nearest_neighbour_distance(cell)
    runs, last = [], None
    for seed, temp in enumerate(sorted(temps)):
        last = msd_run(
            calc,
            cell,
            temp,
            settings.steps,
            settings.equilibration_steps,
            settings.timestep_fs,
            seed,
        )
        fits = {
            s: fit_diffusion(last.times_ps, v, nn, settings)
            for s, v in last.msd_A2.items()
        }
        runs.append(
            DiffusionRun(
                temperature_K=float(temp),
                times_ps=last.times_ps.tolist(),
                msd_A2={s: v.tolist() for s, v in last.msd_A2.items()},
                species=fits,
            )
        )
    fits_by_species = {
        s: arrhenius(
            [r.temperature_K for r in runs], [r.species[s].D_cm2_s for r in runs]
        )
        for s in runs[0].species
    }
    half = last.frames[len(last.frames) // 2 :]
    return DiffusionResult(
        natoms=len(cell),
        nn_distance_A=nn,
        runs=runs,
        arrhenius=fits_by_species,
        rdf=rdf(half, rdf_range(cell)),
    )


def md_rdf(
    model: CalculatorSource,
    atoms: Atoms,
    temperature_K: float,
    settings: DiffusionReportConfig | None = None,
    seed: int = 99,
) -> RDF:
    """g(r) of a short run (``settings.rdf_steps``) on the diffusion's supercell.

    To set another model's structure beside the one :func:`diffusion` ran.
    """
    settings = settings or DiffusionReportConfig()
    cell = supercell(atoms, settings.min_atoms)
    run = msd_run(
        model, cell, temperature_K, settings.rdf_steps, 0, settings.timestep_fs, seed
    )
    return rdf(run.frames[len(run.frames) // 2 :], rdf_range(cell))
