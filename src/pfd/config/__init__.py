"""The YAML schema of a run: pydantic models with every default written here, once.

Units are in the field names (``temperature_K``, ``timestep_fs``, ``pressure_bar``).
Code below :func:`load_config` receives these models, never raw dictionaries.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from pfd.config._base import (
    MAX_STEPS,
    MAX_TEMPERATURE_K,
    MAX_TIMESTEP_FS,
    _Model,
)
from pfd.config.distill import (
    ActiveConfig,
    DistillConfig,
    StudentConfig,
)
from pfd.config.loop import (
    ConvergenceConfig,
    ExploreConfig,
    FineTuneConfig,
    GuardConfig,
    InitialConfig,
    LabelerConfig,
    ModelConfig,
    RampConfig,
    SelectConfig,
    StructureConfig,
    StructureExploreConfig,
    VariantsConfig,
    _backend_attribute,
    miller_index,
    miller_indices,
)
from pfd.config.report import (
    DiffusionReportConfig,
    EOSReportConfig,
    PhononReportConfig,
    ReportConfig,
    SpeedReportConfig,
    VacancyReportConfig,
)
from pfd.errors import ConfigError
from pfd.registry import BACKENDS

__all__ = [
    "FROZEN_ON_RESUME",
    "MAX_STEPS",
    "MAX_TEMPERATURE_K",
    "MAX_TIMESTEP_FS",
    "ActiveConfig",
    "ConvergenceConfig",
    "DiffusionReportConfig",
    "DistillConfig",
    "EOSReportConfig",
    "ExecutionConfig",
    "ExploreConfig",
    "FineTuneConfig",
    "GuardConfig",
    "InitialConfig",
    "LabelerConfig",
    "ModelConfig",
    "PhononReportConfig",
    "RampConfig",
    "ReportConfig",
    "ResourceConfig",
    "ResourcesConfig",
    "RunConfig",
    "SelectConfig",
    "SpeedReportConfig",
    "StructureConfig",
    "StructureExploreConfig",
    "StudentConfig",
    "VacancyReportConfig",
    "VariantsConfig",
    "config_to_dict",
    "deep_merge",
    "load_config",
    "load_distill_settings",
    "miller_index",
    "miller_indices",
]


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

    @model_validator(mode="after")
    def _check_weighted_replay(self) -> RunConfig:
        backend = self.model.backend
        if not self.finetune.replay.frames or _backend_attribute(
            backend, "supports_weighted_replay", False
        ):
            return self
        raise ValueError(
            f"finetune.replay.frames: backend '{backend}' cannot weight replayed "
            "frames in its loss (sevennet can); set finetune.replay.frames: 0"
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
    if config.report.test_data:
        paths = [(base / p).resolve() for p in config.report.test_data]
        updates["report"] = config.report.model_copy(update={"test_data": paths})
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
