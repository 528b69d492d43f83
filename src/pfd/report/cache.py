"""The report's cache: each section's numbers, keyed by a hash of what went in.

The key hashes contents (model files' bytes, settings, structures, labelled
frames), never paths or modification times, so a run directory copied to
another disk or cluster reuses its report.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from pfd.db import write_json_atomic

#: bump when a section's numbers change meaning, so old caches are recomputed
CACHE_VERSION = 2
_CHUNK = 1 << 20
_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes ("" for a missing file), hashed once per process."""
    path = Path(path)
    if not path.is_file():
        return ""
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _digests:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        _digests[memo] = digest.hexdigest()
    return _digests[memo]


def atoms_digest(structures: list[Atoms]) -> str:
    """SHA-256 of structures' species, positions, cells and periodicity."""
    digest = hashlib.sha256()
    for a in structures:
        digest.update(np.asarray(a.numbers, dtype=np.int64).tobytes())
        digest.update(np.round(a.positions, 8).tobytes())
        digest.update(np.round(np.asarray(a.cell), 8).tobytes())
        digest.update(np.asarray(a.pbc, dtype=bool).tobytes())
        digest.update(str(a.info.get("name", "")).encode())
    return digest.hexdigest()


class Section:
    """Cached numbers of one section under ``out/<name>.json``, valid for ``key``."""

    def __init__(self, out: Path, name: str, key: Any) -> None:
        self.path = Path(out) / f"{name}.json"
        text = json.dumps([CACHE_VERSION, key], default=str, sort_keys=True)
        self.key = hashlib.sha256(text.encode()).hexdigest()

    def load(self) -> tuple[Any, float] | None:
        """The cached numbers and the seconds they took to compute, if valid."""
        if not self.path.is_file():
            return None
        try:
            data = json.loads(self.path.read_text())
        except ValueError:  # a torn or foreign file: compute again
            return None
        if isinstance(data, dict) and data.get("key") == self.key:
            return data["result"], data.get("seconds", 0.0)
        return None

    def save(self, result: Any, seconds: float) -> Any:
        write_json_atomic(
            self.path, {"key": self.key, "result": result, "seconds": seconds}
        )
        return result
