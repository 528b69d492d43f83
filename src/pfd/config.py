"""The YAML schema of a run: pydantic models with every default written here, once.

Units are in the field names (``temperature_K``, ``timestep_fs``, ``pressure_bar``).
Code below :func:`load_config` receives these models, never raw dictionaries.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from pfd.errors import ConfigError, PFDError
from pfd.registry import BACKENDS, LABELERS, check_name, load_class


class _Model(BaseModel):
    # every float finite: NaN or inf (YAML '.nan', '.inf', '1e400') is refused
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: Bounds that fit the physics: temperatures in K, pressures in bar (±1 TPa),
#: MD and training steps, supercell multiples.
MAX_TEMPERATURE_K = 1e5
MAX_STEPS = 10**9
MAX_TIMESTEP_FS = 20.0
Pressure = Annotated[float, Field(ge=-1e7, le=1e7)]
Multiple = Annotated[int, Field(ge=1, le=1000)]


def check_temperatures(key: str, values: list[float]) -> None:
    """Temperatures must be > 0 K and below MAX_TEMPERATURE_K."""
    for t in values:
        if not 0 < t < MAX_TEMPERATURE_K:
            raise ValueError(
                f"{key} must be > 0 K and < {MAX_TEMPERATURE_K:g} K, got {t}"
            )


class StructureConfig(_Model):
    """One input structure file (any format ``ase.io.read`` understands)."""

    path: Path = Field(description="Structure file, relative to the YAML file.")
    index: str = Field("-1", description="ase.io index: '-1' last frame, ':' all.")
    supercell: tuple[Multiple, Multiple, Multiple] = (1, 1, 1)
    format: str | None = Field(None, description="ase.io format, guessed if absent.")


def _backend_attribute(backend: str, attribute: str, default: Any) -> Any:
    """A class attribute a backend declares (``supports_replay``, ...)."""
    try:
        cls = load_class(backend, BACKENDS, "model backend")
    except PFDError as err:
        raise ValueError(str(err)) from err
    return getattr(cls, attribute, default)


class ModelConfig(_Model):
    """The foundation model that is fine-tuned."""

    backend: str = Field(
        "sevennet",
        description="'sevennet', 'chgnet', 'dpa' (DeePMD-kit PyTorch models: DPA-2, "
        "DPA-3), 'mace', or an import path 'module:Class' of your own backend (see "
        "pfd.models.ForceFieldBackend).",
    )
    checkpoint: str = Field(
        "",
        description="A checkpoint shipped with the backend or a path to a local "
        "file; default: the backend's default_checkpoint ('7net-0' for sevennet, "
        "'chgnet-0.3.0' for chgnet).",
    )
    head: str | None = Field(
        None,
        description="For a multi-head model: the head to start from, e.g. "
        "'MP_traj_v024_alldata_mixu' of a multi-task DPA-3, or the modality of a "
        "multi-fidelity SevenNet ('PBE' or 'R2SCAN' for 7net-mf-0; default: the "
        "checkpoint's own default).",
    )
    python: str | None = Field(
        None,
        description="For backends that may live in another environment (mace): "
        "the python that has the model's package, e.g. '.venv-mace/bin/python'.",
    )
    device: str = "cpu"
    threads: int = Field(2, ge=1, description="torch threads for training and MD.")

    @model_validator(mode="after")
    def _check_backend(self) -> ModelConfig:
        check_name(self.backend, BACKENDS, "backend")
        if not self.checkpoint:
            raise ValueError(
                f"model.checkpoint is required for backend '{self.backend}'"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_checkpoint(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("checkpoint"):
            backend = data.get("backend", "sevennet")
            try:  # an unknown or unloadable backend: its own error follows
                default = _backend_attribute(backend, "default_checkpoint", None)
            except ValueError:
                default = None
            data = {**data, "checkpoint": default or ""}
        return data


class FineTuneConfig(_Model):
    """How the foundation model is trained on the DFT frames (each iteration)."""

    epochs: int = Field(40, ge=1)
    batch_size: int = Field(4, ge=1)
    learning_rate: float = Field(0.002, gt=0)
    lr_decay: float = Field(
        0.95, gt=0, le=1, description="Per-epoch exponential decay."
    )
    force_weight: float = Field(1.0, ge=0)
    stress_weight: float = Field(0.01, ge=0)
    huber_delta: float | None = Field(
        None,
        gt=0,
        description="δ of the Huber loss of backends that train with one; default: "
        "the trainer's own, 0.01 for SevenNet (errors in eV/atom, eV/Å, kBar) and "
        "0.1 for CHGNet (eV/atom, eV/Å, GPa).",
    )
    refit_e0: bool = Field(
        True, description="Refit per-element reference energies before training."
    )
    from_foundation: bool = Field(
        True,
        description="Each iteration starts from the foundation model (True) or "
        "from the previous iteration's model (False).",
    )
    replay_data: Path | None = Field(
        None,
        description="Backends that support replay (mace): an extxyz of the "
        "foundation model's own training data (e.g. a few thousand MPtrj frames, "
        "energies at the foundation's energy zero in info 'REF_energy', forces "
        "in 'REF_forces'), "
        "replayed in MACE's multi-head fine-tuning so the model keeps what it knew; "
        "relative to the YAML.",
    )


class LabelerConfig(_Model):
    """The reference (DFT) calculator that labels frames."""

    code: str = Field(
        "gpaw",
        description="'gpaw', 'qe', 'cp2k', 'vasp', 'abacus', 'ase' (with "
        "labeler.calculator), or an import path 'module:Class' of your own labeller "
        "(see pfd.label.Labeler).",
    )
    calculator: str | None = Field(
        None,
        description="For code 'ase': an import path 'module:Class' of any ASE "
        "calculator, e.g. 'ase.calculators.emt:EMT'.",
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for the calculator; for GPAW they override "
        "the preset (PW 350 eV, PBE, k-point density 2.0/Å⁻¹, Fermi-Dirac 0.05 eV); "
        "for qe, cp2k, vasp and abacus they override that code's preset.",
    )
    command: str | None = Field(
        None,
        description="How to start a command-line DFT code (qe, cp2k, vasp, abacus), "
        "e.g. "
        "'mpirun -n 64 pw.x'; default: the code's serial binary. How to run, kept "
        "apart from what the labeller writes and reads.",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment variables for each DFT job "
        "(e.g. OMP_NUM_THREADS, VASP_PP_PATH).",
    )
    workers: int = Field(
        0, ge=0, description="Parallel DFT jobs; 0 means one per CPU core."
    )
    timeout_s: float | None = Field(None, gt=0, description="Per-frame time limit.")
    launcher: str | None = Field(
        None,
        description="Command prefix for each DFT job, e.g. 'mpirun -n 32' or "
        "'srun -n 32' (how to run, kept apart from what the labeller writes).",
    )
    allow_mixed: bool = Field(
        False,
        description="Train on labels made with different codes or settings (their "
        "energy zeros differ: only for data you have made comparable).",
    )
    max_attempts: int = Field(2, ge=1, description="Tries per frame before giving up.")
    max_failed_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Stop the run if more than this share of an iteration fails.",
    )

    @field_validator("code")
    @classmethod
    def _check_code(cls, code: str) -> str:
        check_name(code, LABELERS, "labeler code")
        return code

    @model_validator(mode="after")
    def _check_calculator(self) -> LabelerConfig:
        if self.code == "ase" and not self.calculator:
            raise ValueError(
                "labeler.code 'ase' needs labeler.calculator, "
                "e.g. 'ase.calculators.emt:EMT'"
            )
        return self


class InitialConfig(_Model):
    """The first DFT set: perturbed copies of the input structures."""

    frames_per_structure: int = Field(4, ge=1)
    displacement_A: float = Field(
        0.05, ge=0, description="Gaussian std of atom shifts."
    )
    strain: float = Field(0.03, ge=0, description="Max symmetric strain component.")


class RampConfig(_Model):
    """A temperature ramp (heating, melt-and-quench): start to stop over steps."""

    start_K: float = Field(gt=0, lt=MAX_TEMPERATURE_K)
    stop_K: float = Field(gt=0, lt=MAX_TEMPERATURE_K)
    steps: int = Field(ge=1, le=MAX_STEPS)


class GuardConfig(_Model):
    """Stop a trajectory that goes wrong; frames before it are kept."""

    min_distance_factor: float = Field(
        0.6, gt=0, description="Fraction of the sum of covalent radii."
    )
    max_temperature_factor: float = Field(
        3.0, gt=1, description="Stop above this multiple of the target temperature."
    )
    max_energy_jump_eV_atom: float = Field(
        1.0, gt=0, description="Stop if E/atom jumps by more than this in one sample."
    )


class ExploreConfig(_Model):
    """MD with the current model on perturbed copies of the structures."""

    temperatures_K: list[float] = Field(default_factory=lambda: [300.0])
    pressures_bar: list[Pressure | None] = Field(
        default_factory=lambda: [None],
        description="None (null) means NVT; a number means NPT at that pressure.",
    )
    ramps: list[RampConfig] = Field(default_factory=list)
    steps: int = Field(300, ge=1, le=MAX_STEPS)
    timestep_fs: float = Field(2.0, gt=0, le=MAX_TIMESTEP_FS)
    sample_every: int = Field(10, ge=1)
    friction_fs: float = Field(100.0, gt=0, description="Langevin time constant.")
    barostat_fs: float = Field(1000.0, gt=0, description="NPT cell time constant.")
    workers: int = Field(
        0, ge=0, description="Trajectories run side by side; 0 means one per core."
    )
    displacement_A: float = Field(0.03, ge=0)
    strain: float = Field(0.02, ge=0)
    guards: GuardConfig = GuardConfig()

    @model_validator(mode="after")
    def _check(self) -> ExploreConfig:
        if not self.temperatures_K and not self.ramps:
            raise ValueError("explore needs temperatures_K or ramps")
        check_temperatures("explore.temperatures_K", self.temperatures_K)
        if not self.pressures_bar:
            raise ValueError(
                "explore.pressures_bar must not be empty; use [null] for NVT"
            )
        return self


class SelectConfig(_Model):
    """Which explored frames are worth a DFT label."""

    method: Literal["entropy", "random"] = "entropy"
    max_per_iteration: int = Field(8, ge=1)
    stratify: bool = Field(
        True, description="Spread the picks over the MD conditions (T, P, ramps)."
    )
    min_distance_A: float = Field(
        0.0, ge=0, description="Drop frames with a closer pair (0: use guard factor)."
    )
    max_cell_angle_deviation_deg: float = Field(
        30.0, gt=0, description="Drop cells sheared further than this from the input."
    )
    quests_k: int = Field(32, ge=1)
    quests_cutoff_A: float = Field(5.0, gt=0)
    quests_bandwidth: float = Field(0.015, gt=0)


class ConvergenceConfig(_Model):
    """The loop stops when the current model predicts unseen DFT frames this well."""

    force_rmse_eV_A: float = Field(0.05, gt=0)
    energy_rmse_eV_atom: float = Field(0.005, gt=0)
    max_iterations: int = Field(5, ge=1)


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

    @model_validator(mode="after")
    def _check_temperatures(self) -> DistillConfig:
        check_temperatures("distill.temperatures_K", self.temperatures_K or [])
        return self


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


class ResourceConfig(_Model):
    """Where one kind of task runs (a Parsl executor label) and what it may use."""

    executor: str = Field(
        "local", description="Label of an executor in the Parsl config."
    )
    cores: int = Field(1, ge=1, description="Cores per task (informational for Parsl).")
    mpi: bool = False


class ResourcesConfig(_Model):
    """Resources per kind of task: DFT labels, MD trajectories, trainings."""

    dft: ResourceConfig = ResourceConfig()
    md: ResourceConfig = ResourceConfig()
    train: ResourceConfig = ResourceConfig()

    def __getitem__(self, kind: str) -> ResourceConfig:
        return getattr(self, kind)


class ExecutionConfig(_Model):
    """How tasks are run: an embedded local pool (default) or Parsl."""

    engine: Literal["local", "parsl"] = "local"
    config: str | None = Field(
        None,
        description="For parsl: a .py file defining 'config = Config(...)' "
        "(relative to the YAML file), or the preset 'local-htex'.",
    )
    resources: ResourcesConfig = ResourcesConfig()


class RunConfig(_Model):
    """A whole PFD run, as written in one YAML file."""

    name: str = "pfd"
    run_dir: Path = Field(Path("runs/pfd"), description="Relative to the YAML file.")
    seed: int = 0
    structures: list[StructureConfig] = Field(min_length=1)
    model: ModelConfig = Field(default_factory=ModelConfig)
    finetune: FineTuneConfig = FineTuneConfig()
    labeler: LabelerConfig = LabelerConfig()
    initial: InitialConfig = InitialConfig()
    explore: ExploreConfig = ExploreConfig()
    select: SelectConfig = SelectConfig()
    convergence: ConvergenceConfig = ConvergenceConfig()
    distill: DistillConfig = DistillConfig()
    report: ReportConfig = ReportConfig()
    execution: ExecutionConfig = ExecutionConfig()

    @model_validator(mode="after")
    def _check_replay(self) -> RunConfig:
        backend = self.model.backend
        if self.finetune.replay_data is None or _backend_attribute(
            backend, "supports_replay", False
        ):
            return self
        able = [n for n in BACKENDS if _backend_attribute(n, "supports_replay", 0)]
        raise ValueError(
            "finetune.replay_data (multi-head replay) is for model.backend "
            f"{', '.join(repr(n) for n in able)}; backend '{backend}' fine-tunes "
            "without it: remove the key"
        )


# Settings whose change would invalidate what a run directory already holds
# (dotted paths); how jobs run (workers, timeouts, launcher, threads) may change.
FROZEN_ON_RESUME: tuple[str, ...] = (
    "structures",
    "labeler.code",
    "labeler.calculator",
    "labeler.parameters",
    "model.backend",
    "model.checkpoint",
    "model.head",
    "initial",
    "seed",
)


def _format_validation_error(err: ValidationError, path: Path) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key '{where}'; check its spelling against the docs"
    if kind == "missing":
        return f"{path}: required key '{where}' is missing"
    msg = first["msg"].removeprefix("Value error, ")
    return f"{path}: invalid value for '{where}': {msg}"


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{line}; fix the syntax") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return raw


def load_distill_settings(path: str | Path, base: DistillConfig) -> DistillConfig:
    """The ``distill`` settings of a YAML file.

    A whole run's YAML gives its own ``distill`` section; a file holding only a
    ``distill:`` section updates ``base`` (the run's recorded settings) key by
    key, e.g. ``distill: {student: {steps: 80000}}`` for a longer training.
    """
    path = Path(path)
    raw = _read_yaml(path)
    if set(raw) - {"distill"}:
        return load_config(path).distill
    try:
        merged = deep_merge(base.model_dump(), raw.get("distill") or {})
        return DistillConfig.model_validate(merged)
    except ValidationError as err:
        message = _format_validation_error(err, path)
        raise ConfigError(message.replace("'", "'distill.", 1)) from err


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML file into a :class:`RunConfig`, resolving relative paths.

    Raises
    ------
    ConfigError
        With a one-line message naming the file and the offending key.
    """
    path = Path(path)
    raw = _read_yaml(path)
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, path)) from err
    base = path.resolve().parent
    structures = [
        s.model_copy(update={"path": (base / s.path).resolve()})
        for s in config.structures
    ]
    updates: dict[str, Any] = {
        "structures": structures,
        "run_dir": (base / config.run_dir).resolve(),
    }
    if config.report.test_data is not None:
        updates["report"] = config.report.model_copy(
            update={"test_data": (base / config.report.test_data).resolve()}
        )
    if config.finetune.replay_data is not None:
        replay = (base / config.finetune.replay_data).resolve()
        if not replay.is_file():
            raise ConfigError(
                f"finetune.replay_data '{replay}' not found; give the extxyz of the "
                "foundation model's training frames, or remove the key"
            )
        updates["finetune"] = config.finetune.model_copy(update={"replay_data": replay})
    parsl_cfg = config.execution.config
    if parsl_cfg and parsl_cfg.endswith(".py"):
        updates["execution"] = config.execution.model_copy(
            update={"config": str((base / parsl_cfg).resolve())}
        )
    # A file next to the YAML or a path-like name ('m.pth', 'models/m') is a path
    # relative to the YAML; a bare name ('7net-0', 'chgnet-0.3.0': a version is
    # no file suffix) is left for the backend to resolve among its shipped models.
    ckpt = Path(config.model.checkpoint)
    suffix = ckpt.suffix[1:]
    if (base / ckpt).is_file() or "/" in str(ckpt) or (suffix and not suffix.isdigit()):
        updates["model"] = config.model.model_copy(
            update={"checkpoint": str((base / ckpt).resolve())}
        )
    # model.python: a path relative to the YAML; made absolute, not resolved (a
    # venv's python is a link to the base interpreter, which lacks the venv)
    python = config.model.python
    if python and "/" in python and not Path(python).is_absolute():
        model = updates.get("model", config.model)
        absolute = os.path.normpath(base / python)
        updates["model"] = model.model_copy(update={"python": absolute})
    return config.model_copy(update=updates)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in, recursively for nested mappings."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """A JSON-serialisable dict of the config (for the run directory's record)."""
    return config.model_dump(mode="json")
