"""``pfd report``: what a scientist checks before trusting a force field.

Each model of a run (the foundation model zero-shot, the fine-tuned teacher,
the distilled student) against DFT where affordable: errors and parity plots,
the learning curve, equation of state, phonon bands, vacancy formation energy,
diffusion and RDF, and speed. Each section writes ``report/<section>.json``
keyed by the models and settings it used, so a rerun reuses what is computed;
DFT points are DFT jobs under ``report/dft/`` and are read back, not rerun.
"""

from __future__ import annotations

import hashlib
import html
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.cell import Cell
from ase.io import read

from pfd.config import RunConfig
from pfd.db import write_json_atomic
from pfd.errors import PFDError
from pfd.evaluate import errors_of, predict
from pfd.progress import Reporter
from pfd.state import RunState
from pfd.structures import read_structures

COLORS = {"DFT": "black", "foundation": "tab:gray", "teacher": "tab:blue"}
COLORS["student"] = "tab:orange"


@dataclass
class Model:
    """One model of the run, built lazily (students load TensorFlow)."""

    name: str
    path: Path | str
    build: Callable[[], Calculator]
    _calc: Calculator | None = None

    @property
    def calc(self) -> Calculator:
        if self._calc is None:
            self._calc = self.build()
        return self._calc

    def fingerprint(self) -> str:
        p = Path(self.path)
        stat = f"{p.stat().st_size}:{p.stat().st_mtime_ns}" if p.exists() else ""
        return f"{self.name}={self.path}:{stat}"


def run_models(config: RunConfig) -> list[Model]:
    """Foundation, teacher and (when distilled) student of a run."""
    from pfd.models import make_backend

    backend = make_backend(config.model)
    run_dir = config.run_dir
    found = backend.resolve(config.model.checkpoint)
    models = [Model("foundation", found, lambda: backend.calculator(found))]
    teacher = run_dir / "final_model.pth"
    if teacher.exists():
        models.append(Model("teacher", teacher, lambda: backend.calculator(teacher)))
    check = run_dir / "student" / "check.json"
    if check.exists():
        from pfd.distill import student_calculator

        student = Path(json.loads(check.read_text())["student"])
        models.append(Model("student", student, lambda: student_calculator(student)))
    return models


class Section:
    """Cache of one section's numbers, valid while its models and settings are."""

    def __init__(self, out: Path, name: str, key: Any) -> None:
        self.path = out / f"{name}.json"
        self.key = hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()

    def load(self) -> tuple[dict, float] | None:
        """The cached numbers and the seconds they took to compute, if valid."""
        if self.path.exists():
            data = json.loads(self.path.read_text())
            if data.get("key") == self.key:
                return data["result"], data.get("seconds", 0.0)
        return None

    def save(self, result: dict, seconds: float) -> dict:
        write_json_atomic(
            self.path, {"key": self.key, "result": result, "seconds": seconds}
        )
        return result


def _save(fig, path: Path) -> None:
    """Write a figure as PNG and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --- errors and parity -----------------------------------------------------------


def errors_section(models: list[Model], datasets: dict[str, list[Atoms]], out: Path):
    """RMSE/MAE per model and data set; parity plots of E/atom, F, stress."""
    plt = _plt()
    result: dict[str, Any] = {}
    for dname, frames in datasets.items():
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
        result[dname] = {}
        for m in models:
            preds = predict(frames, m.calc)
            result[dname][m.name] = errors_of(preds).as_dict()
            e = np.array([[p.energy[0], p.energy[1]] for p in preds])
            n = np.array([p.natoms for p in preds])[:, None]
            f = np.concatenate(
                [np.stack([p.forces[0], p.forces[1]], -1) for p in preds]
            )
            axes[0].scatter(*(e / n).T, s=10, label=m.name, color=COLORS[m.name])
            f = f.reshape(-1, 2)
            axes[1].scatter(*f.T, s=3, label=m.name, color=COLORS[m.name], alpha=0.6)
            s = [np.stack([p.stress[0], p.stress[1]], -1) for p in preds if p.stress]
            if s:
                s = np.concatenate(s) / units.GPa
                axes[2].scatter(*s.T, s=8, label=m.name, color=COLORS[m.name])
        for ax, what in zip(
            axes,
            ("energy (eV/atom)", "force component (eV/Å)", "stress (GPa)"),
            strict=True,
        ):
            lo, hi = ax.get_xlim()
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.set_xlabel(f"DFT {what}")
            ax.set_ylabel(f"model {what}")
        axes[0].legend()
        fig.suptitle(f"parity on {dname} ({len(frames)} frames)")
        _save(fig, out / f"parity_{dname}.png")
    return result


def learning_curve(state: RunState, config: RunConfig, out: Path) -> dict:
    """New-frame errors of each iteration against the DFT labels it was trained on."""
    plt = _plt()
    rows = []
    if state.foundation:
        f = state.foundation
        rows.append((0, 0, f["force_rmse_eV_A"], f["energy_rmse_eV_atom"]))
    rows += [
        (r.iteration, r.n_train, r.force_rmse_eV_A, r.energy_rmse_eV_atom)
        for r in state.iterations
        if r.force_rmse_eV_A is not None
    ]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    if rows:
        x = [r[1] for r in rows]
        ax1.plot(x, [r[2] for r in rows], "o-")
        ax2.plot(x, [1000 * r[3] for r in rows], "o-")
    conv = config.convergence
    ax1.axhline(conv.force_rmse_eV_A, color="red", ls="--", label="threshold")
    ax2.axhline(1000 * conv.energy_rmse_eV_atom, color="red", ls="--")
    ax1.set_ylabel("force RMSE on new DFT frames (eV/Å)")
    ax2.set_ylabel("energy RMSE on new DFT frames (meV/atom)")
    for ax in (ax1, ax2):
        ax.set_xlabel("DFT labels trained on")
        ax.set_yscale("log")
    ax1.legend()
    _save(fig, out / "learning_curve.png")
    keys = ("iteration", "trained_on", "force_rmse_eV_A", "energy_rmse_eV_atom")
    return {"rows": [dict(zip(keys, r, strict=True)) for r in rows]}


# --- equation of state --------------------------------------------------------------


def eos_points(atoms: Atoms, points: int, volume_range: float) -> list[Atoms]:
    """Isotropically scaled copies of ``atoms`` at V0 x (1 ± volume_range)."""
    out = []
    for v in np.linspace(1 - volume_range, 1 + volume_range, points):
        a = atoms.copy()
        a.set_cell(atoms.cell * v ** (1 / 3), scale_atoms=True)
        out.append(a)
    return out


def fit_eos(volumes, energies) -> dict[str, float]:
    """Birch-Murnaghan fit: V0 (Å³/atom basis as given), E0 (eV), B0 (GPa)."""
    from ase.eos import EquationOfState

    v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    return {"V0": float(v0), "E0": float(e0), "B0_GPa": float(b / units.GPa)}


def eos_section(models, structures, label, cfg, out: Path) -> dict:
    """E(V) per structure per model (per atom), DFT points when enabled."""
    plt = _plt()
    result = {}
    for name, atoms in _crystals(structures):
        frames = eos_points(atoms, cfg.points, cfg.volume_range)
        n = len(atoms)
        vols = [f.get_volume() / n for f in frames]
        curves: dict[str, list[float]] = {}
        for m in models:
            curves[m.name] = [_energy(f, m.calc) / n for f in frames]
        if cfg.dft and label is not None:
            curves["DFT"] = [
                label(f, f"eos-{_slug(name)}-{k}").get_potential_energy() / n
                for k, f in enumerate(frames)
            ]
        fits = {k: fit_eos(vols, e) for k, e in curves.items()}
        result[name] = {
            "volumes_A3_atom": vols,
            "energies_eV_atom": curves,
            "fit": fits,
        }
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for k, e in curves.items():
            ax.plot(vols, e, "o-" if k != "DFT" else "s", label=k, color=COLORS[k])
        ax.set_xlabel("volume (Å³/atom)")
        ax.set_ylabel("energy (eV/atom)")
        ax.set_title(f"equation of state: {name}")
        ax.legend()
        _save(fig, out / f"eos_{_slug(name)}.png")
    return result


# --- phonons ---------------------------------------------------------------------


def phonon_bands(atoms: Atoms, calc: Calculator | None, cfg, forces_of=None) -> dict:
    """Phonopy finite displacements; frequencies (THz) along ASE's band path."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell[:],
        scaled_positions=atoms.get_scaled_positions(),
    )
    with warnings.catch_warnings():  # "auto" is what we ask for
        warnings.simplefilter("ignore")
        phonon = Phonopy(
            unit, supercell_matrix=np.diag(cfg.supercell), primitive_matrix="auto"
        )
    phonon.generate_displacements(distance=cfg.displacement_A)
    forces = []
    for k, sc in enumerate(phonon.supercells_with_displacements):
        sup = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions)
        sup.pbc = True
        forces.append(forces_of(sup, k) if forces_of else _forces(sup, calc))
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    # the standard path of the primitive cell phonopy found (e.g. FCC for diamond)
    path = Cell(phonon.primitive.cell).bandpath(npoints=cfg.npoints)
    phonon.run_qpoints([[0.0, 0.0, 0.0]])
    gamma = np.asarray(phonon.qpoints.frequencies[0])
    phonon.run_qpoints(path.kpts)
    freqs = np.asarray(phonon.qpoints.frequencies)
    x, xspecial, labels = path.get_linear_kpoint_axis()
    return {
        "x": x.tolist(),
        "xspecial": list(map(float, xspecial)),
        "labels": labels,
        "frequencies_THz": freqs.tolist(),
        "gamma_THz": gamma.tolist(),
        "n_displacements": len(forces),
    }


def phonon_section(models, structures, label, cfg, out: Path) -> dict:
    plt = _plt()
    result = {}
    for name, atoms in _crystals(structures):
        bands = {m.name: phonon_bands(atoms, m.calc, cfg) for m in models}
        if cfg.dft and label is not None:
            bands["DFT"] = phonon_bands(
                atoms,
                None,
                cfg,
                forces_of=lambda sup, k, n=name: label(
                    sup, f"phonon-{_slug(n)}-{k}"
                ).get_forces(),
            )
        result[name] = bands
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for k, b in bands.items():
            f = np.asarray(b["frequencies_THz"])
            for j in range(f.shape[1]):
                style = "--" if k == "DFT" else "-"
                tag = k if j == 0 else None
                ax.plot(b["x"], f[:, j], style, color=COLORS[k], lw=1, label=tag)
        ref = next(iter(bands.values()))
        for xs in ref["xspecial"]:
            ax.axvline(xs, color="k", lw=0.5)
        ax.set_xticks(ref["xspecial"], [s.replace("G", "Γ") for s in ref["labels"]])
        ax.set_ylabel("frequency (THz)")
        ax.set_title(f"phonons: {name}")
        ax.legend()
        _save(fig, out / f"phonons_{_slug(name)}.png")
    return result


# --- vacancy ---------------------------------------------------------------------


def vacancy_energy(
    atoms: Atoms, calc: Calculator, fmax: float, keep: list | None = None
) -> dict[str, float]:
    """E_f = E(N-1, relaxed) - (N-1)/N E(N): atom 0 removed, positions relaxed.

    ``keep`` (a list) receives the relaxed defect structure.
    """
    from ase.optimize import BFGS

    n = len(atoms)
    perfect = _energy(atoms, calc)
    defect = atoms.copy()
    del defect[0]
    defect.calc = calc
    unrelaxed = defect.get_potential_energy()
    BFGS(defect, logfile=None).run(fmax=fmax, steps=300)
    relaxed = defect.get_potential_energy()
    if keep is not None:
        keep.append(defect.copy())
    scale = (n - 1) / n
    return {
        "natoms": n,
        "unrelaxed_eV": float(unrelaxed - scale * perfect),
        "relaxed_eV": float(relaxed - scale * perfect),
    }


def vacancy_section(models, structures, cfg, label=None) -> dict:
    result = {}
    for atoms in structures:
        species = set(atoms.get_chemical_symbols())
        if not all(atoms.pbc) or (cfg.species is None and len(species) > 1):
            continue
        if cfg.species is not None and cfg.species not in species:
            continue
        sup = _supercell(atoms, cfg.min_atoms)
        if cfg.species is not None:  # the vacancy on the first atom of that species
            first = sup.get_chemical_symbols().index(cfg.species)
            order = [first] + [i for i in range(len(sup)) if i != first]
            sup = sup[order]
        name = _name(atoms)
        relaxed: list[Atoms] = []
        result[name] = {
            m.name: vacancy_energy(
                sup, m.calc, cfg.fmax_eV_A, relaxed if m.name == "teacher" else None
            )
            for m in models
        }
        if cfg.dft and label is not None and relaxed:
            n = len(sup)
            perfect = label(
                sup, f"vacancy-{_slug(name)}-perfect"
            ).get_potential_energy()
            defect = label(relaxed[0], f"vacancy-{_slug(name)}-defect")
            result[name]["DFT"] = {
                "natoms": n,
                "at_teacher_geometry_eV": float(
                    defect.get_potential_energy() - (n - 1) / n * perfect
                ),
            }
    return result


# --- diffusion and RDF ---------------------------------------------------------------


def msd_run(atoms: Atoms, calc, temperature_K, steps, equilibration, dt_fs, seed=0):
    """NVT Langevin MD; MSD (Å²) per species vs time (ps) after equilibration."""
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    system = atoms.copy()
    system.calc = calc
    rng = np.random.default_rng(seed)
    thermalize_momenta(system, temperature_K=temperature_K, rng=rng)
    Stationary(system)
    dyn = Langevin(
        system,
        dt_fs * units.fs,
        temperature_K=temperature_K,
        friction=0.01,
        fixcm=False,
        rng=rng,
    )
    dyn.run(equilibration)
    start = system.get_positions(wrap=False).copy()  # ASE keeps positions unwrapped
    symbols = np.array(system.get_chemical_symbols())
    every = max(1, steps // 50)
    times, msd = [], {s: [] for s in sorted(set(symbols))}
    frames = []
    for k in range(0, steps + 1, every):
        if k:
            dyn.run(every)
        d2 = (
            (system.positions - system.positions.mean(0)) - (start - start.mean(0))
        ) ** 2
        times.append(k * dt_fs / 1000)
        for s in msd:
            msd[s].append(float(d2[symbols == s].sum(1).mean()))
        frames.append(system.copy())
    return np.array(times), {s: np.array(v) for s, v in msd.items()}, frames


def diffusion_coefficient(times_ps, msd_A2) -> float:
    """D (cm²/s) from the slope of the second half of MSD(t) = 6 D t."""
    half = len(times_ps) // 2
    slope = np.polyfit(times_ps[half:], msd_A2[half:], 1)[0]  # Å²/ps
    return float(max(slope, 0.0) / 6 * 1e-4)  # Å²/ps -> cm²/s


def arrhenius(temps, coeffs) -> dict | None:
    """Activation energy (eV) and prefactor from D(T) when two or more D > 0."""
    pts = [(t, d) for t, d in zip(temps, coeffs, strict=True) if d > 0]
    if len(pts) < 2:
        return None
    t, d = np.array(pts).T
    slope, intercept = np.polyfit(1 / (units.kB * t), np.log(d), 1)
    return {"Ea_eV": float(-slope), "D0_cm2_s": float(np.exp(intercept))}


def rdf(frames: list[Atoms], rmax: float, nbins: int = 100) -> tuple[list, list]:
    from ase.geometry.rdf import get_rdf

    curves = [get_rdf(a, rmax, nbins) for a in frames]
    g = np.mean([c[0] for c in curves], axis=0)
    return curves[0][1].tolist(), g.tolist()


def diffusion_section(models, structures, config: RunConfig, out: Path) -> dict:
    plt = _plt()
    cfg = config.report.diffusion
    by_name = {m.name: m for m in models}
    mover = by_name.get("student") or by_name.get("teacher") or models[0]
    temps = cfg.temperatures_K or config.explore.temperatures_K
    atoms = structures[0]
    sup = _supercell(atoms, cfg.min_atoms) if all(atoms.pbc) else atoms
    result: dict[str, Any] = {"model": mover.name, "natoms": len(sup), "runs": {}}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    last_frames = None
    for k, temp in enumerate(temps):
        t, msd, frames = msd_run(
            sup,
            mover.calc,
            temp,
            cfg.steps,
            cfg.equilibration_steps,
            cfg.timestep_fs,
            k,
        )
        coeffs = {s: diffusion_coefficient(t, v) for s, v in msd.items()}
        result["runs"][f"{temp:g}"] = {
            "temperature_K": temp,
            "D_cm2_s": coeffs,
            "times_ps": t.tolist(),
            "msd_A2": {s: v.tolist() for s, v in msd.items()},
        }
        for s, v in msd.items():
            ax1.plot(t, v, label=f"{s} {temp:g} K")
        last_frames = frames
    species = sorted({s for r in result["runs"].values() for s in r["D_cm2_s"]})
    result["arrhenius"] = {
        s: arrhenius(temps, [result["runs"][f"{t:g}"]["D_cm2_s"][s] for t in temps])
        for s in species
    }
    ax1.set_xlabel("time (ps)")
    ax1.set_ylabel("MSD (Å²)")
    ax1.set_title(f"{mover.name} MD, {len(sup)} atoms")
    ax1.legend(fontsize=7)
    # RDF at the highest temperature: the mover vs the teacher (short teacher run)
    rmax = min(6.0, 0.49 * _min_height(sup)) if all(sup.pbc) else 6.0
    r, g = rdf(last_frames[len(last_frames) // 2 :], rmax)
    result["rdf"] = {mover.name: {"r": r, "g": g}}
    ax2.plot(r, g, label=mover.name, color=COLORS[mover.name])
    teacher = by_name.get("teacher")
    if teacher is not None and teacher is not mover:
        _, _, tframes = msd_run(
            sup, teacher.calc, temps[-1], cfg.rdf_steps, 0, cfg.timestep_fs, 99
        )
        r2, g2 = rdf(tframes[len(tframes) // 2 :], rmax)
        result["rdf"]["teacher"] = {"r": r2, "g": g2}
        ax2.plot(r2, g2, label="teacher", color=COLORS["teacher"], ls="--")
    ax2.set_xlabel("r (Å)")
    ax2.set_ylabel(f"g(r) at {temps[-1]:g} K")
    ax2.legend()
    _save(fig, out / "diffusion.png")
    return result


# --- speed -----------------------------------------------------------------------


def md_speed(atoms: Atoms, calc: Calculator, steps: int) -> float:
    """Milliseconds per atom-step of velocity-Verlet MD (after 2 warm-up steps)."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    # moving atoms: a perfect crystal at rest has zero forces, never moves, and a
    # calculator would return its cached result instead of computing
    system = atoms.copy()
    rng = np.random.default_rng(0)
    system.rattle(0.01, rng=rng)
    MaxwellBoltzmannDistribution(system, temperature_K=300, rng=rng)
    system.calc = calc
    dyn = VelocityVerlet(system, timestep=units.fs)
    dyn.run(2)
    t0 = time.perf_counter()
    dyn.run(steps)
    return 1000 * (time.perf_counter() - t0) / steps / len(system)


def speed_section(models, structures, cfg, out: Path) -> dict:
    plt = _plt()
    atoms = structures[0]
    result: dict[str, dict[str, float]] = {}
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m in models:
        rows = {}
        for n in cfg.sizes:
            if m.name != "student" and n > cfg.teacher_max_atoms:
                continue
            sup = _supercell(atoms, n) if all(atoms.pbc) else atoms
            rows[str(len(sup))] = md_speed(sup, m.calc, cfg.steps)
        result[m.name] = rows
        ax.loglog(
            [int(k) for k in rows],
            list(rows.values()),
            "o-",
            label=m.name,
            color=COLORS[m.name],
        )
    ax.set_xlabel("atoms")
    ax.set_ylabel("ms per atom-step (ASE)")
    ax.legend()
    _save(fig, out / "speed.png")
    if "student" in result and "teacher" in result and result["teacher"]:
        teacher = result["teacher"][max(result["teacher"], key=int)]
        student = result["student"][max(result["student"], key=int)]
        result["speedup_student_vs_teacher"] = {"x": teacher / student}
    return result


# --- the report -------------------------------------------------------------------


def write_report(config: RunConfig, report: Reporter | None = None) -> Path:
    """Compute (or reuse) every enabled section; write index.html and report.json."""
    report = report or Reporter()
    rcfg = config.report
    run_dir = config.run_dir
    state = RunState.load(run_dir)
    if not state.finished:
        raise PFDError(
            f"run '{run_dir}' has not finished fine-tuning; run 'pfd run CONFIG' first"
        )
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    models = run_models(config)
    structures = read_structures(config.structures)
    prints = [m.fingerprint() for m in models]
    label = _dft_labeller(config, out)
    datasets = {"dft_run": _labelled(run_dir / "dft.extxyz")}
    if rcfg.test_data is not None:
        if not Path(rcfg.test_data).is_file():
            raise PFDError(f"report.test_data '{rcfg.test_data}' not found")
        datasets["dft_test"] = _labelled(Path(rcfg.test_data))
    datasets = {k: v for k, v in datasets.items() if v}

    numbers: dict[str, Any] = {"models": {m.name: str(m.path) for m in models}}
    seconds: dict[str, float] = {}  # what each section took when computed
    reused: list[str] = []

    def section(name: str, enabled: bool, settings: Any, compute: Callable[[], dict]):
        if not enabled:
            return
        cache = Section(out, name, [prints, settings])
        cached = cache.load()
        if cached is None:
            report.info(f"report: {name}")
            t0 = time.perf_counter()
            result = compute()
            seconds[name] = time.perf_counter() - t0
            cache.save(result, seconds[name])
        else:
            result, seconds[name] = cached
            reused.append(name)
        numbers[name] = result

    section(
        "errors",
        bool(datasets),
        sorted(datasets),
        lambda: errors_section(models, datasets, out),
    )
    numbers["learning_curve"] = learning_curve(state, config, out)
    section(
        "eos",
        rcfg.eos.enabled,
        rcfg.eos.model_dump(),
        lambda: eos_section(models, structures, label, rcfg.eos, out),
    )
    section(
        "phonons",
        rcfg.phonons.enabled,
        rcfg.phonons.model_dump(),
        lambda: phonon_section(models, structures, label, rcfg.phonons, out),
    )
    section(
        "vacancy",
        rcfg.vacancy.enabled,
        rcfg.vacancy.model_dump(),
        lambda: vacancy_section(models, structures, rcfg.vacancy, label),
    )
    section(
        "diffusion",
        rcfg.diffusion.enabled,
        rcfg.diffusion.model_dump(),
        lambda: diffusion_section(models, structures, config, out),
    )
    section(
        "speed",
        rcfg.speed.enabled,
        rcfg.speed.model_dump(),
        lambda: speed_section(models, structures, rcfg.speed, out),
    )
    numbers["seconds"] = seconds
    numbers["reused"] = reused
    write_json_atomic(out / "report.json", numbers)
    (out / "index.html").write_text(render_html(numbers, config, out))
    report.info(f"report: {out / 'index.html'}")
    return out / "index.html"


def _dft_labeller(config: RunConfig, out: Path):
    """``label(atoms, key)``: a DFT job under report/dft/KEY, read back on rerun."""
    from pfd.label import make_labeler
    from pfd.label.runner import label_one

    labeler = make_labeler(config.labeler)
    cfg = config.labeler

    def label(atoms: Atoms, key: str) -> Atoms:
        return label_one(labeler, atoms, out / "dft" / key, cfg.timeout_s, cfg.launcher)

    return label


def _labelled(path: Path) -> list[Atoms]:
    if not path.exists() or not path.stat().st_size:
        return []
    return [a for a in read(path, ":") if a.calc is not None]


def _energy(atoms: Atoms, calc: Calculator) -> float:
    a = atoms.copy()
    a.calc = calc
    return float(a.get_potential_energy())


def _forces(atoms: Atoms, calc: Calculator) -> np.ndarray:
    a = atoms.copy()
    a.calc = calc
    return np.array(a.get_forces())


def _supercell(atoms: Atoms, min_atoms: int) -> Atoms:
    """The smallest n x n x n repetition with at least ``min_atoms`` atoms."""
    n = 1
    while len(atoms) * n**3 < min_atoms:
        n += 1
    return atoms.repeat(n)


def _name(atoms: Atoms) -> str:
    return str(atoms.info.get("name", atoms.get_chemical_formula()))


def _crystals(structures: list[Atoms]):
    """(name, atoms) of each periodic structure."""
    return [(_name(a), a) for a in structures if all(a.pbc)]


def _min_height(atoms: Atoms) -> float:
    """The smallest distance between opposite faces of the cell."""
    cell = np.asarray(atoms.cell)
    vol = abs(np.linalg.det(cell))
    return min(
        vol / np.linalg.norm(np.cross(cell[i], cell[j]))
        for i, j in ((1, 2), (2, 0), (0, 1))
    )


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


# --- HTML ---------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _img(out: Path, name: str) -> str:
    return f'<img src="{name}" alt="{name}">' if (out / name).exists() else ""


def render_html(numbers: dict, config: RunConfig, out: Path) -> str:
    parts = [f"<h1>pfd report: {html.escape(config.name)}</h1>"]
    parts.append(
        "<p>Models: "
        + ", ".join(
            f"<b>{k}</b> {html.escape(v)}" for k, v in numbers["models"].items()
        )
        + "</p>"
    )
    if "errors" in numbers:
        parts.append("<h2>Errors against DFT</h2>")
        for dname, per_model in numbers["errors"].items():
            rows = [
                [
                    m,
                    e["n_frames"],
                    1000 * e["energy_rmse_eV_atom"],
                    1000 * e["energy_mae_eV_atom"],
                    e["force_rmse_eV_A"],
                    e["force_mae_eV_A"],
                    e["stress_rmse_GPa"],
                ]
                for m, e in per_model.items()
            ]
            parts.append(f"<h3>{html.escape(dname)}</h3>")
            parts.append(
                _table(
                    [
                        "model",
                        "frames",
                        "E RMSE meV/atom",
                        "E MAE meV/atom",
                        "F RMSE eV/Å",
                        "F MAE eV/Å",
                        "S RMSE GPa",
                    ],
                    rows,
                )
            )
            parts.append(_img(out, f"parity_{dname}.png"))
    parts.append("<h2>Learning curve</h2>")
    lc = numbers["learning_curve"]["rows"]
    parts.append(
        _table(
            [
                "iteration",
                "DFT labels trained on",
                "F RMSE eV/Å (new frames)",
                "E RMSE eV/atom (new frames)",
            ],
            [list(r.values()) for r in lc],
        )
    )
    parts.append(_img(out, "learning_curve.png"))
    if "eos" in numbers:
        parts.append("<h2>Equation of state (Birch-Murnaghan)</h2>")
        for name, res in numbers["eos"].items():
            rows = [[k, f["V0"], f["E0"], f["B0_GPa"]] for k, f in res["fit"].items()]
            parts.append(f"<h3>{html.escape(name)}</h3>")
            parts.append(_table(["model", "V0 Å³/atom", "E0 eV/atom", "B0 GPa"], rows))
            parts.append(_img(out, f"eos_{_slug(name)}.png"))
    if "phonons" in numbers:
        parts.append("<h2>Phonons (phonopy, finite displacements)</h2>")
        for name, bands in numbers["phonons"].items():
            rows = [
                [
                    k,
                    max(map(max, b["frequencies_THz"])),
                    max(map(abs, b["gamma_THz"][:3])),
                ]
                for k, b in bands.items()
            ]
            parts.append(
                _table(["model", "max freq. THz", "|acoustic at Γ| THz"], rows)
            )
            parts.append(_img(out, f"phonons_{_slug(name)}.png"))
    if "vacancy" in numbers:
        parts.append("<h2>Vacancy formation energy</h2>")
        for name, per_model in numbers["vacancy"].items():
            rows = [
                [
                    k,
                    v["natoms"],
                    v.get("unrelaxed_eV"),
                    v.get("relaxed_eV", v.get("at_teacher_geometry_eV")),
                ]
                for k, v in per_model.items()
            ]
            parts.append(f"<h3>{html.escape(name)}</h3>")
            parts.append(_table(["model", "atoms", "unrelaxed eV", "relaxed eV"], rows))
            parts.append(
                "<p>DFT (when enabled): single points of the perfect supercell and "
                "of the teacher-relaxed vacancy, not a DFT relaxation.</p>"
            )
    if "diffusion" in numbers:
        d = numbers["diffusion"]
        parts.append(f"<h2>Diffusion ({d['model']} MD, {d['natoms']} atoms)</h2>")
        rows = [
            [r["temperature_K"], s, dval]
            for r in d["runs"].values()
            for s, dval in r["D_cm2_s"].items()
        ]
        parts.append(_table(["T (K)", "species", "D (cm²/s)"], rows))
        arr = [[s, a["Ea_eV"], a["D0_cm2_s"]] for s, a in d["arrhenius"].items() if a]
        if arr:
            parts.append(_table(["species", "Ea (eV)", "D0 (cm²/s)"], arr))
        parts.append(_img(out, "diffusion.png"))
    if "speed" in numbers:
        sp = numbers["speed"]
        parts.append("<h2>Speed (ASE, this machine)</h2>")
        rows = [
            [m, n, ms]
            for m, r in sp.items()
            if m != "speedup_student_vs_teacher"
            for n, ms in r.items()
        ]
        parts.append(_table(["model", "atoms", "ms/atom-step"], rows))
        if "speedup_student_vs_teacher" in sp:
            x = sp["speedup_student_vs_teacher"]["x"]
            parts.append(f"<p>student vs teacher: {x:.0f}x faster per atom-step</p>")
        parts.append(_img(out, "speed.png"))
    secs = ", ".join(
        f"{k} {v:.0f} s" + (" (reused)" if k in numbers.get("reused", ()) else "")
        for k, v in numbers["seconds"].items()
    )
    parts.append(f"<p>cost of each section when computed: {secs}</p>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse;margin:8px 0}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
        "img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>pfd report</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    )
