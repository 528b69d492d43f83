"""The report's molecule section: harmonic vibrations of each non-periodic structure.

Every model relaxes the molecule (or cluster) and gives its frequencies
(:mod:`pfd.analysis.vibrations`); with ``report.vibrations.dft`` (default: on
up to 6 atoms) DFT gives the Hessian at the teacher-relaxed geometry, 6N single
points under ``report/dft/vib-NAME-k`` started side by side while the models
compute, read back on a rerun. EOS, phonons and vacancy are crystal sections:
a run of molecules skips them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from pfd.analysis._common import structure_name
from pfd.analysis.vibrations import (
    compare_frequencies,
    displaced,
    frequencies_at,
    molecule_vibrations,
)
from pfd.config.report import VibrationsReportConfig
from pfd.report import plots
from pfd.report.dft import DFTJobs, JobCalculator
from pfd.report.models import Model
from pfd.report.sections import slug

#: the model whose relaxed geometry DFT's Hessian is taken at, in this order
GEOMETRY_FROM = ("teacher", "foundation")


def molecules(structures: list[Atoms]) -> list[tuple[str, Atoms]]:
    """(name, atoms) of each non-periodic structure."""
    return [(structure_name(a), a) for a in structures if not any(a.pbc)]


def vibrations_section(
    models: list[Model],
    structures: list[Atoms],
    settings: VibrationsReportConfig,
    jobs: DFTJobs | None,
    out: Path,
) -> dict:
    """Per molecule: each model's relaxed frequencies, DFT's where asked,
    and each model against the reference (DFT, else the teacher)."""
    result = {}
    for name, atoms in molecules(structures):
        args = (settings.fmax_eV_A, settings.max_steps, settings.delta_A)
        found = {m.name: molecule_vibrations(m, atoms, *args) for m in models}
        entry: dict = {
            "natoms": len(atoms),
            "models": {k: v.to_dict() for k, v in found.items()},
        }
        spectra = {k: v.frequencies_cm1 for k, v in found.items()}
        source = next((k for k in GEOMETRY_FROM if k in found), None)
        if jobs is not None and source and settings.wants_dft(len(atoms)):
            geometry = atoms.copy()
            geometry.positions = np.array(found[source].positions_A)
            spectra["DFT"] = _dft_frequencies(jobs, name, geometry, settings.delta_A)
            entry["DFT"] = {"at_geometry_of": source, "frequencies_cm1": spectra["DFT"]}
        reference = "DFT" if "DFT" in spectra else "teacher"
        if reference in spectra:
            entry["reference"] = reference
            entry["against_reference"] = {
                k: compare_frequencies(v, spectra[reference])
                for k, v in spectra.items()
                if k != reference
            }
        _plot(name, spectra, out / f"vibrations_{slug(name)}.png")
        result[name] = entry
    return result


def _dft_frequencies(
    jobs: DFTJobs, name: str, geometry: Atoms, delta_A: float
) -> list[float]:
    """DFT's frequencies at ``geometry``: its 6N jobs start at once, side by side."""
    dft = JobCalculator(jobs, f"vib-{slug(name)}")
    dft.prefetch(displaced(geometry, delta_A))
    return [float(f) for f in frequencies_at(geometry, dft, delta_A)]


def _plot(name: str, spectra: dict[str, list[float]], path: Path) -> None:
    """A stick spectrum per model (rows), imaginary modes drawn below zero."""
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(7, 1 + 0.6 * len(spectra)))
    for row, (model, freqs) in enumerate(spectra.items()):
        ax.vlines(freqs, row - 0.35, row + 0.35, color=plots.color(model), lw=1.5)
    ax.set_yticks(range(len(spectra)), list(spectra))
    ax.axvline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("harmonic frequency (cm⁻¹); imaginary < 0")
    ax.set_title(f"vibrations of {name}: models at their minimum, DFT at the teacher's")
    plots.save(fig, path)
