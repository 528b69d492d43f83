"""The labeller section ``pfd init`` writes: parameters that fit the element set.

Each code's preset (``pfd.label.<code>.PRESET``) stays the base; only what
depends on the structure is written: the k-point density (metal or not), GPAW's
plane-wave cutoff for hard PAW setups, and for QE the pseudopotential file of
each element found on this machine. The labeller's own ``check`` is then run
here: what it says (a missing binary, pseudopotential or setup) is written as a
comment naming what to set, and ``pfd run --dry-run`` says it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ase import Atoms

from pfd.errors import PFDError

#: k-point density (points per Å⁻¹, pfd.label.kpoints): the presets' 2.0 for
#: semiconductors and insulators (converged for Si), more for metals, whose
#: Fermi surface needs a finer grid.
KDENSITY = 2.0
KDENSITY_METAL = 3.5

#: GPAW: 350 eV (the preset, converged for Si) unless an element's PAW setup is
#: hard: H and the 3d metals want ~500 eV, the first-row p elements 800 eV
#: (measured on H2O in a box: at 500 eV the O force is 0.17 eV/Å off the
#: 800 eV one and the forces sum to 0.09 eV/Å; at 800 eV to 0.001, and within
#: 0.03 eV/Å of a real-space grid of h = 0.18 Å without images).
GPAW_ECUT_EV = 350.0
GPAW_ECUT_HARD_EV = 500.0
GPAW_ECUT_FIRST_ROW_EV = 800.0
HARD = frozenset(
    "H B C N O F Sc Ti V Cr Mn Fe Co Ni Cu Zn".split()  # noqa: SIM905
)
FIRST_ROW = frozenset(["B", "C", "N", "O", "F"])
MAGNETIC = frozenset(["Cr", "Mn", "Fe", "Co", "Ni", "Gd"])

PRESETS = {
    "gpaw": "PW 350 eV, PBE, Fermi-Dirac 0.05 eV (pfd.label.gpaw.PRESET)",
    "qe": "PBE, ecutwfc 50 Ry, ecutrho 400 Ry, MV smearing 0.01 Ry (pfd.label.qe)",
    "cp2k": "PBE, GTH, DZVP-MOLOPT-SR-GTH, CUTOFF 500 Ry (pfd.label.cp2k)",
    "vasp": "PBE, ENCUT 520 eV, Gaussian 0.05 eV, EDIFF 1e-6 (pfd.label.vasp)",
    "abacus": "PW, ecutwfc 60 Ry, Gaussian 0.05 eV (pfd.label.abacus)",
}

#: How each code treats the box of a molecule. GPAW chooses its own per frame
#: (pfd.label.results.in_box); the others compute the structure's cell as given.
BOX_NOTES = {
    "gpaw": "GPAW: each frame with pbc=False and the Γ point only, in its own cell "
    "when that leaves >= 4 Å of vacuum on every side, else centred in a new box "
    "with 6 Å; the plane waves repeat the box: a charged molecule wants "
    "parameters.charge (GPAW then corrects for the images)",
    "qe": "QE repeats the box: >= 6 Å vacuum; a polar molecule wants "
    "parameters.assume_isolated: 'mt'",
    "cp2k": "CP2K: the box is non-periodic (Poisson solver without images); keep "
    ">= 6 Å of vacuum",
    "vasp": "VASP repeats the box: >= 6 Å vacuum; a polar molecule wants "
    "parameters.ldipol/idipol",
    "abacus": "ABACUS repeats the box: >= 6 Å vacuum around the molecule",
}


@dataclass
class DFTChoice:
    """The ``labeler`` section: parameters with a comment each, notes above it."""

    code: str
    parameters: dict[str, Any] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def is_metal(symbols: list[str]) -> bool:
    """Whether every element is a metal (pymatgen; ASE when it is missing)."""
    try:
        from pymatgen.core import Element
    except ImportError:  # ASE's reference states: a metal's is a close packing
        from ase.data import atomic_numbers, reference_states

        packed = ("fcc", "bcc", "hcp")
        return all(
            (reference_states[atomic_numbers[s]] or {}).get("symmetry") in packed
            for s in symbols
        )
    return all(Element(s).is_metal for s in symbols)


def dft_section(code: str, symbols: list[str], atoms: Atoms, choices) -> DFTChoice:
    """What ``labeler:`` should say for these elements and this structure."""
    if code not in PRESETS:
        raise PFDError(
            f"pfd init knows the DFT codes {', '.join(PRESETS)}, not '{code}'; "
            "choose one with --dft (other labellers: edit labeler.code after)"
        )
    out = DFTChoice(code=code)
    out.notes.append(f"preset: {PRESETS[code]}; every key below overrides it")
    key = "kpts" if code == "gpaw" else "kpoints"
    if choices.periodic:
        metal = is_metal(symbols)
        density = KDENSITY_METAL if metal else KDENSITY
        out.parameters[key] = {"density": density}
        kind = "a metal" if metal else "not a metal"
        out.comments[key] = f"points per Å⁻¹: {kind}"
    else:
        out.notes.append(BOX_NOTES[code])
    if code == "gpaw":
        hard = sorted(set(symbols) & HARD)
        if hard:
            first_row = set(hard) & FIRST_ROW
            ecut = GPAW_ECUT_FIRST_ROW_EV if first_row else GPAW_ECUT_HARD_EV
            out.parameters["mode"] = {"name": "pw", "ecut": ecut}
            out.comments["mode"] = f"hard PAW setups ({', '.join(hard)})"
    if magnetic := sorted(set(symbols) & MAGNETIC):
        out.notes.append(
            f"{', '.join(magnetic)}: the preset is not spin-polarised; set the "
            "code's spin keywords if the material is magnetic"
        )
    _check_here(out, symbols)
    return out


def _check_here(out: DFTChoice, symbols: list[str]) -> None:
    """Run the labeller's check; QE's pseudopotentials found are written down."""
    from pfd.config import LabelerConfig
    from pfd.label import make_labeler

    try:
        if out.code == "qe":
            from pfd.label.qe import PRESET

            _qe_pseudopotentials(out, symbols, PRESET["pseudo_dir"])
        labeler = make_labeler(LabelerConfig(code=out.code, parameters=out.parameters))
        if out.code == "cp2k":
            kinds = labeler.kinds(set(symbols))  # type: ignore[attr-defined]
            named = "; ".join(f"{s}: {b}, {p}" for s, (b, p) in kinds.items())
            out.notes.append(f"CP2K basis sets and potentials found: {named}")
        labeler.check(set(symbols))
    except PFDError as err:
        out.notes.append(f"NOT READY on this machine: {err}")


def _qe_pseudopotentials(out: DFTChoice, symbols: list[str], pseudo_dir: str) -> None:
    """The first PBE file of each element in ``pseudo_dir``; the others named."""
    from pathlib import Path

    from pfd.label.qe import pseudo_candidates

    if not Path(pseudo_dir).is_dir():
        return  # the check says what to set
    found = {s: pseudo_candidates(Path(pseudo_dir), s) for s in symbols}
    if not all(found.values()):
        return
    out.parameters["pseudopotentials"] = {s: files[0] for s, files in found.items()}
    out.comments["pseudopotentials"] = f"PBE files found in {pseudo_dir}"
    for symbol, files in found.items():
        if len(files) > 1:
            out.notes.append(
                f"QE: other PBE files for {symbol}: {', '.join(files[1:])}"
            )
