"""DFT reference points of the report: one DFT job per frame under ``report/dft/``.

A job directory keeps its result, so a rerun (or a copied run directory)
reads it back instead of running DFT again (:func:`pfd.label.runner.label_one`);
one done with other labeller settings is moved aside and run again.
Jobs run ``labeler.workers`` side by side (0: one per core) through a
:class:`pfd.execute.LocalExecutor`; a section submits the jobs it knows of
at once and waits for them when it needs their energies.
"""

from __future__ import annotations

import os
import pickle
from concurrent.futures import Future
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from pfd.config import RunConfig


class DFTJobs:
    """``jobs(atoms, key)``: the labelled frame of DFT job ``out/dft/KEY``."""

    def __init__(
        self,
        labeler,
        root: Path,
        workers: int = 1,
        timeout_s: float | None = None,
        launcher: str | None = None,
    ) -> None:
        self.labeler = labeler
        self.root = Path(root)
        self.workers = max(1, workers)
        self.timeout_s = timeout_s
        self.launcher = launcher
        self._executor = None
        self._jobs: dict[str, tuple[Atoms, Future]] = {}

    def submit(self, atoms: Atoms, key: str) -> Future:
        """Start job ``key`` for ``atoms`` (or find it started): its future frame."""
        from pfd.execute import LocalExecutor
        from pfd.label.runner import label_one

        known = self._jobs.get(key)
        if known is not None and _same(known[0], atoms):
            return known[1]
        if self._executor is None:
            self._executor = LocalExecutor(dft_workers=self.workers)
        self._set_aside_if_stale(self.root / key)
        args = (self.labeler, atoms.copy(), self.root / key, self.timeout_s)
        future = self._executor.submit("dft", label_one, *args, self.launcher)
        self._jobs[key] = (atoms.copy(), future)
        return future

    def _set_aside_if_stale(self, jobdir: Path) -> None:
        """Move ``jobdir`` to ``JOBDIR.stale-N`` if another labeller made it."""
        made_by = jobdir / "labeler.pkl"
        if not made_by.exists() or made_by.read_bytes() == pickle.dumps(self.labeler):
            return
        k = 1
        while jobdir.with_name(f"{jobdir.name}.stale-{k}").exists():
            k += 1
        jobdir.rename(jobdir.with_name(f"{jobdir.name}.stale-{k}"))

    def __call__(self, atoms: Atoms, key: str) -> Atoms:
        return self.submit(atoms, key).result()

    def energies(self, frames: dict[str, Atoms]) -> dict[str, float]:
        """Potential energy (eV) of each job ``key: atoms``, run side by side."""
        futures = {key: self.submit(atoms, key) for key, atoms in frames.items()}
        return {k: float(f.result().get_potential_energy()) for k, f in futures.items()}

    def close(self) -> None:
        """Wait for the jobs started and end the workers."""
        if self._executor is not None:
            self._executor.close()
            self._executor = None


def _same(a: Atoms, b: Atoms) -> bool:
    return (
        len(a) == len(b)
        and bool((a.numbers == b.numbers).all())
        and np.allclose(a.cell[:], b.cell[:], atol=1e-6)
        and np.allclose(a.positions, b.positions, atol=1e-6)
    )


def dft_labeller(config: RunConfig, out: Path) -> DFTJobs:
    """The report's DFT jobs under ``out/dft/``, ``labeler.workers`` side by side."""
    from pfd.label import make_labeler

    cfg = config.labeler
    cores = os.cpu_count() or 1
    return DFTJobs(
        make_labeler(cfg),
        out / "dft",
        workers=min(cfg.workers or cores, cores),
        timeout_s=cfg.timeout_s,
        launcher=cfg.launcher,
    )


class JobCalculator(Calculator):
    """DFT as an ASE calculator: the k-th new geometry is job ``PREFIX-k``.

    It lets an analysis of :mod:`pfd.analysis` run on DFT as on a model; the
    analyses are deterministic, so a rerun asks for the same jobs in the same
    order and reads them back. :meth:`prefetch` starts the jobs of geometries
    known in advance side by side, in the order the analysis will ask for them.
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, jobs: DFTJobs, prefix: str) -> None:
        super().__init__()
        self.run_job = jobs
        self.prefix = prefix
        self.jobs = 0

    def prefetch(self, frames: list[Atoms]) -> None:
        """Start the jobs of the next ``frames`` (what the analysis asks next)."""
        for k, atoms in enumerate(frames, start=self.jobs):
            self.run_job.submit(atoms, f"{self.prefix}-{k}")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        done = self.run_job(self.atoms, f"{self.prefix}-{self.jobs}")
        self.jobs += 1
        self.results = dict(done.calc.results)
        self.results.setdefault("free_energy", self.results["energy"])
