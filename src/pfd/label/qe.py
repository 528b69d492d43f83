"""Quantum ESPRESSO labeller: ``pw.x`` through ASE's ``Espresso`` calculator.

How to run (``labeler.command``, default ``pw.x``; ``labeler.env``) is ASE's
``EspressoProfile``; what to write is :data:`PRESET` merged with
``labeler.parameters``:

- ``pseudo_dir``: where the UPF files are (default: Debian's
  ``quantum-espresso-data``, ``/usr/share/espresso/pseudo``).
- ``pseudopotentials``: ``{element: file in pseudo_dir}``. An element left out
  takes the one file named like ``El.pbe*.UPF`` / ``El_pbe*.UPF`` (not pbesol) in
  ``pseudo_dir``; none or several is an error that lists them.
- ``kpoints``: ``{"density": points per Å⁻¹, "type": "gamma" | "monkhorst-pack"}``
  (:mod:`pfd.label.kpoints`); a 1x1x1 grid runs QE's Γ-point code.
- ``input_data``: pw.x namelists, nested (``{"system": {"ecutwfc": 60}}``) or
  flat; any pw.x keyword may also be given at the top level of ``parameters``
  (``{"ecutwfc": 60}``). Units are QE's (Ry, Bohr).

Preset: ecutwfc 50 Ry with ecutrho 400 Ry (8x, enough for ultrasoft and PAW
files too), Marzari-Vanderbilt smearing 0.01 Ry, conv_thr 1e-8 Ry, forces and
stress on, Γ-centred k-points of density 2.0 per Å⁻¹. Energies are QE's total
(free) energy, whose derivatives the forces and stress are.
"""

from __future__ import annotations

import copy
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.espresso import Espresso, EspressoProfile

from pfd._proc import guarded
from pfd.config import LabelerConfig, deep_merge
from pfd.errors import LabelError, PFDError
from pfd.label.external import (
    CodeLabeler,
    environment,
    require_binary,
)
from pfd.label.kpoints import check_kpoints, kpoint_grid
from pfd.label.results import single_point

DEFAULT_COMMAND = "pw.x"

#: Keys of ``parameters`` that are pfd's, not pw.x namelist keywords.
OWN_KEYS = ("pseudo_dir", "pseudopotentials", "kpoints", "input_data")

PRESET: dict[str, Any] = {
    "pseudo_dir": "/usr/share/espresso/pseudo",
    "pseudopotentials": {},
    "kpoints": {"density": 2.0, "type": "gamma"},
    "input_data": {
        "control": {
            "calculation": "scf",
            "tprnfor": True,
            "tstress": True,
            "disk_io": "none",
        },
        "system": {
            "ecutwfc": 50.0,
            "ecutrho": 400.0,
            "occupations": "smearing",
            "smearing": "mv",
            "degauss": 0.01,
        },
        "electrons": {
            "conv_thr": 1e-8,
            "mixing_beta": 0.4,
            "electron_maxstep": 100,
        },
    },
}

INPUT_FILE = "espresso.pwi"
OUTPUT_FILE = "espresso.pwo"


def _looks_like_pw(name: str) -> bool:
    return name.endswith("pw.x") or name == "pw"


def nested_input(flat_or_nested: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """pw.x keywords sorted into their namelists (lower case), as plain dicts."""
    from ase.io.espresso import Namelist
    from ase.io.espresso_namelist.keys import ALL_KEYS

    namelist = Namelist(copy.deepcopy(flat_or_nested))
    given = {k for k, v in namelist.items() if not isinstance(v, dict | Namelist)}
    namelist.to_nested("pw")
    sections = set(ALL_KEYS["pw"])
    wrong = sorted(set(namelist) - sections)
    if wrong:
        raise PFDError(
            f"labeler.parameters.input_data: {', '.join(wrong)} is not a pw.x "
            f"namelist ({', '.join(sorted(sections))})"
        )
    placed = {key for section in namelist.values() for key in section}
    unknown = sorted(given - placed)
    if unknown:
        raise PFDError(
            f"labeler.parameters: {', '.join(unknown)} is not a pw.x input keyword "
            f"nor one of {', '.join(OWN_KEYS)}"
        )
    return {
        section: dict(values.items()) for section, values in namelist.items() if values
    }


def pseudo_candidates(pseudo_dir: Path, element: str) -> list[str]:
    """Files in ``pseudo_dir`` named like ``El.pbe*.UPF`` or ``El_pbe*.UPF``."""
    prefixes = tuple(f"{element.lower()}{sep}pbe" for sep in "._-")
    return sorted(
        path.name
        for path in pseudo_dir.iterdir()
        if path.name.lower().startswith(prefixes)
        and not path.name.lower()[len(element) + 1 :].startswith("pbesol")
        and path.suffix.lower() == ".upf"
    )


class GuardedProfile(EspressoProfile):
    """ASE's profile, with pw.x killed if its worker dies (e.g. on a timeout)."""

    def get_command(self, inputfile, calc_command=None) -> list[str]:
        return guarded(super().get_command(inputfile, calc_command))


@dataclass(frozen=True)
class QELabeler(CodeLabeler):
    """Labels with ``pw.x`` (one SCF with forces and stress per frame)."""

    parameters: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(PRESET))
    command: str = DEFAULT_COMMAND
    env: dict[str, str] = field(default_factory=dict)
    code: str = "qe"
    default_command = DEFAULT_COMMAND
    version_pattern = r"Program PWSCF\s+v\.(\S+)"
    looks_like = staticmethod(_looks_like_pw)

    @classmethod
    def from_config(cls, cfg: LabelerConfig) -> QELabeler:
        user = dict(cfg.parameters)
        flat = {k: user.pop(k) for k in list(user) if k not in OWN_KEYS}
        user["input_data"] = nested_input({**user.get("input_data", {}), **flat})
        parameters = deep_merge(PRESET, user)
        check_kpoints(parameters["kpoints"])
        return cls.made(cfg, parameters)

    def pseudopotentials(self, symbols: set[str]) -> dict[str, str]:
        """The UPF file of each element; a one-line error if one is missing."""
        pseudo_dir = Path(self.parameters["pseudo_dir"])
        if not pseudo_dir.is_dir():
            raise PFDError(
                f"QE pseudo_dir {pseudo_dir} does not exist; install "
                "quantum-espresso-data or set labeler.parameters.pseudo_dir"
            )
        given = self.parameters["pseudopotentials"]
        chosen: dict[str, str] = {}
        missing: list[str] = []
        ambiguous: dict[str, list[str]] = {}
        for symbol in sorted(symbols):
            if symbol in given:
                if not (pseudo_dir / given[symbol]).is_file():
                    raise PFDError(
                        f"QE pseudopotential {given[symbol]} for {symbol} is not in "
                        f"{pseudo_dir}; fix labeler.parameters.pseudopotentials or "
                        "pseudo_dir"
                    )
                chosen[symbol] = given[symbol]
                continue
            found = pseudo_candidates(pseudo_dir, symbol)
            if len(found) == 1:
                chosen[symbol] = found[0]
            elif found:
                ambiguous[symbol] = found
            else:
                missing.append(symbol)
        if missing:
            raise PFDError(
                f"QE has no PBE pseudopotential for {', '.join(missing)} in "
                f"{pseudo_dir} (no file like {missing[0]}.pbe*.UPF); put one there or "
                "set labeler.parameters.pseudo_dir / pseudopotentials "
                f"{{{missing[0]}: FILE}}"
            )
        if ambiguous:
            listed = "; ".join(f"{el} ({', '.join(f)})" for el, f in ambiguous.items())
            symbol, found = next(iter(ambiguous.items()))
            raise PFDError(
                f"QE: several PBE pseudopotentials in {pseudo_dir} for {listed}; "
                "choose one per element in labeler.parameters.pseudopotentials, "
                f"e.g. {{{symbol}: {found[0]}}}"
            )
        return chosen

    def check(self, symbols: set[str]) -> None:
        require_binary(
            self.command,
            self.binary,
            self.env,
            "Quantum ESPRESSO",
            "install it (apt-get install quantum-espresso) or set labeler.command",
        )
        self.pseudopotentials(symbols)

    def calculate(self, atoms: Atoms, workdir: str) -> Atoms:
        directory = Path(workdir)
        output = directory / OUTPUT_FILE
        output.unlink(missing_ok=True)
        kpoints = self.parameters["kpoints"]
        grid = kpoint_grid(atoms, kpoints["density"], kpoints["type"])
        calc = Espresso(
            profile=GuardedProfile(
                command=self.command, pseudo_dir=self.parameters["pseudo_dir"]
            ),
            directory=str(directory),
            input_data=copy.deepcopy(self.parameters["input_data"]),
            pseudopotentials=self.pseudopotentials(set(atoms.get_chemical_symbols())),
            kpts=None if grid.is_gamma_only else grid.size,
            koffset=grid.qe_offset,
        )
        try:
            with environment(self.env):
                result = single_point(atoms, calc)
        except (subprocess.CalledProcessError, OSError, ValueError, IndexError) as err:
            raise LabelError(failure_reason(output, err)) from err
        if not_converged(output):
            raise LabelError(failure_reason(output, None))
        return result


def not_converged(output: Path) -> bool:
    text = output.read_text(errors="replace") if output.exists() else ""
    return "convergence NOT achieved" in text


def failure_reason(output: Path, err: Exception | None) -> str:
    """One line saying why pw.x gave no result, from its output."""
    text = output.read_text(errors="replace") if output.exists() else ""
    match = re.search(r"convergence NOT achieved after\s+(\d+)", text)
    if match:
        return (
            f"QE SCF did not converge in {match.group(1)} iterations "
            "(raise electron_maxstep or lower mixing_beta)"
        )
    match = re.search(r"%{10,}\n(.*?)\n\s*%{10,}", text, re.S)
    if match:
        message = " ".join(line.strip() for line in match.group(1).splitlines())
        return f"pw.x stopped: {' '.join(message.split())}"
    return f"pw.x gave no result ({type(err).__name__}: {err}); see {output}"
