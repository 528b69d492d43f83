"""The run's database: every frame, its provenance and its DFT label, in ASE SQLite.

One row per frame. Key-value pairs (queryable with ``ase db``):

``uid``        deterministic id of the frame (iteration, stage, index, seed)
``iteration``  0 for the initial set, i for frames explored with model i
``stage``      ``init`` or ``explore``
``status``     ``pending``, ``labelled`` or ``failed``
``attempts``   labelling attempts so far
``source``     where the frame came from (structure, temperature, pressure)
``reason``     why labelling failed (failed frames only)

A label is stored as the row's calculator results (energy, forces, stress) the
moment the reference calculation returns, in one SQLite transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from ase.io import write

from pfd.errors import PFDError

PENDING, LABELLED, FAILED = "pending", "labelled", "failed"
#: what a frame of a run with structure variants keeps of its info, as keys
VARIANT_KEYS = ("structure", "variant")


@dataclass(frozen=True)
class Frame:
    """A row of the database as the loop sees it."""

    id: int
    uid: str
    iteration: int
    stage: str
    status: str
    attempts: int
    atoms: Atoms
    source: str = ""


class RunDB:
    """Thin wrapper over :func:`ase.db.connect` for one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # No ASE lock file: it is an O_EXCL file that a killed run leaves behind,
        # and the next run would wait on it forever. SQLite's own locks die with
        # the process, and only the run's main process writes here.
        self._db = connect(str(self.path), type="db", append=True, use_lock_file=False)

    # -- writing -----------------------------------------------------------
    def add_pending(
        self, atoms: Atoms, *, uid: str, iteration: int, stage: str, source: str
    ) -> int:
        """Insert an unlabelled frame; returns the existing row if uid is known."""
        existing = self.get(uid)
        if existing is not None:
            return existing.id
        clean = atoms.copy()
        clean.calc = None
        return self._db.write(
            clean,
            uid=uid,
            iteration=iteration,
            stage=stage,
            status=PENDING,
            attempts=0,
            source=source,
            **_variant_keys(atoms),
        )

    def set_label(self, row_id: int, result: Atoms, settings: dict[str, Any]) -> None:
        """Store a successful label (the result must carry energy and forces)."""
        atoms = with_label(self._db.get_atoms(id=row_id), result)
        row = self._db.get(id=row_id)
        self._db.update(
            row_id,
            atoms=atoms,
            data={"label_settings": settings},
            status=LABELLED,
            attempts=row.attempts + 1,
            label_code=settings.get("code", ""),
        )

    def set_failure(self, row_id: int, reason: str, *, final: bool) -> None:
        """Record a failed attempt; ``final`` marks the frame failed for good."""
        row = self._db.get(id=row_id)
        self._db.update(
            row_id,
            status=FAILED if final else PENDING,
            attempts=row.attempts + 1,
            reason=reason[:500],
        )

    def reset_failed(self, from_iteration: int = 0) -> int:
        """Make the failed frames of ``from_iteration`` on pending again with no
        attempts (the labeller's settings changed: they get another chance)."""
        rows = [row for row in self._db.select() if row.status != LABELLED]
        rows = [row for row in rows if row.status == FAILED or row.attempts]
        rows = [row for row in rows if row.iteration >= from_iteration]
        for row in rows:
            self._db.update(row.id, status=PENDING, attempts=0)
        return len(rows)

    def add_row(
        self, atoms: Atoms, key_value_pairs: dict[str, Any], data: dict | None = None
    ) -> int:
        """Insert a frame as it is (with its label if ``atoms`` carries one)."""
        return self._db.write(atoms, key_value_pairs=key_value_pairs, data=data or {})

    # -- reading -----------------------------------------------------------
    def get(self, uid: str) -> Frame | None:
        rows = list(self._db.select(uid=uid))
        return self._to_frame(rows[0]) if rows else None

    def frames(self, **query: Any) -> list[Frame]:
        return [self._to_frame(row) for row in self._db.select(**query)]

    def labelled(self, max_iteration: int | None = None) -> list[Atoms]:
        """Labelled frames (with their DFT results), oldest first."""
        out = []
        for row in self._db.select(status=LABELLED):
            if max_iteration is not None and row.iteration > max_iteration:
                continue
            out.append(self._to_frame(row).atoms)
        return out

    def label_settings(self, max_iteration: int | None = None) -> dict[str, int]:
        """How many labelled frames each reference setting made (its JSON, sans
        version and binary path: neither moves a code's energy zero)."""
        counts: dict[str, int] = {}
        for row in self._db.select(status=LABELLED):
            if max_iteration is not None and row.iteration > max_iteration:
                continue
            settings = dict(row.data.get("label_settings", {}))
            settings.pop("version", None)
            settings.pop("binary", None)
            key = json.dumps(settings, sort_keys=True, default=str)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def count(self, **query: Any) -> int:
        return self._db.count(**query)

    def uids(self) -> set[str]:
        return {row.uid for row in self._db.select()}

    def rows(self) -> list[Any]:
        """Every row as ASE stores it (atoms, key-value pairs, data), oldest first."""
        return list(self._db.select())

    def failure_reasons(self, iteration: int) -> list[tuple[str, int]]:
        """Why the failed frames of ``iteration`` failed, most frequent first."""
        counts: dict[str, int] = {}
        for row in self._db.select(iteration=iteration, status=FAILED):
            reason = row.get("reason", "unknown")
            counts[reason] = counts.get(reason, 0) + 1
        return sorted(counts.items(), key=lambda kv: -kv[1])

    def integrity_ok(self) -> bool:
        with sqlite3.connect(self.path) as con:
            return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    @staticmethod
    def _to_frame(row: Any) -> Frame:
        atoms = row.toatoms(add_additional_information=False)
        atoms.info.update(
            {
                "uid": row.uid,
                "iteration": row.iteration,
                "stage": row.stage,
                "source": row.get("source", ""),
                "subset": f"{row.stage}-{row.iteration}",
            }
        )
        atoms.info.update({k: row.get(k) for k in VARIANT_KEYS if k in row})
        return Frame(
            id=row.id,
            uid=row.uid,
            iteration=row.iteration,
            stage=row.stage,
            status=row.status,
            attempts=row.get("attempts", 0),
            atoms=atoms,
            source=row.get("source", ""),
        )


def _variant_keys(atoms: Atoms) -> dict[str, Any]:
    """``structure`` and ``variant`` of a frame that names its variant."""
    info = atoms.info
    if "variant" not in info:
        return {}
    return {"structure": int(info["structure"]), "variant": str(info["variant"])}


def with_label(atoms: Atoms, result: Atoms) -> Atoms:
    """``atoms`` with ``result``'s energy, forces (stress, free energy) as stored."""
    calc = result.calc
    results = {"energy": calc.results["energy"], "forces": calc.results["forces"]}
    for key in ("stress", "free_energy"):
        if key in calc.results:
            results[key] = calc.results[key]
    atoms = atoms.copy()
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def open_db(path: Path) -> RunDB:
    """The run's database, checked: a damaged file is named with the way out."""
    try:
        db = RunDB(path)
        with sqlite3.connect(path) as con:
            check = con.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(check)
        db.count()
    except sqlite3.DatabaseError as err:
        raise PFDError(
            f"the run database '{path}' is damaged ({err}); run 'pfd recover "
            f"{path.parent}' to rebuild it from the DFT job directories in label/"
        ) from err
    return db


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON so that a kill leaves either the old or the new file, never half."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default))
    os.replace(tmp, path)


def write_frames_atomic(path: Path, frames: list[Atoms]) -> None:
    """Write frames as extxyz (an empty file for none), atomically like the JSON."""
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    if frames:
        write(tmp, frames, format="extxyz")
    else:
        tmp.write_text("")
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")
