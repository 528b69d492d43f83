"""The report's settings, one model per analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from pfd.config._base import (
    MAX_STEPS,
    MAX_TIMESTEP_FS,
    Multiple,
    _Model,
    check_temperatures,
)
from pfd.config.loop import miller_indices


class EOSReportConfig(_Model):
    """Energy-volume curves (Birch-Murnaghan) of each periodic input structure."""

    enabled: bool = True
    points: int = Field(7, ge=5)
    volume_range: float = Field(0.08, gt=0, lt=0.5, description="V0 x (1 ± this).")
    dft: bool = Field(True, description="DFT at the same volumes (points DFT jobs).")


class PhononReportConfig(_Model):
    """Phonon bands with phonopy (finite displacements) along ASE's band path."""

    enabled: bool = True
    supercell: tuple[Multiple, Multiple, Multiple] = (2, 2, 2)
    displacement_A: float = Field(0.01, gt=0)
    npoints: int = Field(80, ge=10)
    dft: bool = Field(
        False, description="DFT phonons: one DFT job of the supercell per displacement."
    )


class VacancyReportConfig(_Model):
    """Relaxed vacancy formation energy (elemental crystals, or ``species``)."""

    enabled: bool = True
    species: str | None = None
    min_atoms: int = Field(
        32,
        ge=2,
        description="Smallest supercell: the primitive cell repeated closest to a "
        "cube (32 atoms for diamond Si); every model and DFT use this one cell.",
    )
    fmax_eV_A: float = Field(0.02, gt=0)
    max_steps: int = Field(
        300, ge=1, description="BFGS steps at most (a vacancy relaxes in tens)."
    )
    dft: bool = Field(
        True,
        description="DFT reference in the same cell: single points of the perfect "
        "supercell and of the teacher-relaxed vacancy (2 DFT jobs side by side).",
    )
    dft_relax: bool = Field(
        False,
        description="Also relax the vacancy with DFT forces from the teacher's "
        "geometry (BFGS, one DFT job per step, dft_relax_steps at most).",
    )
    dft_relax_steps: int = Field(5, ge=1, description="DFT BFGS steps at most.")


class SurfaceReportConfig(_Model):
    """Surface energy of slabs cut from each crystal, positions relaxed at fixed cell.

    The slabs are those of the structures' ``variants.surfaces`` when the run
    generates any (same layers and vacuum), else ``miller`` here.
    """

    enabled: bool = True
    miller: list[tuple[int, int, int]] | None = Field(
        None,
        description="Miller indices of the conventional cell, [[1, 0, 0]]; default: "
        "the run's variants.surfaces, else [[1, 0, 0]].",
    )
    layers: int = Field(4, ge=2, description="Atomic planes of each slab.")
    vacuum_A: float = Field(10.0, gt=0, description="Vacuum between slab images.")
    min_atoms: int = Field(16, ge=1, description="Slabs repeated in-plane to this.")
    fmax_eV_A: float = Field(0.05, gt=0)
    max_steps: int = Field(60, ge=0, description="BFGS steps at most; 0: unrelaxed.")
    dft: bool = Field(
        True,
        description="DFT single points of the teacher-relaxed slabs and of the bulk "
        "crystal (one DFT job each, side by side).",
    )

    @field_validator("miller", mode="before")
    @classmethod
    def _miller(cls, value: Any) -> Any:
        return None if value is None else miller_indices(value)


class DiffusionReportConfig(_Model):
    """Student MD: mean squared displacement, diffusion, Arrhenius; RDF vs teacher."""

    enabled: bool = True
    temperatures_K: list[float] | None = Field(
        None, description="Default: the exploration's temperatures."
    )
    steps: int = Field(2000, ge=10, le=MAX_STEPS)
    equilibration_steps: int = Field(200, ge=0, le=MAX_STEPS)
    timestep_fs: float = Field(1.0, gt=0, le=MAX_TIMESTEP_FS)
    min_atoms: int = Field(64, ge=1)
    rdf_steps: int = Field(100, ge=10, description="Teacher MD steps for its RDF.")
    friction: float = Field(
        0.01,
        gt=0,
        description="ASE Langevin friction, in inverse ASE time units (0.01: a "
        "velocity memory of ~1 ps).",
    )

    @model_validator(mode="after")
    def _check_temperatures(self) -> DiffusionReportConfig:
        check_temperatures("report.diffusion.temperatures_K", self.temperatures_K or [])
        return self

    solid_msd_fraction: float = Field(
        0.1,
        gt=0,
        le=1,
        description="No diffusion when the final MSD stays below this fraction of "
        "the squared nearest-neighbour distance (vibration about the sites).",
    )
    min_msd_rise: float = Field(
        0.3,
        gt=0,
        le=10,
        description="A linear MSD regime rises by at least this fraction of its "
        "value over the second half of the run; less is a plateau (a solid).",
    )


class SpeedReportConfig(_Model):
    """Time per atom-step of each model at several sizes (ASE)."""

    enabled: bool = True
    sizes: list[int] = Field(default_factory=lambda: [64, 512, 4096])
    teacher_max_atoms: int = Field(512, ge=1, description="Larger only for students.")
    steps: int = Field(5, ge=1)


class RDFReportConfig(_Model):
    """Amorphous structure: g(r) of DFT-labelled quench frames and of an independent
    melt-quench MD with the teacher and the student (same protocol and seed).

    On by default when the exploration quenches (a ramp with start_K > stop_K,
    or a structure's ``variants.melt``); ``report.rdf: {}`` asks for it anyway.
    """

    enabled: bool | None = Field(
        None, description="Default: on when the run's exploration has quench ramps."
    )
    melt_K: float | None = Field(
        None, gt=0, description="Default: the hottest quench ramp's start_K."
    )
    final_K: float | None = Field(
        None, gt=0, description="Default: the coldest quench ramp's stop_K."
    )
    melt_steps: int = Field(
        500,
        ge=1,
        le=MAX_STEPS,
        description="Held at melt_K (1 ps): a small crystal cell superheats; 32 Si "
        "atoms at 1.5x their melting point took 0.5 ps (SevenNet-0) to over 0.8 ps "
        "(a fine-tuned model) to melt. The report says when the melt did not melt.",
    )
    quench_K_per_ps: float = Field(
        2000.0, gt=0, description="Linear cooling rate from melt_K to final_K."
    )
    anneal_steps: int = Field(
        200, ge=1, le=MAX_STEPS, description="At final_K; g(r) of these frames."
    )
    sample_every: int = Field(10, ge=1)
    timestep_fs: float = Field(2.0, gt=0, le=MAX_TIMESTEP_FS)
    friction_fs: float = Field(100.0, gt=0, description="Langevin time constant.")
    seed: int = Field(
        12345, description="Of the independent quench (not the exploration's)."
    )
    rmax_A: float = Field(6.0, gt=0, le=20)
    nbins: int = Field(200, ge=20)
    test_subsets: list[str] = Field(
        default_factory=lambda: ["amorphous", "quench"],
        description="report.test_data frames whose info['subset'] contains one of "
        "these get a g(r) curve each (per subset).",
    )
    dft_max_K: float | None = Field(
        None,
        gt=0,
        description="Only the run's quench frames whose ramp target temperature is "
        "at most this; default: all quench frames.",
    )


class VibrationsReportConfig(_Model):
    """Harmonic vibrations of each non-periodic structure (molecule, cluster):
    relaxed by each model, finite-difference Hessian, frequencies in cm⁻¹."""

    enabled: bool = True
    fmax_eV_A: float = Field(0.005, gt=0, description="BFGS relaxation target.")
    max_steps: int = Field(500, ge=1, description="BFGS steps at most.")
    delta_A: float = Field(
        0.01, gt=0, le=0.1, description="Displacement of the central differences."
    )
    dft: bool | None = Field(
        None,
        description="DFT frequencies at the teacher-relaxed geometry (6N DFT single "
        "points, side by side); default: on for molecules of at most dft_max_atoms.",
    )
    dft_max_atoms: int = Field(6, ge=1, description="See dft (36 DFT jobs at 6).")

    def wants_dft(self, natoms: int) -> bool:
        """Whether a molecule of ``natoms`` gets DFT frequencies."""
        return self.dft if self.dft is not None else natoms <= self.dft_max_atoms


class ReportConfig(_Model):
    """``pfd report``: errors, learning curve and physics, per model, vs DFT."""

    enabled: bool = Field(True, description="Write the report at the end of 'pfd run'.")
    test_data: list[Path] = Field(
        default_factory=list,
        description="Held-out labelled frames (extxyz), relative to the YAML: one "
        "file or a list (each its own errors table, per info['subset']).",
    )
    eos: EOSReportConfig = EOSReportConfig()
    phonons: PhononReportConfig = PhononReportConfig()
    vacancy: VacancyReportConfig = VacancyReportConfig()
    surfaces: SurfaceReportConfig = SurfaceReportConfig()
    diffusion: DiffusionReportConfig = DiffusionReportConfig()
    speed: SpeedReportConfig = SpeedReportConfig()
    vibrations: VibrationsReportConfig = VibrationsReportConfig()
    rdf: RDFReportConfig = RDFReportConfig()

    @field_validator("test_data", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str | Path) else value
