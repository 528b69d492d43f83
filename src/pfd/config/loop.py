"""The fine-tuning loop's settings: structures, model, training, DFT, MD, selection."""

from __future__ import annotations

from numbers import Integral
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from pfd.config._base import (
    MAX_STEPS,
    MAX_TEMPERATURE_K,
    MAX_TIMESTEP_FS,
    Multiple,
    Pressure,
    _Model,
    check_temperatures,
)
from pfd.errors import ConfigError, PFDError
from pfd.registry import BACKENDS, LABELERS, check_name, load_class


def miller_index(value: Any) -> tuple[int, int, int]:
    """Check one Miller index: three integers, not all zero (``[1, 1, 1]``)."""
    items = list(value) if isinstance(value, list | tuple | np.ndarray) else []
    if (
        len(items) != 3
        or not all(isinstance(h, Integral) and not isinstance(h, bool) for h in items)
        or not any(items)
    ):
        raise ConfigError(
            f"bad Miller index {value!r}: give three integers, not all zero, "
            "e.g. [1, 1, 1]"
        )
    return (int(items[0]), int(items[1]), int(items[2]))


def miller_indices(value: Any) -> list[tuple[int, int, int]]:
    """Check a list of Miller indices (a field validator's: ValueError if bad)."""
    if not isinstance(value, list | tuple):
        raise ValueError(
            f"give a list of Miller indices, e.g. [[1, 1, 1]], not {value!r}"
        )
    try:
        return [miller_index(v) for v in value]
    except ConfigError as err:
        raise ValueError(str(err)) from None


class VariantsConfig(_Model):
    """Which variants of one structure to generate and explore (all off by default).

    Each variant is explored, selected and labelled like a structure of its own
    (see :mod:`pfd.variants`); ``variants: {vacancies: true, surfaces: [[1, 1, 1]],
    melt: true}`` under a structure asks for them.
    """

    vacancies: bool = Field(False, description="One vacancy per distinct site.")
    interstitials: list[str] | bool = Field(
        False, description="True: each element of the structure; or a list of them."
    )
    max_interstitial_sites: int = Field(2, ge=1, description="Per inserted element.")
    surfaces: list[tuple[int, int, int]] = Field(
        default_factory=list, description="Miller indices: [[1, 0, 0], [1, 1, 1]]."
    )
    layers: int = Field(4, ge=1, description="Atomic planes of each slab.")
    vacuum_A: float = Field(10.0, gt=0, description="Vacuum between slab images.")
    phases: int = Field(0, ge=0, description="Random phases kept (pyxtal + relax).")
    phase_max_atoms: int = Field(16, ge=1, description="Largest random cell.")
    melt: bool = Field(False, description="Melt-and-quench ramps of a supercell.")
    melting_K: float | None = Field(
        None,
        gt=0,
        lt=MAX_TEMPERATURE_K,
        description="Melting point; elements default to pymatgen's table.",
    )
    melt_steps: int = Field(
        2000, ge=1, le=MAX_STEPS, description="MD steps of each melt ramp."
    )
    min_atoms: int = Field(32, ge=1, description="Smallest defect/melt supercell.")

    @field_validator("surfaces", mode="before")
    @classmethod
    def _miller(cls, value: Any) -> Any:
        return miller_indices(value)

    @field_validator("interstitials")
    @classmethod
    def _elements(cls, value: list[str] | bool) -> list[str] | bool:
        from ase.data import chemical_symbols

        listed = value if isinstance(value, list) else []
        bad = [s for s in listed if s not in chemical_symbols[1:]]
        if bad:
            raise ValueError(f"unknown element(s) {bad}; give symbols like 'Si'")
        return value

    @property
    def asked(self) -> bool:
        """Whether any variant is asked for."""
        return bool(
            self.vacancies
            or self.interstitials
            or self.surfaces
            or self.phases
            or self.melt
        )


class StructureConfig(_Model):
    """One input structure file (any format ``ase.io.read`` understands)."""

    path: Path = Field(description="Structure file, relative to the YAML file.")
    index: str = Field("-1", description="ase.io index: '-1' last frame, ':' all.")
    supercell: tuple[Multiple, Multiple, Multiple] = (1, 1, 1)
    format: str | None = Field(None, description="ase.io format, guessed if absent.")
    name: str | None = Field(
        None,
        min_length=1,
        description="The structure's name (explore.per_structure, per-material "
        "errors); default: the file stem. Names must be unique.",
    )
    variants: VariantsConfig | None = Field(
        None,
        description="Variants of this structure explored like structures: "
        "{vacancies: true, interstitials: true, surfaces: [[1, 1, 1]], phases: 2, "
        "melt: true, min_atoms: 32}.",
    )


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


class ReplayConfig(_Model):
    """Replay of pseudo-labels: frames the run never labels (vacancies, (100) and
    (111) slabs of each crystal), labelled by the untouched foundation model,
    trained on with a small weight so the model keeps what it knew there (no DFT
    cost; see :mod:`pfd.replay`)."""

    frames: int | None = Field(
        0,
        ge=0,
        description="Replayed frames; 0 (default): off, as measured replay costs "
        "accuracy where the run labels (benchmarks/replay.py); null: 24 for "
        "backends that weight frames in their loss (sevennet), 0 for others.",
    )
    weight: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Loss weight of a replayed frame's forces relative to a DFT "
        "frame's (per atom).",
    )
    energy_weight: float = Field(
        0.0,
        ge=0,
        le=1,
        description="The same for energies (per atom); 0: the foundation's energies "
        "are not replayed (they are off where it is off, e.g. 0.1 eV/atom in a melt).",
    )
    stress_weight: float = Field(
        0.0, ge=0, le=1, description="The same for stress; 0: not replayed."
    )
    steps: int = Field(
        20,
        ge=2,
        le=MAX_STEPS,
        description="MD steps per replay trajectory.",
    )
    min_atoms: int = Field(
        16, ge=1, description="Smallest vacancy and slab cell replayed."
    )

    @property
    def weights(self) -> dict[str, float]:
        """Loss weights of a replayed frame: energy, force, stress."""
        return {
            "energy": self.energy_weight,
            "force": self.weight,
            "stress": self.stress_weight,
        }


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
    replay: ReplayConfig = Field(
        default_factory=ReplayConfig,
        description="Pseudo-label replay for backends that weight frames (sevennet).",
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
    frames_per_variant: int = Field(
        1, ge=1, description="Perturbed copies of each structure variant."
    )
    displacement_A: float = Field(
        0.05, ge=0, description="Gaussian std of atom shifts."
    )
    strain: float = Field(0.03, ge=0, description="Max symmetric strain component.")


class RampConfig(_Model):
    """A temperature ramp (heating, melt-and-quench): start to stop over steps,
    after ``hold_steps`` at start_K in the same trajectory (a melt, then its
    quench: a quench that starts from the crystal cools a superheated crystal)."""

    start_K: float = Field(gt=0, lt=MAX_TEMPERATURE_K)
    stop_K: float = Field(gt=0, lt=MAX_TEMPERATURE_K)
    steps: int = Field(ge=1, le=MAX_STEPS)
    hold_steps: int = Field(
        0, ge=0, le=MAX_STEPS, description="At start_K first, in the same trajectory."
    )

    def temperature_at(self, step: int) -> float:
        """The thermostat's temperature at ``step`` (1-based, the hold's included)."""
        return ramp_temperature(
            self.start_K, self.stop_K, self.hold_steps, self.steps, step
        )


def ramp_temperature(
    start_K: float, stop_K: float, hold: int, steps: int, step: int
) -> float:
    """``start_K`` for the first ``hold`` steps, then linear to ``stop_K`` over
    ``steps`` more, then ``stop_K``."""
    frac = min(max(step - hold, 0) / max(steps, 1), 1.0)
    return start_K + frac * (stop_K - start_K)


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


class StructureExploreConfig(_Model):
    """One structure's own exploration conditions (``explore.per_structure``);
    a key left out falls back to ``explore``'s."""

    temperatures_K: list[float] | None = None
    pressures_bar: list[Pressure | None] | None = Field(
        None, description="None (null) means NVT; a number means NPT at that pressure."
    )
    ramps: list[RampConfig] | None = None
    steps: int | None = Field(None, ge=1, le=MAX_STEPS)

    @model_validator(mode="after")
    def _check(self) -> StructureExploreConfig:
        check_temperatures("temperatures_K", self.temperatures_K or [])
        if self.pressures_bar is not None and not self.pressures_bar:
            raise ValueError("pressures_bar must not be empty; use [null] for NVT")
        return self


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
    per_structure: dict[str, StructureExploreConfig] = Field(
        default_factory=dict,
        description="Conditions of single structures by name (file stem or "
        "structures[].name): {Au: {temperatures_K: [300, 600], steps: 200}}; "
        "their variants inherit them.",
    )

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
