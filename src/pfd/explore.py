"""Exploration: Langevin MD (NVT, NPT, temperature ramps) with any ASE calculator.

Every trajectory is guarded: it stops at the first sampled frame whose atoms are
too close, whose temperature or energy runs away, or whose numbers are not finite,
and keeps the frames before it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.langevinbaoab import LangevinBAOAB
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from pfd.config import ExploreConfig, GuardConfig, RampConfig
from pfd.config.loop import ramp_temperature
from pfd.execute import Executor, given_or_local
from pfd.materials import Conditions, conditions, structure_names
from pfd.structures import cell_key, perturb, too_close


@dataclass(frozen=True)
class MDTask:
    """One trajectory to run."""

    structure: int
    start_K: float
    stop_K: float
    pressure_bar: float | None
    steps: int
    seed: int
    variant: str = ""  # of the structure; '' in a run without variants
    hold: int = 0  # of ``steps``: the first ones at start_K (a ramp's hold_steps)

    def temperature_at(self, step: int) -> float:
        """The thermostat's temperature at ``step`` (1-based)."""
        ramp = self.steps - self.hold
        return ramp_temperature(self.start_K, self.stop_K, self.hold, ramp, step)

    @property
    def label(self) -> str:
        temp = (
            f"{self.start_K:g}K"
            if self.start_K == self.stop_K
            else f"{self.start_K:g}->{self.stop_K:g}K"
        )
        ens = "NVT" if self.pressure_bar is None else f"NPT {self.pressure_bar:g}bar"
        cell = f"s{self.structure}" + (f" {self.variant}" if self.variant else "")
        return f"{cell} {temp} {ens}"


@dataclass
class Trajectory:
    """Sampled frames of one trajectory and why it stopped early, if it did."""

    task: MDTask
    frames: list[Atoms] = field(default_factory=list)
    stopped: str | None = None
    steps_done: int = 0


def plan_md(structures: list[Atoms], cfg: ExploreConfig, seed: int) -> list[MDTask]:
    """All trajectories of one exploration: each structure at each (T, P) and ramp.

    Each structure runs its own conditions (``cfg.per_structure`` by its
    ``info['name']``, else ``cfg``'s; its variants inherit them). Non-periodic
    structures run NVT only; ramps run NVT. Structure variants
    (:mod:`pfd.variants`) run the same grid, except a cell with
    ``info['fixed_cell']`` (a slab: NVT at each temperature, no ramps) and one
    with ``info['ramps']`` (the melt: those ramps instead of the grid).
    """
    tasks: list[MDTask] = []
    rng = np.random.default_rng(seed)
    names = structure_names(structures)
    for atoms in structures:
        index, variant = cell_key(atoms)
        own = conditions(cfg, names.get(index))
        melt = "ramps" in atoms.info
        fixed = bool(atoms.info.get("fixed_cell"))
        periodic = bool(all(atoms.pbc)) and not fixed
        pressures = own.pressures_bar if periodic else [None]
        pressures = list(dict.fromkeys(pressures))  # drop duplicates (e.g. NVT)
        grid = [(t, t, p, own.steps, 0) for t in own.temperatures_K for p in pressures]
        ramps = [
            (r.start_K, r.stop_K, None, r.hold_steps + r.steps, r.hold_steps)
            for r in _ramps(atoms, own)
        ]
        tasks.extend(
            MDTask(index, start, stop, p, n, int(rng.integers(2**31)), variant, hold)
            for start, stop, p, n, hold in ([] if melt else grid) + ramps
        )
    return tasks


def _ramps(atoms: Atoms, own: Conditions) -> list[RampConfig]:
    """A cell's ramps: the melt variant's own; none for a slab; else its
    structure's."""
    if "ramps" in atoms.info:
        return [RampConfig.model_validate(r) for r in atoms.info["ramps"]]
    return [] if atoms.info.get("fixed_cell") else own.ramps


def run_md(
    atoms: Atoms,
    calc: Calculator,
    task: MDTask,
    cfg: ExploreConfig,
    label: bool = False,
) -> Trajectory:
    """Run one guarded trajectory from a perturbed copy of ``atoms``.

    With ``label`` each sampled frame keeps the model's energy, forces and
    (periodic cells) stress, which the MD step has just computed.
    """
    rng = np.random.default_rng(task.seed)
    strain = 0.0 if atoms.info.get("fixed_cell") else cfg.strain  # slabs keep theirs
    system = perturb(atoms, rng, cfg.displacement_A, strain)
    system.calc = calc
    thermalize_momenta(system, temperature_K=task.start_K, rng=rng)
    Stationary(system)
    kwargs: dict = {}
    if task.pressure_bar is not None and all(system.pbc):
        kwargs["externalstress"] = -task.pressure_bar * units.bar
        kwargs["P_tau"] = cfg.barostat_fs * units.fs
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using heuristic P_mass")
        dyn = LangevinBAOAB(
            system,
            timestep=cfg.timestep_fs * units.fs,
            temperature_K=task.start_K,
            T_tau=cfg.friction_fs * units.fs,
            rng=rng,
            **kwargs,
        )
    traj = Trajectory(task)
    guard = _Guard(cfg.guards, max(task.start_K, task.stop_K), len(system))
    for step in range(1, task.steps + 1):
        if task.start_K != task.stop_K:
            dyn.set_temperature(task.temperature_at(step))
        try:
            dyn.run(1)
        except Exception as err:  # a model can fail on a broken geometry
            traj.stopped = f"step {step}: MD failed ({type(err).__name__}: {err})"
            break
        traj.steps_done = step
        if step % cfg.sample_every:
            continue
        reason = guard.check(system)
        if reason:
            traj.stopped = f"step {step}: {reason}"
            break
        frame = system.copy()
        frame.calc = labelled_by(system) if label else None
        frame.info = {
            "structure": task.structure,
            "source": f"{task.label} step {step}",
            "condition": task.label,
            "temperature_K": float(system.get_temperature()),
        }
        if task.variant:
            frame.info["variant"] = task.variant
        traj.frames.append(frame)
    return traj


def labelled_by(atoms: Atoms) -> SinglePointCalculator:
    """A frozen copy of ``atoms``' calculator results: energy, forces, stress."""
    energy = float(atoms.get_potential_energy())
    results = {
        "energy": energy,
        "free_energy": energy,
        "forces": np.array(atoms.get_forces()),
    }
    if all(atoms.pbc):
        results["stress"] = np.array(atoms.get_stress())
    return SinglePointCalculator(atoms, **results)


class _Guard:
    def __init__(self, cfg: GuardConfig, target_K: float, natoms: int) -> None:
        self.cfg = cfg
        self.max_K = cfg.max_temperature_factor * target_K
        self.natoms = natoms
        self.last_e: float | None = None

    def check(self, atoms: Atoms) -> str | None:
        energy = atoms.get_potential_energy() / self.natoms
        if not (np.isfinite(energy) and np.all(np.isfinite(atoms.positions))):
            return "non-finite energy or positions"
        if too_close(atoms, self.cfg.min_distance_factor):
            return "atoms too close"
        temp = atoms.get_temperature()
        if temp > self.max_K:
            return f"temperature ran away ({temp:.0f} K)"
        if (
            self.last_e is not None
            and abs(energy - self.last_e) > self.cfg.max_energy_jump_eV_atom
        ):
            return f"energy jumped by {energy - self.last_e:+.2f} eV/atom"
        self.last_e = energy
        return None


def explore(
    structures: list[Atoms],
    make_calc: Callable[[], Calculator],
    cfg: ExploreConfig,
    seed: int,
    on_trajectory: Callable[[Trajectory], None] | None = None,
    workers: int = 1,
    executor: Executor | None = None,
) -> list[Trajectory]:
    """Run every planned trajectory as an ``md`` task of ``executor``; the result
    does not depend on where or how many side by side they run.

    Without an executor, a :class:`~pfd.execute.LocalExecutor` of ``workers``
    MD processes is made for the call: each builds its own calculator from
    ``make_calc`` (which must be picklable). Small cells run faster this way
    than one trajectory on several threads.
    """
    tasks = plan_md(structures, cfg, seed)
    cells = {cell_key(atoms): atoms for atoms in structures}
    out: list[Trajectory] = []
    size = workers if len(tasks) > 1 else 1
    with given_or_local(executor, md_workers=size) as runner:
        futures = [
            runner.submit(
                "md", _md_job, make_calc, cells[t.structure, t.variant], t, cfg
            )
            for t in tasks
        ]
        for future in futures:
            traj = future.result()
            if on_trajectory:
                on_trajectory(traj)
            out.append(traj)
    return out


_CALCULATORS: dict[int, Calculator] = {}


def cached_calculator(make_calc: Callable[[], Calculator]) -> Calculator:
    """This worker process's calculator from ``make_calc`` (built once, reused)."""
    key = hash(make_calc)
    if key not in _CALCULATORS:
        _CALCULATORS.clear()
        _CALCULATORS[key] = make_calc()
    return _CALCULATORS[key]


def _md_job(
    make_calc: Callable[[], Calculator], atoms: Atoms, task: MDTask, cfg: ExploreConfig
) -> Trajectory:
    """One trajectory in a worker process, reusing the worker's calculator."""
    return run_md(atoms, cached_calculator(make_calc), task, cfg)
