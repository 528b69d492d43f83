"""Distillation's settings: teacher data and the student."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    StringConstraints,
    model_validator,
)

from pfd.config._base import (
    MAX_STEPS,
    Multiple,
    Pressure,
    _Model,
    check_temperatures,
)
from pfd.config.loop import StructureExploreConfig, VariantsConfig

_AUTO_SEL = r"^auto(:\d+(\.\d+)?)?$"


class StudentConfig(_Model):
    """The DeePMD-kit ``se_e2_a`` student (TensorFlow backend) and its training."""

    type_map: list[str] | None = Field(
        None, description="Element order of the student; default: the structures'."
    )
    rcut_A: float = Field(6.0, gt=0)
    rcut_smth_A: float = Field(0.5, ge=0)
    sel: list[int] | Annotated[str, StringConstraints(pattern=_AUTO_SEL)] = Field(
        "auto",
        description="Neighbours per type, or 'auto' / 'auto:FACTOR': the most "
        "counted in the teacher's frames times FACTOR (1.1, as DeePMD-kit).",
    )
    embedding: list[int] = Field(default_factory=lambda: [16, 32, 64])
    axis_neuron: int = Field(8, ge=1)
    fitting: list[int] = Field(default_factory=lambda: [64, 64, 64])
    steps: int = Field(
        20000, ge=1, le=MAX_STEPS, description="Training steps (batches)."
    )
    batch_size: int | Literal["auto"] = "auto"
    # DeePMD-kit's usual loss weights with a faster learning rate: on the Si
    # example's teacher data this halved the steps for the same force error
    # (see benchmarks/README.md, "Student training")
    start_lr: float = Field(3e-3, gt=0)
    stop_lr: float = Field(1e-5, gt=0)
    start_pref_e: float = 0.02
    limit_pref_e: float = 1.0
    start_pref_f: float = 1000.0
    limit_pref_f: float = 1.0
    start_pref_v: float = 0.02
    limit_pref_v: float = 1.0
    compress: bool = Field(True, description="Tabulate the embedding net (faster).")
    refit_bias: bool = Field(
        True,
        description="After training, shift the per-element energy bias to the "
        "least-squares fit of the training energies (dp change-bias).",
    )

    @model_validator(mode="after")
    def _check(self) -> StudentConfig:
        if self.rcut_smth_A >= self.rcut_A:
            raise ValueError("student.rcut_smth_A must be smaller than rcut_A")
        if self.stop_lr > self.start_lr:
            raise ValueError("student.stop_lr must not exceed start_lr")
        factor = self.sel.partition(":")[2] if isinstance(self.sel, str) else ""
        if factor and float(factor) < 1:
            raise ValueError("student.sel 'auto:FACTOR' needs FACTOR >= 1")
        return self


class ActiveConfig(_Model):
    """Teacher-checked active learning of the student (after the committee).

    Each round: student MD (ASE) on larger cells and for longer than the
    teacher's data; the frames the committee disagrees on most (and a few at
    random) are labelled by the teacher and added; every member retrains from
    its checkpoint. It stops when the student's force error against the teacher
    on fresh student-MD frames (never trained on) is below the target.
    """

    rounds: int = Field(
        0,
        ge=0,
        le=100,
        description="Rounds at most; 0 (default): off, since each round costs "
        "student MD, teacher labels and a retraining of every committee member "
        "(minutes per round on 2 cores).",
    )
    frames_per_round: int = Field(
        20, ge=1, description="Teacher-labelled frames added to the training."
    )
    random_fraction: float = Field(
        0.2, ge=0, le=1, description="Share of them picked at random, not by deviation."
    )
    fresh_frames: int = Field(
        10, ge=1, description="Other student-MD frames labelled to check the student."
    )
    steps: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="Student MD steps (3x distill.steps)."
    )
    supercell_multiplier: int = Field(
        2, ge=1, le=16, description="Each of distill.supercells this many times."
    )
    force_rmse_eV_A: float | None = Field(
        None,
        gt=0,
        description="Stop below this student-vs-teacher force RMSE on fresh "
        "student-MD frames; default 1.5x the student's held-out error.",
    )
    retrain_steps: int = Field(
        2000, ge=1, le=MAX_STEPS, description="Training steps per member per round."
    )
    retrain_start_lr: float = Field(
        1e-3, gt=0, description="Learning rate retraining starts from (then decays)."
    )


class DistillConfig(_Model):
    """Phase 2: the teacher labels many frames, a small student learns them."""

    enabled: bool = Field(True, description="Distil after fine-tuning in 'pfd run'.")
    temperatures_K: list[float] | None = Field(
        None,
        description="Teacher MD temperatures; default: the exploration's, widened "
        "by one at half the lowest and one at 1.2x the highest.",
    )
    pressures_bar: list[Pressure | None] | None = Field(
        None, description="Default: the exploration's pressures and NVT."
    )
    supercells: list[tuple[Multiple, Multiple, Multiple]] = Field(
        default_factory=lambda: [(1, 1, 1)],
        description="Supercells of each structure to run MD on (several sizes).",
    )
    steps: int = Field(400, ge=1, le=MAX_STEPS, description="MD steps per trajectory.")
    sample_every: int = Field(5, ge=1)
    variants: VariantsConfig | None = Field(
        None,
        description="Structure variants of each structure for the teacher's MD "
        "(vacancies, surfaces, phases, melt; no DFT cost): the student learns the "
        "teacher where users go. Default: the variants the structures' entries ask "
        "the loop to explore; {} for none.",
    )
    variant_conditions: StructureExploreConfig | None = Field(
        None,
        description="The teacher's MD conditions on the variants (temperatures_K, "
        "pressures_bar, steps), to keep them cheaper than the structures' grid: "
        "{temperatures_K: [500, 1500], pressures_bar: [null]}; a key left out is "
        "the distillation's. A slab stays NVT, the melt runs its own ramps.",
    )
    rattles_per_frame: int = Field(
        1,
        ge=0,
        description="Extra copies of each sampled frame with shifted atoms and a "
        "strained cell, labelled by the teacher (cheap diversity).",
    )
    rattle_A: float = Field(0.05, ge=0)
    rattle_strain: float = Field(0.02, ge=0)
    max_frames: int = Field(
        4000, ge=2, description="Frames kept for the student (evenly over the MD)."
    )
    test_fraction: float = Field(0.1, gt=0, lt=1)
    workers: int = Field(0, ge=0, description="Trajectories side by side; 0: cores.")
    student: StudentConfig = StudentConfig()
    target_force_rmse_eV_A: float | None = Field(
        None,
        gt=0,
        description="Student-vs-teacher force RMSE to reach on held-out frames; "
        "if missed, the worst-predicted unused frames are added and it retrains.",
    )
    max_rounds: int = Field(1, ge=1, description="Training rounds at most.")
    add_per_round: int = Field(200, ge=1)
    lammps_atoms: int = Field(
        4000, ge=1, description="About how many atoms the ready LAMMPS input runs."
    )
    lammps_steps: int = Field(
        10000, ge=1, description="MD steps of the ready LAMMPS input (in.lammps)."
    )
    committee: int = Field(
        4,
        ge=1,
        le=64,
        description="Students trained with different seeds; the first is the one "
        "shipped, their disagreement (DeePMD's max force deviation per frame) "
        "flags frames it cannot be trusted on. 1: no committee.",
    )
    committee_steps: int | None = Field(
        None,
        ge=1,
        le=MAX_STEPS,
        description="Training steps of members 2..N; default: the student's steps.",
    )
    deviation_threshold_eV_A: float | None = Field(
        None,
        gt=0,
        description="Max force deviation above which a frame is flagged; default: "
        "2x its 95th percentile on the held-out teacher frames.",
    )
    active: ActiveConfig = ActiveConfig()

    @model_validator(mode="after")
    def _check(self) -> DistillConfig:
        check_temperatures("distill.temperatures_K", self.temperatures_K or [])
        if self.committee < 2 and self.deviation_threshold_eV_A is not None:
            raise ValueError(
                f"distill.deviation_threshold_eV_A needs a committee of 2 or more "
                f"students to measure a deviation (committee is {self.committee}); "
                "set distill.committee: 2 or more, or drop the threshold"
            )
        if self.active.rounds and self.committee < 2:
            raise ValueError(
                "teacher-checked learning picks frames by committee deviation: "
                "set distill.committee >= 2 (or distill.active.rounds: 0)"
            )
        return self
