"""Rebuild the run database from the DFT job directories (``label/<uid>/``).

Every job directory holds what its frame needs to come back exactly:
``input.extxyz`` (the frame), ``job.json`` (uid, iteration, stage, source,
which attempt, the labeller's settings) and ``output.extxyz`` (the label) or
``error.txt`` (why it failed). Directories written before ``job.json`` existed
are read by their uid (``init-sS-K``: iteration 0; ``itN-K``: iteration N) and
their ``labeler.pkl``. Rows of a damaged or partial database that no job
directory holds (frames not yet sent to DFT) are kept when the file still reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.io import read

from pfd.db import FAILED, LABELLED, PENDING, RunDB, with_label, write_frames_atomic
from pfd.errors import PFDError
from pfd.layout import RunLayout

JOB_META = "job.json"
_INIT_UID = re.compile(r"^init-s\d+-\d+$")
_EXPLORE_UID = re.compile(r"^it(\d+)-\d+$")


@dataclass
class Row:
    """One frame as it will be written: atoms (labelled or not) and its keys."""

    atoms: Atoms
    keys: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def order(self) -> tuple:
        stage = 0 if self.keys["stage"] == "init" else 1
        parts = re.split(r"(\d+)", self.keys["uid"])
        natural = [int(p) if p.isdigit() else p for p in parts]
        return (self.keys["iteration"], stage, natural)


@dataclass
class Recovery:
    """What a rebuild found."""

    labelled: int = 0
    failed: int = 0
    pending: int = 0
    from_jobs: int = 0
    backup: Path | None = None


def job_meta(
    uid: str,
    iteration: int,
    stage: str,
    source: str,
    attempt: int,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The ``job.json`` of one attempt at labelling a frame."""
    return {
        "uid": uid,
        "iteration": iteration,
        "stage": stage,
        "source": source,
        "attempt": attempt,
        "settings": settings,
    }


def finished_jobs(layout: RunLayout) -> set[str]:
    """Uids of the job directories that hold a DFT result."""
    if not layout.labels.is_dir():
        return set()
    return {
        d.name
        for d in layout.labels.iterdir()
        if "." not in d.name and (d / "output.extxyz").is_file()
    }


def missing_labels(layout: RunLayout, db: RunDB) -> set[str]:
    """Finished DFT jobs whose frame the database does not hold at all."""
    return finished_jobs(layout) - db.uids()


def read_job(jobdir: Path, max_attempts: int) -> Row | None:
    """A frame as its job directory tells it (None if it cannot say enough)."""
    if not (jobdir / "input.extxyz").is_file():
        return None
    try:
        atoms = read(jobdir / "input.extxyz")
    except Exception:  # a job directory killed while written
        return None
    meta = _meta(jobdir, str(atoms.info.get("uid", jobdir.name)))
    if meta is None:
        return None
    attempt = int(meta.get("attempt", 1))
    keys = {
        "uid": meta["uid"],
        "iteration": int(meta["iteration"]),
        "stage": meta["stage"],
        "source": meta.get("source", ""),
    }
    atoms.info = {}
    atoms.calc = None
    output, error = jobdir / "output.extxyz", jobdir / "error.txt"
    if output.is_file():
        labelled = with_label(atoms, read(output))
        settings = meta.get("settings") or {}
        keys |= {"status": LABELLED, "attempts": attempt}
        keys["label_code"] = settings.get("code", "")
        return Row(labelled, keys, {"label_settings": settings})
    if error.is_file():
        final = attempt >= max_attempts
        keys |= {"status": FAILED if final else PENDING, "attempts": attempt}
        keys["reason"] = error.read_text().strip()[:500] or "unknown"
        return Row(atoms, keys)
    keys |= {"status": PENDING, "attempts": attempt - 1}
    return Row(atoms, keys)


def _meta(jobdir: Path, uid: str) -> dict[str, Any] | None:
    path = jobdir / JOB_META
    if path.is_file():
        with contextlib.suppress(ValueError):
            return json.loads(path.read_text())
    # a job written before job.json: its uid says where the frame came from
    if _INIT_UID.match(uid):
        meta: dict[str, Any] = {"uid": uid, "iteration": 0, "stage": "init"}
    elif match := _EXPLORE_UID.match(uid):
        meta = {"uid": uid, "iteration": int(match.group(1)), "stage": "explore"}
    else:
        return None
    with contextlib.suppress(Exception):  # the labeller that ran the job
        labeler = pickle.loads((jobdir / "labeler.pkl").read_bytes())
        meta["settings"] = labeler.settings()
    return meta


def _old_rows(path: Path) -> list[Row]:
    """The rows a (possibly damaged) database still gives, else none."""
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        rows = RunDB(path).rows()
    except (sqlite3.Error, ValueError, KeyError):
        return []
    out = []
    for row in rows:
        keys = dict(row.key_value_pairs)
        if {"uid", "iteration", "stage", "status"} <= set(keys):
            out.append(Row(row.toatoms(), keys, dict(row.data)))
    return out


def rebuild_db(layout: RunLayout, max_attempts: int = 2) -> Recovery:
    """Write ``pfd.db`` anew from the job directories and what the old file gives.

    A frame's row comes from the old database unless only its job directory
    holds its label; the old file is kept as ``pfd.db.old-N``.
    """
    merged = {row.keys["uid"]: row for row in _old_rows(layout.db)}
    result = Recovery()
    if layout.labels.is_dir():
        for jobdir in sorted(layout.labels.iterdir()):
            if "." in jobdir.name or not jobdir.is_dir():
                continue
            row = read_job(jobdir, max_attempts)
            if row is None:
                continue
            old = merged.get(row.keys["uid"])
            if old is None or (
                row.keys["status"] == LABELLED and old.keys["status"] != LABELLED
            ):
                merged[row.keys["uid"]] = row
                result.from_jobs += 1
    tmp = layout.root / "pfd.rebuild.db"
    tmp.unlink(missing_ok=True)
    new = RunDB(tmp)
    for row in sorted(merged.values(), key=lambda r: r.order):
        new.add_row(row.atoms, row.keys, row.data)
    result.labelled = new.count(status=LABELLED)
    result.failed = new.count(status=FAILED)
    result.pending = new.count(status=PENDING)
    del new
    if layout.db.exists():
        result.backup = _set_aside(layout.db)
    os.replace(tmp, layout.db)
    return result


def _set_aside(path: Path) -> Path:
    """Copy ``path`` to ``path.old-N`` (the file stays until replaced)."""
    k = 1
    while path.with_name(f"{path.name}.old-{k}").exists():
        k += 1
    backup = path.with_name(f"{path.name}.old-{k}")
    shutil.copyfile(path, backup)
    journal = path.with_name(path.name + "-journal")  # never applied to the new file
    if journal.exists():
        os.replace(journal, backup.with_name(backup.name + "-journal"))
    return backup


def count_frames(path: Path) -> int:
    """How many frames an extxyz file holds (0 if absent), without parsing them."""
    if not path.is_file():
        return 0
    n = 0
    with open(path) as fh:
        while line := fh.readline():
            if not line.strip():
                continue
            try:
                natoms = int(line)
            except ValueError:  # not an extxyz pfd wrote: nothing to protect
                return n
            for _ in range(natoms + 1):
                fh.readline()
            n += 1
    return n


def check_no_loss(layout: RunLayout, n_labelled: int) -> None:
    """Refuse to go on when ``dft.extxyz`` holds labels the database lacks."""
    n_exported = count_frames(layout.dft)
    if n_exported > n_labelled:
        raise PFDError(
            f"'{layout.dft}' holds {n_exported} DFT frames but the database only "
            f"{n_labelled}, and label/ has no job for the rest: refusing to shrink "
            f"it; restore label/ or pfd.db and run 'pfd recover {layout.root}', or "
            "move dft.extxyz aside to go on without those frames"
        )


def export_dft(layout: RunLayout, db: RunDB) -> int:
    """All labelled frames as ``dft.extxyz`` (atomic), never fewer than it holds."""
    frames = db.labelled()
    check_no_loss(layout, len(frames))
    write_frames_atomic(layout.dft, frames)
    return len(frames)
