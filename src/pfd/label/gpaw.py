"""GPAW labeller: plane-wave DFT from PyPI, with a preset every keyword can override.

A molecule (``pbc`` all False) is computed with ``pbc=False`` in a box
(:func:`pfd.label.results.in_box`: its own cell when that leaves >= 4 Å of
vacuum on every side, else a new one with 6 Å): GPAW's PW mode then uses the
Γ point only and real wave functions; the neutral molecule's periodic images
sit >= 8 Å apart. Forces and energy are returned on the frame as it was.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from pfd.config import LabelerConfig, deep_merge
from pfd.errors import LabelError, PFDError
from pfd.label.ase_calc import keyword_error, unknown_keywords
from pfd.label.results import BOX_VACUUM_A, single_point

#: PW 350 eV, PBE, Monkhorst-Pack k-point density 2.0 per Å⁻¹, Fermi-Dirac 0.05 eV.
PRESET: dict[str, Any] = {
    "mode": {"name": "pw", "ecut": 350.0},
    "xc": "PBE",
    "kpts": {"density": 2.0},
    "occupations": {"name": "fermi-dirac", "width": 0.05},
    "convergence": {"energy": 1e-5},
    "maxiter": 300,
}


@dataclass(frozen=True)
class GPAWLabeler:
    """Labels with ``gpaw.GPAW(**(PRESET | parameters))``, one process per frame."""

    parameters: dict[str, Any] = field(default_factory=dict)
    code: str = "gpaw"

    @classmethod
    def from_config(cls, cfg: LabelerConfig) -> GPAWLabeler:
        return cls(parameters=deep_merge(PRESET, cfg.parameters))

    def settings(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            "code": "gpaw",
            "version": version("gpaw"),
            "parameters": self.parameters,
        }

    def check(self, symbols: set[str]) -> None:
        if importlib.util.find_spec("gpaw") is None:
            raise PFDError(
                "DFT code GPAW is not installed; run scripts/install.sh "
                "(or pip install gpaw gpaw-data), or choose another labeler.code"
            )
        from gpaw.dft import GPAW
        from gpaw.setup_data import search_for_file

        bad = unknown_keywords(GPAW, self.parameters)
        if bad:
            raise keyword_error("GPAW", bad, GPAW)

        xc = self.parameters.get("xc", "PBE")
        missing = []
        for symbol in sorted(symbols):
            try:
                search_for_file(f"{symbol}.{xc}")
            except (RuntimeError, OSError):
                missing.append(symbol)
        if missing:
            raise PFDError(
                f"GPAW has no {xc} PAW setup for {', '.join(missing)}; "
                "install gpaw-data or set GPAW_SETUP_PATH"
            )

    def calculate(self, atoms: Atoms, workdir: str) -> Atoms:
        from gpaw import GPAW, KohnShamConvergenceError

        calc = GPAW(**self.parameters, txt=str(Path(workdir) / "gpaw.txt"))
        try:
            return single_point(atoms, calc, box_vacuum_A=BOX_VACUUM_A)
        except KohnShamConvergenceError as err:
            raise LabelError(f"GPAW SCF did not converge: {err}") from err
