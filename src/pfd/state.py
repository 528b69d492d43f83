"""The run directory's record of finished iterations (``state.json``) and config."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pfd.config import FROZEN_ON_RESUME, RunConfig, config_to_dict
from pfd.db import write_json_atomic
from pfd.errors import PFDError

STATE, CONFIG, DB = "state.json", "config.json", "pfd.db"
TIMINGS = "timings.json"


@dataclass
class IterationRecord:
    """One finished iteration: the model's error on DFT frames it had not seen."""

    iteration: int
    n_train: int
    n_new: int
    n_failed: int
    force_rmse_eV_A: float | None
    energy_rmse_eV_atom: float | None
    stress_rmse_GPa: float | None
    converged: bool
    model: str
    md_stops: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class RunState:
    """Everything ``pfd status`` shows; rewritten atomically after each step."""

    foundation: dict[str, Any] | None = None
    iterations: list[IterationRecord] = field(default_factory=list)
    converged: bool = False
    final_model: str | None = None
    finished: bool = False

    @classmethod
    def load(cls, run_dir: Path) -> RunState:
        path = run_dir / STATE
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        raw["iterations"] = [IterationRecord(**r) for r in raw.get("iterations", [])]
        return cls(**raw)

    def save(self, run_dir: Path) -> None:
        write_json_atomic(run_dir / STATE, asdict(self))

    def record(self, rec: IterationRecord) -> None:
        self.iterations = [r for r in self.iterations if r.iteration != rec.iteration]
        self.iterations.append(rec)
        self.iterations.sort(key=lambda r: r.iteration)

    def get(self, iteration: int) -> IterationRecord | None:
        return next((r for r in self.iterations if r.iteration == iteration), None)


def prepare_run_dir(config: RunConfig) -> Path:
    """Create the run directory or check a resumed one was made by a compatible config.

    Settings that would invalidate labels or models already made (structures,
    labeller, foundation model, initial set, seed) must not change on resume;
    everything else (thresholds, MD, selection, training) applies from the next step.
    """
    run_dir = config.run_dir
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise PFDError(
            f"cannot write to run directory '{run_dir}' ({err.strerror}); "
            "choose another run_dir or fix its permissions"
        ) from err
    new = config_to_dict(config)
    path = run_dir / CONFIG
    if path.exists():
        old = _with_defaults(json.loads(path.read_text()))
        for key in FROZEN_ON_RESUME:
            if _get(old, key) != _get(new, key):
                raise PFDError(
                    f"run directory '{run_dir}' was started with a different '{key}'; "
                    f"'{key}' cannot change mid-run: restore it or use a new run_dir"
                )
    write_json_atomic(path, new)
    return run_dir


def recorded_config(run_dir: Path) -> RunConfig:
    """The config a run directory was made with (its ``run_dir`` where it is now)."""
    path = run_dir / CONFIG
    if not path.is_file():
        raise PFDError(
            f"'{run_dir}' is not a pfd run directory (no {CONFIG}); "
            "give the run_dir of a 'pfd run'"
        )
    config = RunConfig.model_validate_json(path.read_text())
    return config.model_copy(update={"run_dir": run_dir.resolve()})


def _with_defaults(recorded: dict[str, Any]) -> dict[str, Any]:
    """A recorded config with the defaults of keys added since it was written."""
    try:
        return config_to_dict(RunConfig.model_validate(recorded))
    except ValueError:  # written by a version with keys this one lacks
        return recorded


def _get(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@contextlib.contextmanager
def timed_phase(run_dir: Path, phase: str) -> Iterator[None]:
    """Add the wall time spent inside to ``phase``'s total in ``timings.json``.

    A resumed or repeated phase adds to its total (one stopped by Ctrl-C too),
    so the file tells what the run has cost so far, phase by phase. A command
    that fails (bad input, a full disk) leaves the run directory untouched.
    """
    t0 = time.perf_counter()
    try:
        yield
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            add_phase_seconds(run_dir, phase, time.perf_counter() - t0)
        raise
    add_phase_seconds(run_dir, phase, time.perf_counter() - t0)


def add_phase_seconds(run_dir: Path, phase: str, seconds: float) -> None:
    if not (run_dir / CONFIG).exists():  # failed before the run directory existed
        return
    path = run_dir / TIMINGS
    timings = json.loads(path.read_text()) if path.exists() else {}
    timings[phase] = timings.get(phase, 0.0) + seconds
    write_json_atomic(path, timings)
