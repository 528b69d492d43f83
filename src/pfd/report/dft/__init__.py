"""DFT reference points of the report: one DFT job per frame under ``report/dft/``.

A job directory keeps its result, so a rerun (or a copied run directory)
reads it back instead of running DFT again (:func:`pfd.label.runner.label_one`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from pfd.config import RunConfig

#: ``label(atoms, key)``: the labelled frame of DFT job ``key``
Label = Callable[[Atoms, str], Atoms]


def dft_labeller(config: RunConfig, out: Path) -> Label:
    """``label(atoms, key)``: a DFT job under ``out/dft/KEY``, read back on rerun."""
    from pfd.label import make_labeler
    from pfd.label.runner import label_one

    labeler = make_labeler(config.labeler)
    cfg = config.labeler

    def label(atoms: Atoms, key: str) -> Atoms:
        return label_one(labeler, atoms, out / "dft" / key, cfg.timeout_s, cfg.launcher)

    return label


class JobCalculator(Calculator):
    """DFT as an ASE calculator: the k-th new geometry is job ``PREFIX-k``.

    It lets an analysis of :mod:`pfd.analysis` run on DFT as on a model; the
    analyses are deterministic, so a rerun asks for the same jobs in the same
    order and reads them back.
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, label: Label, prefix: str) -> None:
        super().__init__()
        self.run_job = label
        self.prefix = prefix
        self.jobs = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        done = self.run_job(self.atoms, f"{self.prefix}-{self.jobs}")
        self.jobs += 1
        self.results = dict(done.calc.results)
        self.results.setdefault("free_energy", self.results["energy"])
