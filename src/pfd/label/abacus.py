"""ABACUS labeller: inputs written by abacuslite, results read by dpdata.

ABACUS's own ASE plugin, ``abacuslite``, writes INPUT, STRU and KPT;
``labeler.command`` (default ``abacus``; e.g. ``mpirun -n 64 abacus``, kept apart
from what is written) runs in the job directory; dpdata's ``abacus/scf`` reader
(the one DP-GEN uses) reads ``OUT.<suffix>/running_scf.log`` back. Units come
back as ASE's: energy in eV (ABACUS's final ``etot``), forces in eV/Å, stress in
eV/Å³ with ASE's sign (ABACUS prints kBar, positive = compressive). ABACUS wants
atoms grouped by species; forces come back in the frame's own atom order.

``labeler.parameters`` are ABACUS INPUT keywords (lower case; units are
ABACUS's: Ry, Bohr) plus pfd's own:

- ``pseudo_dir``: the folder of UPF files (default: ``$ABACUS_PP_PATH``).
- ``pseudopotentials``: ``{element: file in pseudo_dir}``. An element left out
  takes the one file whose name starts with the element and contains ``pbe``
  (not ``pbesol``), e.g. SG15's ``Si_ONCV_PBE-1.0.upf``; none or several is an
  error that lists them.
- ``orbital_dir`` and ``basissets`` (``{element: .orb file}``): for
  ``basis_type: lcao`` only.
- ``kpoints``: ``{"density": points per Å⁻¹, "type": "gamma" | "monkhorst-pack"}``
  (:mod:`pfd.label.kpoints`), written as KPT.

Preset: plane waves (``basis_type pw``), ecutwfc 60 Ry, Gaussian smearing
0.0037 Ry (0.05 eV), Broyden mixing, scf_thr 1e-8, at most scf_nmax 100 steps
(an SCF that hits it is a failed label), forces and stress on, Γ-centred
k-points of density 2.0 per Å⁻¹, no charge density or wavefunction files.
"""

from __future__ import annotations

import copy
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from pfd._proc import guarded
from pfd.config import LabelerConfig, deep_merge
from pfd.errors import LabelError, PFDError
from pfd.label.external import CodeLabeler, job_env, require_binary
from pfd.label.kpoints import check_kpoints, kpoint_grid
from pfd.label.results import single_point

DEFAULT_COMMAND = "abacus"

#: Keys of ``parameters`` that are pfd's, not ABACUS INPUT keywords.
OWN_KEYS = ("pseudo_dir", "pseudopotentials", "orbital_dir", "basissets", "kpoints")

PRESET: dict[str, Any] = {
    "pseudo_dir": None,
    "pseudopotentials": {},
    "kpoints": {"density": 2.0, "type": "gamma"},
    "calculation": "scf",
    "basis_type": "pw",
    "ecutwfc": 60.0,
    "scf_thr": 1e-8,
    "scf_nmax": 100,
    "smearing_method": "gaussian",
    "smearing_sigma": 0.0037,
    "mixing_type": "broyden",
    "mixing_beta": 0.4,
    "cal_force": 1,
    "cal_stress": 1,
    "out_chg": 0,
    "out_wfc_pw": 0,
    "suffix": "ABACUS",
}

OUTPUT_FILE = "abacus.out"

#: ``abacus --version`` prints ``ABACUS version v3.10.1``
VERSION_PATTERN = r"ABACUS version v?(\S+)"


def _looks_like_abacus(name: str) -> bool:
    return name.lower().startswith("abacus")


def _require_io() -> None:
    try:
        import abacuslite.io.generalio  # noqa: F401
        import dpdata  # noqa: F401
    except ImportError as err:
        raise PFDError(
            f"labeler.code 'abacus' needs abacuslite and dpdata ({err.name} is "
            "missing); run scripts/install.sh or pip install 'pfd[abacus]'"
        ) from err


def upf_candidates(pseudo_dir: Path, element: str) -> list[str]:
    """UPF files in ``pseudo_dir`` named ``El<sep>...pbe...`` (not pbesol)."""
    prefixes = tuple(f"{element.lower()}{sep}" for sep in "._-")
    names = (path.name for path in pseudo_dir.iterdir())
    return sorted(
        name
        for name in names
        if name.lower().startswith(prefixes)
        and name.lower().endswith(".upf")
        and "pbe" in name.lower().replace("pbesol", "")
    )


@dataclass(frozen=True)
class AbacusLabeler(CodeLabeler):
    """Labels with ABACUS (one SCF with forces and stress per frame)."""

    parameters: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(PRESET))
    command: str = DEFAULT_COMMAND
    env: dict[str, str] = field(default_factory=dict)
    code: str = "abacus"
    default_command = DEFAULT_COMMAND
    version_args = ("--version",)
    version_pattern = VERSION_PATTERN
    looks_like = staticmethod(_looks_like_abacus)

    @classmethod
    def from_config(cls, cfg: LabelerConfig) -> AbacusLabeler:
        parameters = deep_merge(PRESET, cfg.parameters)
        check_kpoints(parameters["kpoints"])
        if parameters["pseudo_dir"] is None:
            pp_path = cfg.env.get("ABACUS_PP_PATH", os.environ.get("ABACUS_PP_PATH"))
            parameters["pseudo_dir"] = pp_path
        for key in ("calculation", "esolver_type"):
            allowed = {"calculation": "scf", "esolver_type": "ksdft"}[key]
            if parameters.get(key, allowed) != allowed:
                raise PFDError(
                    f"labeler.parameters.{key} must be '{allowed}' for labelling "
                    f"(one SCF per frame), not '{parameters[key]}'"
                )
        return cls.made(cfg, parameters)

    def pseudopotentials(self, symbols: set[str]) -> dict[str, str]:
        """The UPF file of each element; a one-line error if one is missing."""
        if not self.parameters["pseudo_dir"]:
            raise PFDError(
                "ABACUS needs pseudopotentials: set labeler.parameters.pseudo_dir "
                "(or ABACUS_PP_PATH) to a folder of UPF files, e.g. SG15 ONCV"
            )
        pseudo_dir = Path(self.parameters["pseudo_dir"])
        if not pseudo_dir.is_dir():
            raise PFDError(
                f"ABACUS pseudo_dir {pseudo_dir} does not exist; fix "
                "labeler.parameters.pseudo_dir"
            )
        given = self.parameters["pseudopotentials"]
        chosen: dict[str, str] = {}
        for symbol in sorted(symbols):
            found = (
                [given[symbol]]
                if symbol in given
                else upf_candidates(pseudo_dir, symbol)
            )
            if symbol in given and not (pseudo_dir / given[symbol]).is_file():
                raise PFDError(
                    f"ABACUS pseudopotential {given[symbol]} for {symbol} is not in "
                    f"{pseudo_dir}; fix labeler.parameters.pseudopotentials"
                )
            if len(found) != 1:
                what = f"several ({', '.join(found)})" if found else "no PBE UPF file"
                raise PFDError(
                    f"ABACUS: {what} for {symbol} in {pseudo_dir}; name one in "
                    f"labeler.parameters.pseudopotentials, e.g. {{{symbol}: FILE}}"
                )
            chosen[symbol] = found[0]
        return chosen

    def basissets(self, symbols: set[str]) -> dict[str, str] | None:
        """The orbital file of each element for LCAO; None for plane waves."""
        if self.parameters.get("basis_type", "pw") != "lcao":
            return None
        given = self.parameters.get("basissets") or {}
        orbital_dir = self.parameters.get("orbital_dir")
        missing = sorted(s for s in symbols if s not in given)
        if not orbital_dir or missing:
            raise PFDError(
                "ABACUS basis_type lcao needs labeler.parameters.orbital_dir and "
                f"basissets {{element: .orb file}} for {', '.join(sorted(symbols))}"
            )
        for symbol in sorted(symbols):
            if not (Path(orbital_dir) / given[symbol]).is_file():
                raise PFDError(
                    f"ABACUS orbital file {given[symbol]} for {symbol} is not in "
                    f"{orbital_dir}; fix labeler.parameters.basissets"
                )
        return {s: given[s] for s in symbols}

    def check(self, symbols: set[str]) -> None:
        _require_io()
        require_binary(
            self.command,
            self.binary,
            self.env,
            "ABACUS",
            "install it (conda install -c conda-forge abacus) or set labeler.command",
        )
        self.pseudopotentials(symbols)
        self.basissets(symbols)

    def write_input(self, atoms: Atoms, workdir: str) -> None:
        """Write INPUT, STRU and KPT into ``workdir`` (nothing runs)."""
        _require_io()
        from abacuslite.io.generalio import write_input, write_kpt, write_stru

        directory = Path(workdir)
        directory.mkdir(parents=True, exist_ok=True)
        symbols = set(atoms.get_chemical_symbols())
        orbitals = self.basissets(symbols)
        write_stru(
            atoms,
            outdir=str(directory),
            pp_file=self.pseudopotentials(symbols),
            orb_file=orbitals,
        )
        kpoints = self.parameters["kpoints"]
        grid = kpoint_grid(atoms, kpoints["density"], kpoints["type"])
        kpt = {
            "mode": "mp-sampling",
            "gamma-centered": grid.gamma_centred,
            "nk": list(grid.size),
            "kshift": [0, 0, 0],
        }
        write_kpt(kpt, str(directory / "KPT"))
        inp = {k: v for k, v in self.parameters.items() if k not in OWN_KEYS}
        inp["pseudo_dir"] = str(Path(self.parameters["pseudo_dir"]).resolve())
        if orbitals is not None:
            inp["orbital_dir"] = str(Path(self.parameters["orbital_dir"]).resolve())
        write_input(
            {k: v for k, v in inp.items() if v is not None}, directory / "INPUT"
        )

    def calculate(self, atoms: Atoms, workdir: str) -> Atoms:
        directory = Path(workdir)
        self.write_input(atoms, workdir)
        output = directory / OUTPUT_FILE
        with output.open("w") as out:
            try:
                proc = subprocess.run(
                    guarded(shlex.split(self.command)),
                    cwd=directory,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=job_env(self.env),
                    check=False,
                )
            except OSError as err:
                raise LabelError(
                    f"cannot run ABACUS ('{self.command}'): {err}"
                ) from err
        if proc.returncode != 0:
            last = _last_line(output)
            raise LabelError(
                f"ABACUS ('{self.command}') exited with {proc.returncode}: {last}; "
                f"see {output}"
            )
        return self.read_result(atoms, directory)

    def read_result(self, atoms: Atoms, directory: Path) -> Atoms:
        """The finished SCF in ``directory`` as a copy of ``atoms`` with results."""
        import dpdata
        from abacuslite.io.generalio import species_group_indices

        log = directory / f"OUT.{self.parameters['suffix']}" / "running_scf.log"
        if not log.is_file():
            raise LabelError(
                f"ABACUS wrote no {log.name}; see {directory / OUTPUT_FILE}"
            )
        system = dpdata.LabeledSystem(str(directory), fmt="abacus/scf")
        if len(system) == 0:
            raise LabelError(
                "ABACUS SCF did not converge within "
                f"scf_nmax={self.parameters.get('scf_nmax')} steps; raise "
                "labeler.parameters.scf_nmax or lower mixing_beta"
            )
        (frame,) = system.to("ase/structure")
        order = species_group_indices(atoms.get_chemical_symbols())  # STRU's order
        if frame.get_chemical_symbols() != [atoms[i].symbol for i in order] or not (
            np.allclose(frame.positions, atoms.positions[order], atol=1e-4)
        ):
            raise LabelError(f"ABACUS's STRU in {directory} is not the frame sent")
        forces = np.empty((len(atoms), 3))
        forces[order] = frame.get_forces()
        results: dict[str, Any] = {
            "energy": float(frame.get_potential_energy()),
            "forces": forces,
        }
        if all(atoms.pbc):
            if "stress" not in frame.calc.results:
                raise LabelError("ABACUS wrote no stress; keep cal_stress 1")
            results["stress"] = np.array(frame.get_stress(voigt=True))
        # the shared ending: finite results, stored on a copy of the frame
        return single_point(atoms, SinglePointCalculator(atoms, **results))


def _last_line(path: Path) -> str:
    lines = (
        path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    )
    return lines[-1].strip() if lines else "no output"
