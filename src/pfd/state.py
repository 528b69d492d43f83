"""The run directory's record of finished iterations (``state.json``) and config."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pfd.config import FROZEN_ON_RESUME, RunConfig, config_to_dict
from pfd.db import LABELLED, RunDB, open_db, write_json_atomic
from pfd.errors import PFDError
from pfd.layout import RunLayout
from pfd.progress import Reporter
from pfd.recover import check_no_loss, missing_labels, rebuild_db

_LAYOUT = RunLayout(Path())
STATE, CONFIG, DB = _LAYOUT.state.name, _LAYOUT.config.name, _LAYOUT.db.name
TIMINGS = _LAYOUT.timings.name

#: labeler keys whose change does not give a failed frame another chance
_LABELER_BOOKKEEPING = ("workers", "allow_mixed", "max_failed_fraction")


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
    #: a run with structure variants: the new frames' errors per variant
    #: (``'s0 slab-111'``: n_frames, force, energy and stress RMSE)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: a run of several structures: the new frames' errors per material (by
    #: structure name, variants included); the stop rule reads them back
    materials: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RunState:
    """Everything ``pfd status`` shows; rewritten atomically after each step.

    Model paths are absolute in memory and stored relative to the run directory
    (absolute ones of older versions are still read), so a run can move.
    ``inputs`` holds digests of the input files (structures, checkpoint): a
    resumed run compares contents, not where the files lie.
    """

    foundation: dict[str, Any] | None = None
    iterations: list[IterationRecord] = field(default_factory=list)
    converged: bool = False
    final_model: str | None = None
    finished: bool = False
    inputs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path) -> RunState:
        layout = RunLayout(Path(run_dir))
        if not layout.state.exists():
            return cls()
        try:
            raw = json.loads(layout.state.read_text())
            records = raw.get("iterations", [])
            raw["iterations"] = [IterationRecord(**r) for r in records]
            state = cls(**raw)
        except (ValueError, TypeError, AttributeError) as err:
            raise damaged(layout.state, err, DELETE_STATE) from err
        for rec in state.iterations:
            rec.model = str(layout.resolve(rec.model))
        if state.final_model:
            state.final_model = str(layout.resolve(state.final_model))
        return state

    def save(self, run_dir: Path) -> None:
        layout = RunLayout(Path(run_dir))
        payload = asdict(self)
        for rec in payload["iterations"]:
            rec["model"] = layout.relative(rec["model"])
        if self.final_model:
            payload["final_model"] = layout.relative(self.final_model)
        write_json_atomic(layout.state, payload)

    def record(self, rec: IterationRecord) -> None:
        self.iterations = [r for r in self.iterations if r.iteration != rec.iteration]
        self.iterations.append(rec)
        self.iterations.sort(key=lambda r: r.iteration)

    def get(self, iteration: int) -> IterationRecord | None:
        return next((r for r in self.iterations if r.iteration == iteration), None)


DELETE_STATE = (
    "delete it and run 'pfd run' again: it is recomputed from the models and "
    "labels the run directory keeps"
)
DELETE_CONFIG = (
    "delete it and run 'pfd run YOUR.yaml' again: it is rewritten from the YAML"
)


def damaged(path: Path, err: Exception, way_out: str) -> PFDError:
    """The one-line error for a run file that cannot be read."""
    reason = (str(err).splitlines() or [type(err).__name__])[0]
    return PFDError(f"'{path}' is damaged ({reason}); {way_out}")


def file_digest(path: Path) -> str:
    """SHA-256 of a file's contents (an input compared on resume, not its path)."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def make_run_dir(run_dir: Path) -> None:
    """Create the run directory, or say why it cannot be written."""
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


def prepare_run_dir(
    config: RunConfig, *, inputs: dict[str, str] | None = None, n_labelled: int = 0
) -> bool:
    """Create the run directory or check a resumed one was made by a compatible config.

    Settings that would invalidate labels or models already made (structures,
    labeller, foundation model, initial set, seed) must not change on resume;
    everything else (thresholds, MD, selection, training) applies from the next
    step. The labeller may change while no frame is labelled (``n_labelled``):
    a first iteration that failed for a setting is fixed and run again.
    ``inputs`` are digests of input files by frozen key (compared instead of
    their paths). Everything is checked before anything is written.

    Returns whether the labeller's settings changed: failed frames then get
    another chance (see :meth:`pfd.db.RunDB.reset_failed`).
    """
    layout = RunLayout(config.run_dir)
    make_run_dir(layout.root)
    state = RunState.load(layout.root)
    new = config_to_dict(config)
    inputs = inputs or {}
    changed = False
    if layout.config.exists():
        old = _with_defaults(read_recorded(layout))
        for key in FROZEN_ON_RESUME:
            if key in inputs and key in state.inputs:
                same = inputs[key] == state.inputs[key]
            else:
                same = _get(old, key) == _get(new, key)
            if same or (key.startswith("labeler.") and n_labelled == 0):
                continue
            held = f" ({n_labelled} frames are labelled)" * key.startswith("labeler.")
            raise PFDError(
                f"run directory '{layout.root}' was started with a different "
                f"'{key}'{held}; '{key}' cannot change mid-run: restore it or use a "
                "new run_dir"
            )
        changed = _labeler_runs(old) != _labeler_runs(new)
    write_json_atomic(layout.config, new)
    if inputs and inputs != state.inputs:
        state.inputs = inputs
        state.save(layout.root)
    return changed


def open_run_dir(
    config: RunConfig, structures: str, foundation: Path, report: Reporter
) -> RunDB:
    """Check the run directory's files, then record the config (nothing half-done).

    ``structures`` is the digest of the input structures, ``foundation`` the
    checkpoint file: a resumed run compares their contents, not their paths.
    A database that lacks DFT results its job directories hold (deleted, or
    from a backup) is rebuilt from them with a warning; labels are never lost.
    """
    layout = RunLayout(config.run_dir)
    make_run_dir(layout.root)
    RunState.load(layout.root)  # a damaged state.json stops here, before any write
    db = open_db(layout.db)
    missing = missing_labels(layout, db)
    n_labelled = db.count(status=LABELLED) + len(missing)
    if not missing:
        check_no_loss(layout, n_labelled)
    inputs = {"structures": structures}
    if foundation.is_file():
        inputs["model.checkpoint"] = file_digest(foundation)
    changed = prepare_run_dir(config, inputs=inputs, n_labelled=n_labelled)
    if missing:
        found = rebuild_db(layout, config.labeler.max_attempts)
        report.console.print(
            f"Warning: {layout.db} lacked {len(missing)} DFT results that label/ "
            f"holds; rebuilt it from the job directories ({found.labelled} labelled, "
            f"{found.failed} failed, {found.pending} pending frames)"
            + (f"; the old file is {found.backup.name}" if found.backup else "")
        )
        db = open_db(layout.db)
        check_no_loss(layout, db.count(status=LABELLED))
    if changed:  # failed frames of iterations not yet finished get another chance
        state = RunState.load(layout.root)
        done = [r.iteration for r in state.iterations]
        start = 0 if state.foundation is None else max(done, default=0) + 1
        if n := db.reset_failed(start):
            report.info(f"labeler settings changed: {n} failed frames are tried again")
    return db


def _labeler_runs(config: dict[str, Any]) -> dict[str, Any]:
    labeler = dict(config.get("labeler") or {})
    for key in _LABELER_BOOKKEEPING:
        labeler.pop(key, None)
    return labeler


def read_recorded(layout: RunLayout) -> dict[str, Any]:
    """The recorded ``config.json`` as a dict (one-line error if damaged)."""
    try:
        raw = json.loads(layout.config.read_text())
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        raise damaged(layout.config, err, DELETE_CONFIG) from err
    return raw


def recorded_config(run_dir: Path) -> RunConfig:
    """The config a run directory was made with (its ``run_dir`` where it is now)."""
    layout = RunLayout(run_dir)
    if not layout.config.is_file():
        raise PFDError(
            f"'{run_dir}' is not a pfd run directory (no {CONFIG}); "
            "give the run_dir of a 'pfd run'"
        )
    raw = read_recorded(layout)
    try:
        config = RunConfig.model_validate(raw)
    except ValueError as err:
        raise damaged(
            layout.config,
            err,
            "run 'pfd run YOUR.yaml' with the run's YAML to rewrite it",
        ) from err
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
    layout = RunLayout(run_dir)
    if not layout.config.exists():  # failed before the run directory existed
        return
    path = layout.timings
    timings: dict[str, float] = {}
    with contextlib.suppress(ValueError, TypeError, OSError):  # damaged: start anew
        timings = dict(json.loads(path.read_text()))
    timings[phase] = timings.get(phase, 0.0) + seconds
    write_json_atomic(path, timings)
