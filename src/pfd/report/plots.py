"""The report's figures (matplotlib, Agg): one function per figure, PNG out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import units

from pfd.analysis import RDF, DiffusionResult, EOSCurve, PhononBands, Prediction

COLORS = {
    "DFT": "black",
    "foundation": "tab:gray",
    "teacher": "tab:blue",
    "student": "tab:orange",
}


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> None:
    """Write a figure as PNG and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    pyplot().close(fig)


def color(name: str) -> str | None:
    return COLORS.get(name)


def parity(title: str, predictions: dict[str, list[Prediction]], path: Path) -> None:
    """Model against reference: energy per atom, force components, stress."""
    fig, axes = pyplot().subplots(1, 3, figsize=(13, 4.2))
    for name, preds in predictions.items():
        c = color(name)
        e = np.array([p.energy for p in preds])
        n = np.array([p.natoms for p in preds])[:, None]
        axes[0].scatter(*(e / n).T, s=10, label=name, color=c)
        f = np.concatenate([np.stack(p.forces, -1) for p in preds]).reshape(-1, 2)
        axes[1].scatter(*f.T, s=3, label=name, color=c, alpha=0.6)
        s = [np.stack(p.stress, -1) for p in preds if p.stress]
        if s:
            axes[2].scatter(
                *(np.concatenate(s) / units.GPa).T, s=8, label=name, color=c
            )
    whats = ("energy (eV/atom)", "force component (eV/Å)", "stress (GPa)")
    for ax, what in zip(axes, whats, strict=True):
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"DFT {what}")
        ax.set_ylabel(f"model {what}")
    axes[0].legend()
    fig.suptitle(title)
    save(fig, path)


def learning_curve(rows: list[dict], force_target: float, energy_target: float, path):
    """Errors on each iteration's new DFT frames against the labels trained on."""
    fig, (ax1, ax2) = pyplot().subplots(1, 2, figsize=(10, 4))
    if rows:
        x = [r["trained_on"] for r in rows]
        ax1.plot(x, [r["force_rmse_eV_A"] for r in rows], "o-")
        ax2.plot(x, [1000 * r["energy_rmse_eV_atom"] for r in rows], "o-")
    ax1.axhline(force_target, color="red", ls="--", label="threshold")
    ax2.axhline(1000 * energy_target, color="red", ls="--")
    ax1.set_ylabel("force RMSE on new DFT frames (eV/Å)")
    ax2.set_ylabel("energy RMSE on new DFT frames (meV/atom)")
    for ax in (ax1, ax2):
        ax.set_xlabel("DFT labels trained on")
        ax.set_yscale("log")
    ax1.legend()
    save(fig, path)


def eos(name: str, curves: dict[str, EOSCurve], path: Path) -> None:
    fig, ax = pyplot().subplots(figsize=(5.5, 4))
    for k, c in curves.items():
        style = "s" if k == "DFT" else "o-"
        ax.plot(c.volumes_A3_atom, c.energies_eV_atom, style, label=k, color=color(k))
    ax.set_xlabel("volume (Å³/atom)")
    ax.set_ylabel("energy (eV/atom)")
    ax.set_title(f"equation of state: {name}")
    ax.legend()
    save(fig, path)


def phonons(name: str, bands: dict[str, PhononBands], path: Path) -> None:
    fig, ax = pyplot().subplots(figsize=(6.5, 4.2))
    for k, b in bands.items():
        f = np.asarray(b.frequencies_THz)
        style = "--" if k == "DFT" else "-"
        for j in range(f.shape[1]):
            tag = k if j == 0 else None
            ax.plot(b.x, f[:, j], style, color=color(k), lw=1, label=tag)
    ref = next(iter(bands.values()))
    for xs in ref.xspecial:
        ax.axvline(xs, color="k", lw=0.5)
    ax.set_xticks(ref.xspecial, [s.replace("G", "Γ") for s in ref.labels])
    ax.set_ylabel("frequency (THz)")
    ax.set_title(f"phonons: {name}")
    ax.legend()
    save(fig, path)


def diffusion(model: str, result: DiffusionResult, rdfs: dict[str, RDF], path):
    """MSD against time per temperature and species; g(r) at the hottest."""
    fig, (ax1, ax2) = pyplot().subplots(1, 2, figsize=(11, 4))
    for run in result.runs:
        for s, msd in run.msd_A2.items():
            ax1.plot(run.times_ps, msd, label=f"{s} {run.temperature_K:g} K")
    ax1.set_xlabel("time (ps)")
    ax1.set_ylabel("MSD (Å²)")
    ax1.set_title(f"{model} MD, {result.natoms} atoms")
    ax1.legend(fontsize=7)
    for k, g in rdfs.items():
        ax2.plot(g.r, g.g, label=k, color=color(k), ls="-" if k == model else "--")
    ax2.set_xlabel("r (Å)")
    ax2.set_ylabel(f"g(r) at {result.runs[-1].temperature_K:g} K")
    ax2.legend()
    save(fig, path)


def speed(table: dict[str, dict[int, float]], threads: int | None, path) -> None:
    fig, ax = pyplot().subplots(figsize=(5.5, 4))
    for name, rows in table.items():
        sizes = sorted(rows)
        ax.loglog(sizes, [rows[n] for n in sizes], "o-", label=name, color=color(name))
    ax.set_xlabel("atoms")
    ax.set_ylabel("ms per atom-step (ASE)")
    ax.set_title(f"{threads} threads" if threads else "")
    ax.legend()
    save(fig, path)
