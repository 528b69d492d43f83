"""VASP labeller via ASE's file-IO calculator, with a preset every keyword overrides.

ASE's ``ase.calculators.vasp.Vasp`` writes INCAR, POSCAR, KPOINTS and POTCAR,
runs ``labeler.command`` (default ``vasp_std``; how to run, e.g.
``mpirun -n 64 vasp_std``, kept apart from what is written) in the job
directory, and reads vasprun.xml and OUTCAR back. ``labeler.env`` (e.g.
``VASP_PP_PATH``, the folder holding ``potpaw_PBE/<element>/POTCAR``) applies to
the POTCAR look-up and to the VASP process. Units come back as ASE's: energy in
eV (VASP's sigma -> 0 energy; ``free_energy`` is its ``e_fr_energy``, which the
forces derive from), forces in eV/Å, stress in eV/Å³ with ASE's sign (VASP
prints kBar, positive = compressive; ASE's reader converts).

``labeler.parameters`` are ASE ``Vasp`` keywords (INCAR tags in lower case,
``xc``, ``setups``, ``kpts``, ...) plus pfd's ``kpoints``: ``{"density": points
per Å⁻¹, "type": "gamma" | "monkhorst-pack"}``, the grid of
:mod:`pfd.label.kpoints` (n_i = max(1, ceil(density·|b_i|)), 2π in |b_i|, as
GPAW's ``kpts={'density': ...}`` and VASP's ``KSPACING = 1/density``), written
as an explicit KPOINTS file so the grid is on record. An explicit ``kpts`` or
``kspacing`` in ``labeler.parameters`` replaces it.

Preset: PBE, ENCUT 520 eV, PREC Accurate, EDIFF 1e-6 eV, Gaussian smearing
0.05 eV, Γ-centred k-points of density 2.0 per Å⁻¹, one SCF (IBRION -1, NSW 0)
with stress (ISIF 2), at most NELM 100 steps (an SCF that hits it is a failed
label), no WAVECAR or CHGCAR.
"""

from __future__ import annotations

import contextlib
import copy
import shlex
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from pfd._proc import guarded
from pfd.config import LabelerConfig, deep_merge
from pfd.errors import LabelError, PFDError
from pfd.label.external import (
    CodeLabeler,
    environment,
    require_binary,
)
from pfd.label.kpoints import GRID_TYPES, kpoint_grid
from pfd.label.results import single_point

DEFAULT_COMMAND = "vasp_std"

#: Keys of ``parameters`` that are pfd's, not ASE ``Vasp`` keywords.
OWN_KEYS = ("kpoints",)

PRESET: dict[str, Any] = {
    "kpoints": {"density": 2.0, "type": "gamma"},
    "xc": "PBE",
    "encut": 520.0,
    "prec": "Accurate",
    "ediff": 1e-6,
    "ismear": 0,
    "sigma": 0.05,
    "ibrion": -1,
    "nsw": 0,
    "isif": 2,
    "nelm": 100,
    "lwave": False,
    "lcharg": False,
}

#: VASP's banner, first on its standard output and atop OUTCAR: `` vasp.6.4.2 ...``
VERSION_PATTERN = r"\bvasp\.(\d+\.\d+(?:\.\d+)?)"

HINT = (
    "load VASP's module, give its full path in labeler.command, "
    "or add its folder to PATH in labeler.env"
)


def _looks_like_vasp(name: str) -> bool:
    return name.lower().startswith("vasp")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Without ASE's "Loaded VASP_PP_PATH from environment" deprecation notice."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Loaded .* from environment")
        yield


@dataclass(frozen=True)
class VaspLabeler(CodeLabeler):
    """Labels with ASE's ``Vasp`` (one SCF with forces and stress per frame)."""

    parameters: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(PRESET))
    command: str = DEFAULT_COMMAND
    env: dict[str, str] = field(default_factory=dict)
    code: str = "vasp"
    default_command = DEFAULT_COMMAND
    version_pattern = VERSION_PATTERN
    looks_like = staticmethod(_looks_like_vasp)

    @classmethod
    def from_config(cls, cfg: LabelerConfig) -> VaspLabeler:
        parameters = deep_merge(PRESET, cfg.parameters)
        kind = parameters["kpoints"].get("type", "gamma")
        if kind not in GRID_TYPES:
            raise PFDError(
                f"labeler.parameters.kpoints.type '{kind}' is not one of "
                f"{', '.join(GRID_TYPES)}"
            )
        return cls.made(cfg, parameters)

    def check(self, symbols: set[str]) -> None:
        launcher = shlex.split(self.command)[0]
        if launcher != self.binary:
            require_binary(self.command, launcher, self.env, "VASP launcher", HINT)
        require_binary(self.command, self.binary, self.env, "VASP", HINT)
        with environment(self.env), _quiet():
            from ase.config import cfg  # ASE's config file, else the environment

            pp_path = cfg.get("VASP_PP_PATH")
            if not pp_path:
                raise PFDError(
                    "VASP_PP_PATH is not set: set labeler.env.VASP_PP_PATH (or the "
                    "environment) to the folder holding potpaw_PBE/<element>/POTCAR"
                )
            if not Path(pp_path).is_dir():
                raise PFDError(f"VASP_PP_PATH '{pp_path}' is not a folder; fix it")
            missing = [s for s in sorted(symbols) if not self._has_potcar(s)]
        if missing:
            kind = self.parameters.get("pp", self.parameters.get("xc", "PBE"))
            raise PFDError(
                f"no VASP POTCAR for {', '.join(missing)} ({kind}) under "
                f"VASP_PP_PATH={pp_path}; install them or set labeler.parameters "
                "setups/pp"
            )

    def _has_potcar(self, symbol: str) -> bool:
        """ASE's own POTCAR look-up (``pp``, ``pp_version``, ``setups``)."""
        atoms = Atoms(symbol, cell=np.eye(3) * 8.0, pbc=True)
        try:
            self._calculator(atoms, ".", DEFAULT_COMMAND).initialize(atoms)
        except RuntimeError:
            return False
        return True

    def _calculator(self, atoms: Atoms, workdir: str, command: str):
        from ase.calculators.vasp import Vasp

        params = copy.deepcopy(self.parameters)
        kpoints = params.pop("kpoints")
        if "kpts" not in params and "kspacing" not in params:
            grid = kpoint_grid(atoms, kpoints["density"], kpoints.get("type", "gamma"))
            params["kpts"] = grid.size
            params["gamma"] = grid.gamma_centred
        return Vasp(directory=workdir, command=command, **params)

    def write_input(self, atoms: Atoms, workdir: str) -> None:
        """Write INCAR, POSCAR, KPOINTS and POTCAR into ``workdir`` (nothing runs)."""
        Path(workdir).mkdir(parents=True, exist_ok=True)
        with environment(self.env), _quiet():
            self._calculator(atoms, workdir, self.command).write_input(atoms)

    def calculate(self, atoms: Atoms, workdir: str) -> Atoms:
        from ase.calculators.calculator import CalculationFailed, ReadError

        # ASE starts the command with a shell; ``exec`` hands the shell's place to
        # pfd's trampoline, so VASP is killed with this worker (e.g. on a timeout)
        command = "exec " + shlex.join(guarded(shlex.split(self.command)))
        calc = self._calculator(atoms, workdir, command)
        out = Path(workdir) / "vasp.out"
        work = atoms.copy()
        work.calc = calc
        with environment(self.env), _quiet():
            try:
                work.get_potential_energy()
            except CalculationFailed as err:
                raise LabelError(
                    f"VASP ('{self.command}') failed: {str(err).splitlines()[0]}; "
                    f"see {out}"
                ) from err
            except (ReadError, OSError) as err:
                raise LabelError(
                    "VASP wrote no complete vasprun.xml and OUTCAR "
                    f"({str(err).splitlines()[0]}); see {out}"
                ) from err
            if calc.converged is not True:
                raise LabelError(
                    "VASP SCF did not converge within "
                    f"NELM={calc.int_params.get('nelm')} steps; raise "
                    "labeler.parameters.nelm or change algo/mixing"
                )
            if all(atoms.pbc) and calc.results.get("stress") is None:
                raise LabelError(
                    "VASP wrote no stress; keep ISIF >= 1 in labeler.parameters"
                )
            return single_point(work, calc)  # reads the stored results, runs nothing
