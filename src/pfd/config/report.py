"""The report's settings, one model per analysis."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    Field,
    model_validator,
)

from pfd.config._base import (
    MAX_STEPS,
    MAX_TIMESTEP_FS,
    Multiple,
    _Model,
    check_temperatures,
)


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
    min_atoms: int = Field(32, ge=2, description="Smallest supercell used.")
    fmax_eV_A: float = Field(0.02, gt=0)
    max_steps: int = Field(
        300, ge=1, description="BFGS steps at most (a vacancy relaxes in tens)."
    )
    dft: bool = Field(
        False,
        description="DFT single points of the supercell and of the teacher-relaxed "
        "vacancy (2 DFT jobs of min_atoms atoms; no DFT relaxation).",
    )


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


class ReportConfig(_Model):
    """``pfd report``: errors, learning curve and physics, per model, vs DFT."""

    enabled: bool = Field(True, description="Write the report at the end of 'pfd run'.")
    test_data: Path | None = Field(
        None, description="Held-out labelled frames (extxyz), relative to the YAML."
    )
    eos: EOSReportConfig = EOSReportConfig()
    phonons: PhononReportConfig = PhononReportConfig()
    vacancy: VacancyReportConfig = VacancyReportConfig()
    diffusion: DiffusionReportConfig = DiffusionReportConfig()
    speed: SpeedReportConfig = SpeedReportConfig()
