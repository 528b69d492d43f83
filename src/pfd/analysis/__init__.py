"""Analyses of a force field, each a function of (model, structures, settings).

A model is an ASE calculator or a zero-argument function that builds one;
structures are ASE ``Atoms``; settings are the report's config models
(:class:`pfd.config.EOSReportConfig` ...). Each returns a dataclass with
``to_dict()``. None needs a run directory: ``pfd.report`` runs them for the
models of a run, caches and plots them.
"""

from __future__ import annotations

from pfd.analysis._common import CalculatorSource, as_calculator
from pfd.analysis.diffusion import (
    RDF,
    ArrheniusFit,
    DiffusionFit,
    DiffusionResult,
    DiffusionRun,
    Trajectory,
    arrhenius,
    diffusion,
    fit_diffusion,
    md_rdf,
    msd_run,
    nearest_neighbour_distance,
    rdf,
)
from pfd.analysis.eos import EOSCurve, EOSFit, eos_points, equation_of_state, fit_eos
from pfd.analysis.errors import (
    Errors,
    Prediction,
    errors_of,
    evaluate,
    evaluate_by_subset,
    predict,
)
from pfd.analysis.phonons import PhononBands, phonon_bands
from pfd.analysis.speed import SpeedResult, compare_speed, md_speed, speed_cells
from pfd.analysis.surface import (
    SurfaceEnergy,
    slab_energy,
    surface_energies,
    surface_slabs,
)
from pfd.analysis.vacancy import (
    Vacancy,
    vacancy_at,
    vacancy_energy,
    vacancy_formation,
    vacancy_supercell,
)

__all__ = [
    "RDF",
    "ArrheniusFit",
    "CalculatorSource",
    "DiffusionFit",
    "DiffusionResult",
    "DiffusionRun",
    "EOSCurve",
    "EOSFit",
    "Errors",
    "PhononBands",
    "Prediction",
    "SpeedResult",
    "SurfaceEnergy",
    "Trajectory",
    "Vacancy",
    "arrhenius",
    "as_calculator",
    "compare_speed",
    "diffusion",
    "eos_points",
    "equation_of_state",
    "errors_of",
    "evaluate",
    "evaluate_by_subset",
    "fit_diffusion",
    "fit_eos",
    "md_rdf",
    "md_speed",
    "msd_run",
    "nearest_neighbour_distance",
    "phonon_bands",
    "predict",
    "rdf",
    "slab_energy",
    "speed_cells",
    "surface_energies",
    "surface_slabs",
    "vacancy_at",
    "vacancy_energy",
    "vacancy_formation",
    "vacancy_supercell",
]
