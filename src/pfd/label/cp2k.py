"""CP2K labeller: writes CP2K's input, runs the binary, reads its output.

ASE's ``CP2K`` calculator drives ``cp2k_shell`` over a pipe, worth it only when
one process evaluates many frames; here every frame is its own job, so the
labeller runs ``cp2k.psmp -i cp2k.inp -o cp2k.out`` like any command-line code
and keeps input and output in the job directory. How to run is
``labeler.command`` (default ``cp2k.psmp``, Debian's only binary, which runs
serially without ``mpirun``) and ``labeler.env``; what to write is
:data:`PRESET` merged with ``labeler.parameters``:

- ``data_dir``, ``basis_set_file``, ``potential_file``: the files (default:
  Debian's ``cp2k-data``, ``/usr/share/cp2k/BASIS_MOLOPT``, ``GTH_POTENTIALS``).
- ``basis_set`` / ``potential``: the names for every element (default
  ``DZVP-MOLOPT-SR-GTH``, ``GTH-PBE``); ``basis_sets`` / ``potentials``:
  ``{element: name}`` exceptions. The pseudopotential takes the basis set's
  valence (``-qN``) where the file has that variant.
- ``kpoints``: ``{"density": points per Å⁻¹, "type": "gamma" | "monkhorst-pack"}``
  (:mod:`pfd.label.kpoints`), written as ``SCHEME MACDONALD`` (the Monkhorst-Pack
  grid plus its shift); a 1x1x1 grid uses CP2K's Γ-point code (no ``&KPOINTS``).
  CP2K 2023.1 gives analytical stress with k-points (checked against finite
  differences in the tests).
- ``input``: CP2K's own input as nested sections, ``{"FORCE_EVAL": {"DFT":
  {"MGRID": {"CUTOFF": 600}}}}`` (keys in any case; a list of dicts repeats a
  section; ``_SECTION_PARAMETERS_`` is a section's parameter). Units are CP2K's
  defaults (Ry for cutoffs, K for the electronic temperature).

Preset: PBE, GTH pseudopotentials, DZVP-MOLOPT-SR-GTH, CUTOFF 500 Ry and
REL_CUTOFF 60 Ry, EPS_DEFAULT 1e-12, EPS_SCF 1e-7, standard diagonalisation with
Fermi-Dirac smearing at 580 K (0.05 eV, as GPAW's preset), every MO added
(``ADDED_MOS -1``), Broyden mixing: the same input serves metals and insulators.
Analytical stress; no restart files. The energy is CP2K's total energy, which
with smearing is the free energy that forces and stress derive from.
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import Bohr, GPa, Hartree

from pfd._proc import guarded
from pfd.config import LabelerConfig, deep_merge
from pfd.errors import LabelError, PFDError
from pfd.label.external import (
    CodeLabeler,
    job_env,
    require_binary,
)
from pfd.label.kpoints import check_kpoints, kpoint_grid

DEFAULT_COMMAND = "cp2k.psmp"
INPUT_FILE = "cp2k.inp"
OUTPUT_FILE = "cp2k.out"
LOG_FILE = "cp2k.log"

PRESET: dict[str, Any] = {
    "data_dir": "/usr/share/cp2k",
    "basis_set_file": "BASIS_MOLOPT",
    "potential_file": "GTH_POTENTIALS",
    "basis_set": "DZVP-MOLOPT-SR-GTH",
    "potential": "GTH-PBE",
    "basis_sets": {},
    "potentials": {},
    "kpoints": {"density": 2.0, "type": "gamma"},
    "input": {
        "GLOBAL": {"PRINT_LEVEL": "LOW"},
        "FORCE_EVAL": {
            "METHOD": "QUICKSTEP",
            "STRESS_TENSOR": "ANALYTICAL",
            "DFT": {
                "MGRID": {"CUTOFF": 500, "REL_CUTOFF": 60},
                "QS": {"EPS_DEFAULT": 1e-12},
                "SCF": {
                    "SCF_GUESS": "ATOMIC",
                    "EPS_SCF": 1e-7,
                    "MAX_SCF": 100,
                    "ADDED_MOS": -1,
                    "DIAGONALIZATION": {"ALGORITHM": "STANDARD"},
                    "MIXING": {
                        "METHOD": "BROYDEN_MIXING",
                        "ALPHA": 0.3,
                        "NBROYDEN": 8,
                    },
                    "SMEAR": {
                        "METHOD": "FERMI_DIRAC",
                        "ELECTRONIC_TEMPERATURE": 580,
                    },
                    # no wavefunction restart files (MBs per frame with k-points)
                    "PRINT": {"RESTART": {"_SECTION_PARAMETERS_": "OFF"}},
                },
                "XC": {"XC_FUNCTIONAL": {"_SECTION_PARAMETERS_": "PBE"}},
            },
        },
    },
}

OWN_KEYS = tuple(PRESET)


def _looks_like_cp2k(name: str) -> bool:
    return name.startswith("cp2k")


def _upper_keys(section: dict[str, Any]) -> dict[str, Any]:
    """CP2K is case-insensitive: one spelling per key, so that merging works."""
    out: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, dict):
            value = _upper_keys(value)
        elif isinstance(value, list):
            value = [_upper_keys(v) if isinstance(v, dict) else v for v in value]
        out[key.upper()] = value
    return out


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return ".TRUE." if value else ".FALSE."
    if isinstance(value, list | tuple):
        return " ".join(_value(v) for v in value)
    return str(value)


def render(sections: dict[str, Any], indent: int = 0) -> list[str]:
    """CP2K input lines for nested ``{SECTION: {KEYWORD: value}}``."""
    pad = " " * indent
    lines = []
    for key, value in sections.items():
        blocks = value if isinstance(value, list) and value else [value]
        if all(isinstance(block, dict) for block in blocks):
            for block in blocks:
                body = dict(block)
                param = body.pop("_SECTION_PARAMETERS_", None)
                raw = body.pop("_LINES_", [])
                head = f"&{key}" if param is None else f"&{key} {_value(param)}"
                lines.append(pad + head)
                lines.extend(render(body, indent + 2))
                lines.extend(f"{pad}  {line}" for line in raw)
                lines.append(f"{pad}&END {key}")
        else:
            lines.append(f"{pad}{key} {_value(value)}")
    return lines


def library_names(path: Path) -> dict[str, list[list[str]]]:
    """``{element: [[name, alias, ...], ...]}`` from a CP2K basis/potential file."""
    entries: dict[str, list[list[str]]] = {}
    for line in path.read_text(errors="replace").splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0].isalpha() and not words[1][0].isdigit():
            entries.setdefault(words[0].capitalize(), []).append(words[1:])
    return entries


def _find(entries: list[list[str]], name: str) -> list[str] | None:
    return next((e for e in entries if name.upper() in map(str.upper, e)), None)


def _full_name(entry: list[str]) -> str:
    """The entry's name with its valence (``-qN``) when it has one: unambiguous."""
    return next((w for w in entry if re.search(r"-q\d+$", w)), entry[0])


@dataclass(frozen=True)
class CP2KLabeler(CodeLabeler):
    """Labels with CP2K Quickstep (GPW): one ENERGY_FORCE run per frame."""

    parameters: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(PRESET))
    command: str = DEFAULT_COMMAND
    env: dict[str, str] = field(default_factory=dict)
    code: str = "cp2k"
    default_command = DEFAULT_COMMAND
    version_args = ("--version",)
    version_pattern = r"CP2K version (\S+)"
    looks_like = staticmethod(_looks_like_cp2k)

    @classmethod
    def from_config(cls, cfg: LabelerConfig) -> CP2KLabeler:
        user = dict(cfg.parameters)
        unknown = sorted(set(user) - set(OWN_KEYS))
        if unknown:
            raise PFDError(
                f"labeler.parameters: unknown key {', '.join(unknown)} for cp2k; use "
                f"{', '.join(OWN_KEYS)} (CP2K sections go under 'input')"
            )
        if "input" in user:
            user["input"] = _upper_keys(user["input"])
        parameters = deep_merge(PRESET, user)
        check_kpoints(parameters["kpoints"])
        return cls.made(cfg, parameters)

    def _file(self, key: str) -> Path:
        return Path(self.parameters["data_dir"]) / self.parameters[key]

    def kinds(self, symbols: set[str]) -> dict[str, tuple[str, str]]:
        """``{element: (basis set, pseudopotential)}``; a one-line error if missing."""
        files = {}
        for key in ("basis_set_file", "potential_file"):
            path = self._file(key)
            if not path.is_file():
                raise PFDError(
                    f"CP2K {key.replace('_', ' ')} {path} not found; install cp2k-data "
                    f"or set labeler.parameters.data_dir / {key}"
                )
            files[key] = (path, library_names(path))
        (basis_path, bases), (pot_path, pots) = files.values()
        chosen = {}
        par = self.parameters
        for symbol in sorted(symbols):
            name = par["basis_sets"].get(symbol, par["basis_set"])
            basis = _find(bases.get(symbol, []), name)
            if basis is None:
                have = sorted(e[0] for e in bases.get(symbol, []))
                raise PFDError(
                    f"CP2K basis set {name} for {symbol} is not in {basis_path} "
                    f"(it has: {', '.join(have) or 'none'}); set "
                    f"labeler.parameters.basis_sets {{{symbol}: NAME}} or "
                    "basis_set_file"
                )
            name = par["potentials"].get(symbol, par["potential"])
            valence = next(
                (m.group(0) for w in basis if (m := re.search(r"-q\d+$", w))), ""
            )
            potential = _find(pots.get(symbol, []), f"{name}{valence}") or _find(
                pots.get(symbol, []), name
            )
            if potential is None:
                have = sorted(e[0] for e in pots.get(symbol, []))
                raise PFDError(
                    f"CP2K pseudopotential {name} for {symbol} is not in {pot_path} "
                    f"(it has: {', '.join(have) or 'none'}); set "
                    f"labeler.parameters.potentials {{{symbol}: NAME}} or "
                    "potential_file"
                )
            chosen[symbol] = (_full_name(basis), _full_name(potential))
        return chosen

    def check(self, symbols: set[str]) -> None:
        require_binary(
            self.command,
            self.binary,
            self.env,
            "CP2K",
            "install it (apt-get install cp2k cp2k-data) or set labeler.command "
            "(e.g. 'cp2k.ssmp')",
        )
        self.kinds(symbols)

    def input_text(self, atoms: Atoms) -> str:
        """The CP2K input for one ENERGY_FORCE run on ``atoms``."""
        if any(atoms.pbc) and not all(atoms.pbc):
            raise LabelError(
                "the cp2k labeller needs a fully periodic or a non-periodic cell "
                f"(pbc={atoms.pbc.tolist()})"
            )
        periodic = bool(all(atoms.pbc))
        if atoms.cell.rank < 3:
            raise LabelError("CP2K needs a cell, also for a molecule (use center())")
        kinds = self.kinds(set(atoms.get_chemical_symbols()))
        cell = atoms.cell.array
        dft: dict[str, Any] = {
            "BASIS_SET_FILE_NAME": str(self._file("basis_set_file")),
            "POTENTIAL_FILE_NAME": str(self._file("potential_file")),
        }
        kpoints = self.parameters["kpoints"]
        grid = kpoint_grid(atoms, kpoints["density"], kpoints["type"])
        if not grid.is_gamma_only:
            scheme = [*grid.size, *(f"{s:.10f}" for s in grid.shift)]
            dft["KPOINTS"] = {"SCHEME": ["MACDONALD", *scheme]}
        if not periodic:
            dft["POISSON"] = {"PERIODIC": "NONE", "PSOLVER": "MT"}
        force_eval: dict[str, Any] = {
            "DFT": dft,
            "PRINT": {"FORCES": {"_SECTION_PARAMETERS_": "ON"}},
            "SUBSYS": {
                "CELL": {
                    "A": [f"{x:.12f}" for x in cell[0]],
                    "B": [f"{x:.12f}" for x in cell[1]],
                    "C": [f"{x:.12f}" for x in cell[2]],
                    "PERIODIC": "XYZ" if periodic else "NONE",
                },
                "COORD": {
                    "_LINES_": [
                        f"{s} {x:.12f} {y:.12f} {z:.12f}"
                        for s, (x, y, z) in zip(
                            atoms.get_chemical_symbols(), atoms.positions, strict=True
                        )
                    ]
                },
                "KIND": [
                    {"_SECTION_PARAMETERS_": s, "BASIS_SET": b, "POTENTIAL": p}
                    for s, (b, p) in kinds.items()
                ],
            },
        }
        if periodic:
            force_eval["PRINT"]["STRESS_TENSOR"] = {"_SECTION_PARAMETERS_": "ON"}
        else:
            force_eval["STRESS_TENSOR"] = "NONE"
        fixed = {
            "GLOBAL": {"PROJECT": "cp2k", "RUN_TYPE": "ENERGY_FORCE"},
            "FORCE_EVAL": force_eval,
        }
        return "\n".join(render(deep_merge(self.parameters["input"], fixed))) + "\n"

    def calculate(self, atoms: Atoms, workdir: str) -> Atoms:
        directory = Path(workdir)
        (directory / INPUT_FILE).write_text(self.input_text(atoms))
        output = directory / OUTPUT_FILE
        output.unlink(missing_ok=True)  # cp2k -o appends
        argv = [*shlex.split(self.command), "-i", INPUT_FILE, "-o", OUTPUT_FILE]
        with open(directory / LOG_FILE, "wb") as log:
            try:
                proc = subprocess.run(
                    guarded(argv),
                    cwd=directory,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=job_env(self.env),
                    check=False,
                )
            except OSError as err:
                raise LabelError(f"cannot start CP2K ({argv[0]}): {err}") from err
        text = output.read_text(errors="replace") if output.exists() else ""
        if proc.returncode != 0:
            raise LabelError(failure_reason(text, proc.returncode, directory))
        if "SCF run NOT converged" in text:
            steps = self.parameters["input"]["FORCE_EVAL"]["DFT"]["SCF"]["MAX_SCF"]
            raise LabelError(
                f"CP2K SCF did not converge in {steps} steps "
                "(raise MAX_SCF or lower the mixing ALPHA)"
            )
        results = read_results(text, len(atoms), stress=bool(all(atoms.pbc)))
        for key, value in results.items():
            if not np.all(np.isfinite(value)):
                raise LabelError(f"non-finite {key} from CP2K")
        out = atoms.copy()
        out.calc = SinglePointCalculator(out, **results)
        return out


_NUMBER = r"[-+]?\d+\.\d*(?:[EeDd][-+]?\d+)?"


def read_results(text: str, natoms: int, *, stress: bool) -> dict[str, Any]:
    """Energy, forces (and stress) in eV, Å from the text of a CP2K output."""
    energies = re.findall(
        rf"ENERGY\| Total FORCE_EVAL \( QS \) energy \[(?:a\.u\.|hartree)\]:\s+"
        rf"({_NUMBER})",
        text,
    )
    if not energies:
        raise LabelError("CP2K output has no total energy")
    energy = float(energies[-1]) * Hartree
    start = text.rfind("ATOMIC FORCES in")
    rows = re.findall(
        rf"^\s+\d+\s+\d+\s+[A-Za-z]+\s+({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s*$",
        text[start:].split("SUM OF ATOMIC FORCES")[0],
        re.M,
    )
    if start < 0 or len(rows) != natoms:
        raise LabelError("CP2K output has no forces for every atom")
    results: dict[str, Any] = {
        "energy": energy,
        "free_energy": energy,  # with smearing CP2K's total energy is F = E - TS
        "forces": np.array(rows, dtype=float) * Hartree / Bohr,
    }
    if stress:
        start = text.rfind("STRESS| Analytical stress tensor [GPa]")
        rows = re.findall(
            rf"^ STRESS\|\s+[xyz]\s+({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s*$",
            text[start:],
            re.M,
        )[:3]
        if start < 0 or len(rows) != 3:
            raise LabelError("CP2K output has no analytical stress tensor")
        # CP2K prints the pressure-like tensor (positive when compressed)
        sigma = -np.array(rows, dtype=float) * GPa
        results["stress"] = sigma[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    return results


def failure_reason(text: str, returncode: int, directory: Path) -> str:
    """One line from CP2K's ABORT box, or where to look."""
    box = re.search(r"\[ABORT\][^\n]*\n(.*?)\n \*{20,}", text, re.S)
    if box:
        words = []
        for line in box.group(1).splitlines():
            inner = line.strip().strip("*")
            inner = re.sub(r"^\s*(\\___/|\||O/\||/\| \||/ \\)", "", inner)
            inner = re.sub(r"\S+\.F:\d+\s*$", "", inner)
            words.extend(inner.split())
        return f"CP2K stopped: {' '.join(words)}"
    return (
        f"CP2K exited with code {returncode} and no message; see "
        f"{directory / OUTPUT_FILE} and {LOG_FILE}"
    )
