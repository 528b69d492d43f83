"""Label frames with several worker processes and store each result at once.

Every job runs ``python -m pfd.label.worker`` in its own process with one
BLAS/OpenMP thread, so a crash, a hang (timeout) or a memory blow-up costs one
frame. Only this (driver) process writes to the database. A finished job whose
result was not yet stored (the driver was killed) is read back, not recomputed.
"""

from __future__ import annotations

import os
import pickle
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from pfd._proc import guarded
from pfd.db import Frame, RunDB, write_json_atomic
from pfd.errors import LabelError
from pfd.execute import Executor, given_or_local
from pfd.label import Labeler
from pfd.recover import JOB_META, job_meta

SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}


@dataclass
class LabelStats:
    labelled: int = 0
    failed: int = 0
    retried: int = 0


def run_job(
    jobdir: Path, timeout_s: float | None, launcher: str | None = None
) -> tuple[Atoms | None, str | None]:
    """Run (or read back) one job; returns (result, None) or (None, reason)."""
    output = jobdir / "output.extxyz"
    if not output.exists():
        (jobdir / "error.txt").unlink(missing_ok=True)
        env = os.environ | SINGLE_THREAD_ENV
        prefix = shlex.split(launcher or "")
        if prefix and shutil.which(prefix[0]) is None:
            return None, f"cannot start the DFT job: launcher '{prefix[0]}' not found"
        cmd = [*prefix, sys.executable, "-m", "pfd.label.worker", str(jobdir)]
        with open(jobdir / "worker.log", "ab") as log:
            try:
                proc = subprocess.run(
                    guarded(cmd, signal.SIGTERM),  # see pfd.label.worker
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return None, f"timed out after {timeout_s:g} s"
        if not output.exists():
            error = jobdir / "error.txt"
            if error.exists():
                return None, error.read_text().strip()
            return None, f"worker exited with code {proc.returncode} and no result"
    return read(output), None


def label_one(
    labeler: Labeler,
    atoms: Atoms,
    jobdir: Path,
    timeout_s: float | None = None,
    launcher: str | None = None,
) -> Atoms:
    """Label one frame outside the run database (e.g. EOS points of a report).

    The job directory keeps the result: called again with the same frame, it is
    read back. A job directory that holds another frame (the settings changed)
    is moved aside to ``JOBDIR.replaced-N`` and the frame is labelled afresh.
    """
    if jobdir.exists() and not _holds(jobdir, atoms):
        k = 1
        while jobdir.with_name(f"{jobdir.name}.replaced-{k}").exists():
            k += 1
        jobdir.rename(jobdir.with_name(f"{jobdir.name}.replaced-{k}"))
    if not (jobdir / "output.extxyz").exists():
        jobdir.mkdir(parents=True, exist_ok=True)
        (jobdir / "labeler.pkl").write_bytes(pickle.dumps(labeler))
        frame = atoms.copy()
        frame.info = {"uid": jobdir.name}
        write(jobdir / "input.extxyz", frame)
    result, reason = run_job(jobdir, timeout_s, launcher)
    if result is None:
        raise LabelError(f"DFT job {jobdir} failed: {reason}")
    return result


def _holds(jobdir: Path, atoms: Atoms) -> bool:
    """Whether ``jobdir`` is (or has no input yet, so may become) ``atoms``' job."""
    if not (jobdir / "input.extxyz").exists():
        return not (jobdir / "output.extxyz").exists()
    held = read(jobdir / "input.extxyz")
    return (
        len(held) == len(atoms)
        and bool((held.numbers == atoms.numbers).all())
        and bool((held.pbc == atoms.pbc).all())
        and np.allclose(held.cell[:], atoms.cell[:], atol=1e-6)
        and np.allclose(held.positions, atoms.positions, atol=1e-6)
    )


def _write_job(jobdir: Path, frame: Frame, blob: bytes, settings: dict) -> None:
    """A job directory that tells, alone, what its frame is (see pfd.recover)."""
    jobdir.mkdir(parents=True, exist_ok=True)
    (jobdir / "labeler.pkl").write_bytes(blob)
    meta = job_meta(
        frame.uid,
        frame.iteration,
        frame.stage,
        frame.source,
        frame.attempts + 1,
        settings,
    )
    write_json_atomic(jobdir / JOB_META, meta)
    atoms = frame.atoms.copy()
    atoms.info = {"uid": frame.uid}
    write(jobdir / "input.extxyz", atoms)


def label_frames(
    db: RunDB,
    labeler: Labeler,
    iteration: int,
    jobs_root: Path,
    *,
    workers: int = 1,
    timeout_s: float | None,
    max_attempts: int,
    launcher: str | None = None,
    on_done: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
) -> LabelStats:
    """Label every pending frame of ``iteration``, retrying failures up to a limit."""
    settings = labeler.settings()
    stats = LabelStats()
    blob = pickle.dumps(labeler)
    while True:
        pending = db.frames(iteration=iteration, status="pending")
        if not pending:
            return stats
        total = len(pending)
        # each job a "dft" task; default: a pool of ``workers`` threads here
        with given_or_local(executor, dft_workers=workers) as runner:
            futures = {}
            for frame in pending:
                jobdir = jobs_root / frame.uid
                if frame.attempts and not (jobdir / "output.extxyz").exists():
                    stats.retried += 1
                    shutil.rmtree(jobdir, ignore_errors=True)
                _write_job(jobdir, frame, blob, settings)
                job = runner.submit("dft", run_job, jobdir, timeout_s, launcher)
                futures[job] = frame
            for done, future in enumerate(as_completed(futures), start=1):
                frame = futures[future]
                result, reason = future.result()
                if result is not None:
                    db.set_label(frame.id, result, settings)
                    stats.labelled += 1
                else:
                    final = frame.attempts + 1 >= max_attempts
                    db.set_failure(frame.id, reason or "unknown", final=final)
                    stats.failed += int(final)
                if on_done:
                    on_done(done, total)
