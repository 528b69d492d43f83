"""``pfd init``: a commented run YAML whose choices fit one structure.

:func:`init_config` reads any structure ``ase.io`` understands and writes a YAML
that passes :func:`pfd.config.load_config` and runs as is. Every choice is
written with the reason for it, so the user knows what to change:

- temperatures from a melting-point estimate (:func:`melting_estimate`),
- NVT and 1 GPa for a periodic crystal, NVT only for a molecule,
- a supercell whose widths reach the foundation model's cutoff,
- the labeller's k-point density (metal or not) and plane-wave cutoff,
- for QE and CP2K: the pseudopotential files found on this machine,
- the Si example's loop sizes (6 initial frames, 6 labels per iteration).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from pfd.errors import PFDError
from pfd.init.dft import dft_section

#: Interaction cutoff of each built-in foundation model (Å): SevenNet-0's
#: 5 Å, CHGNet's atom graph 6 Å, MACE-MP and DPA-3 6 Å.
CUTOFF_A: dict[str, float] = {"sevennet": 5.0, "chgnet": 6.0, "mace": 6.0, "dpa": 6.0}
DEFAULT_CUTOFF_A = 6.0

#: In a compound of metals with non-metals (ionic, covalent) each element counts
#: at least this melting point: the solid melts far above its gaseous anions.
COMPOUND_FLOOR_K = 1000.0
VACUUM_A = 6.0  # around a molecule, each side
MD_TIME_FS = 400.0  # per trajectory, as the Si example (200 steps of 2 fs)


@dataclass(frozen=True)
class Melting:
    """A melting-point estimate (K) and where it came from (one line)."""

    kelvin: float
    source: str


@dataclass
class Choices:
    """What ``pfd init`` decided for one structure, with the reasons."""

    name: str
    structure: str  # path relative to the YAML
    formula: str
    periodic: bool
    supercell: tuple[int, int, int]
    widths_A: tuple[float, float, float]
    cutoff_A: float
    natoms: int
    melting: Melting | None
    temperatures_K: list[float]
    timestep_fs: float
    steps: int
    sample_every: int
    notes: list[str] = field(default_factory=list)


def melting_estimate(symbols: list[str]) -> Melting:
    """The melting point of an element (pymatgen's data), or a guess for a compound.

    A compound takes the composition-weighted mean of its elements' melting
    points; when it mixes metals with non-metals (oxides, halides, nitrides,
    ...) each element counts at least :data:`COMPOUND_FLOOR_K` (errs low: NaCl
    1000 K for 1074 K measured, MgO 1000 K for 3098 K, SiC 2740 K for 3003 K).
    """
    try:
        from pymatgen.core import Element
    except ImportError as err:
        raise PFDError(
            "pfd init needs pymatgen for melting points (pip install pymatgen), "
            "or give the melting point with --melting-K"
        ) from err
    species = sorted(set(symbols))
    elements = {s: Element(s) for s in species}
    points = {s: e.melting_point for s, e in elements.items()}
    unknown = [s for s, t in points.items() if t is None]
    if unknown:
        raise PFDError(
            f"no melting point known for {', '.join(unknown)}; give the material's "
            "melting point with --melting-K"
        )
    if len(species) == 1:
        (symbol,) = species
        return Melting(float(points[symbol]), f"{symbol}'s melting point (pymatgen)")
    metals = [e.is_metal for e in elements.values()]
    mixed = any(metals) and not all(metals)
    floor = COMPOUND_FLOOR_K if mixed else 0.0
    weights = {s: symbols.count(s) / len(symbols) for s in species}
    mean = sum(w * max(float(points[s]), floor) for s, w in weights.items())
    how = (
        f"a guess: the elements' mean, each at least {floor:g} K (metal + non-metal)"
        if mixed
        else "a guess: the elements' composition-weighted mean"
    )
    return Melting(mean, f"{how}; give the measured value with --melting-K")


def explore_temperatures(melting_K: float) -> list[float]:
    """~0.2, 0.5 and 0.9 of the melting point (300 K at most for the lowest),
    rounded to 50 K: the Si example's 300, 900, 1500 K for 1687 K."""
    raw = [min(300.0, 0.3 * melting_K), 0.5 * melting_K, 0.9 * melting_K]
    rounded = sorted({max(50.0, 50.0 * round(t / 50.0)) for t in raw})
    return [float(t) for t in rounded]


def perpendicular_widths(atoms: Atoms) -> tuple[float, float, float]:
    """Distance between opposite faces of the cell along each lattice vector (Å)."""
    cell = atoms.cell
    if cell.rank < 3:
        return (0.0, 0.0, 0.0)
    volume = abs(cell.volume)
    a, b, c = cell[:]
    areas = [np.linalg.norm(np.cross(b, c)), np.linalg.norm(np.cross(c, a))]
    areas.append(np.linalg.norm(np.cross(a, b)))
    return tuple(float(volume / s) for s in areas)  # type: ignore[return-value]


def supercell_for(atoms: Atoms, cutoff_A: float) -> tuple[int, int, int]:
    """The smallest repetition whose widths reach ``cutoff_A`` along periodic axes.

    No atom then meets its own periodic image within the model's cutoff; the
    stricter 2 x cutoff rule would make the Si example 64 atoms (20x the DFT).
    """
    if not any(atoms.pbc):
        return (1, 1, 1)
    widths = perpendicular_widths(atoms)
    reps = [
        max(1, math.ceil(cutoff_A / w - 1e-9)) if periodic and w > 0 else 1
        for w, periodic in zip(widths, atoms.pbc, strict=True)
    ]
    return tuple(reps)  # type: ignore[return-value]


def md_timestep_fs(atoms: Atoms) -> float:
    """2 fs, as the Si example; 1 fs with Li..Ne-light atoms, 0.5 fs with H."""
    lightest = float(min(atomic_masses[atoms.numbers]))
    if lightest < 4:
        return 0.5
    return 1.0 if lightest < 20 else 2.0


def read_structure(path: Path) -> Atoms:
    """The last frame of ``path``, or a one-line error naming the problem."""
    from ase.io import read

    if not path.is_file():
        raise PFDError(f"structure file '{path}' not found; give an existing file")
    try:
        atoms = read(path)
    except Exception as err:  # ase.io raises many types for bad files
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PFDError(
            f"cannot read structure file '{path}' ({first}); give a file ASE reads "
            "(extxyz, cif, POSCAR, ...) with element symbols it knows"
        ) from err
    if isinstance(atoms, list):
        atoms = atoms[-1]
    if len(atoms) == 0:
        raise PFDError(f"structure file '{path}' holds no atoms")
    unknown = sorted(
        {s for s in atoms.get_chemical_symbols() if s not in atomic_numbers}
    )
    if unknown or 0 in atoms.numbers:
        raise PFDError(f"structure file '{path}' has unknown element(s) {unknown}")
    return atoms


def boxed(atoms: Atoms) -> Atoms | None:
    """A copy in a box with :data:`VACUUM_A` around it, if a molecule lacks one."""
    if any(atoms.pbc):
        return None
    if atoms.cell.rank == 3:
        span = atoms.positions.max(axis=0) - atoms.positions.min(axis=0)
        if all(perpendicular_widths(atoms) >= span + 2 * VACUUM_A - 1e-6):
            return None
    new = atoms.copy()
    new.center(vacuum=VACUUM_A)
    return new


def decide(
    atoms: Atoms, structure: str, model: str, melting_K: float | None
) -> Choices:
    """Every structure-dependent choice of the YAML, with its reasons."""
    periodic = bool(all(atoms.pbc))
    symbols = atoms.get_chemical_symbols()
    name = Path(structure).stem.lower().replace(" ", "_")
    cutoff = CUTOFF_A.get(model, DEFAULT_CUTOFF_A)
    supercell = supercell_for(atoms, cutoff)
    big = atoms.repeat(supercell) if any(atoms.pbc) else atoms
    melting = None
    if periodic:
        melting = (
            Melting(melting_K, "given with --melting-K")
            if melting_K
            else melting_estimate(symbols)
        )
        temperatures = explore_temperatures(melting.kelvin)
    else:
        temperatures = [300.0, 600.0, 900.0]
    dt = md_timestep_fs(atoms)
    steps = round(MD_TIME_FS / dt)
    return Choices(
        name=name,
        structure=structure,
        formula=big.get_chemical_formula(),
        periodic=periodic,
        supercell=supercell,
        widths_A=perpendicular_widths(big),
        cutoff_A=cutoff,
        natoms=len(big),
        melting=melting,
        temperatures_K=temperatures,
        timestep_fs=dt,
        steps=steps,
        sample_every=max(1, steps // 40),
    )


def init_config(
    structure: str | Path,
    out: str | Path = "pfd.yaml",
    *,
    dft: str = "gpaw",
    model: str = "sevennet",
    checkpoint: str | None = None,
    melting_K: float | None = None,
    check_model: bool = True,
) -> Path:
    """Write a commented run YAML for ``structure`` to ``out``; return its path.

    A molecule without a box gets a boxed copy (``<stem>-box.extxyz``) next to
    the YAML. With ``check_model``, the foundation model must cover the elements.
    """
    from pfd.init.render import render

    structure, out = Path(structure), Path(out)
    name = structure.stem
    atoms = read_structure(structure)
    if check_model:
        check_elements(model, checkpoint, set(atoms.get_chemical_symbols()))
    box = boxed(atoms)
    if box is not None:
        path = out.parent / f"{structure.stem}-box.extxyz"
        from ase.io import write

        out.parent.mkdir(parents=True, exist_ok=True)
        write(path, box)
        structure, atoms = path, box
    rel = os.path.relpath(structure.resolve(), out.resolve().parent)
    if rel.startswith(f"..{os.sep}.."):  # far away: where it is
        rel = str(structure.resolve())
    choices = decide(atoms, rel, model, melting_K)
    choices.name = name.lower().replace(" ", "_")
    if box is not None:
        choices.notes.append(f"boxed copy with {VACUUM_A:g} Å of vacuum each side")
    labeler = dft_section(
        dft, sorted(set(atoms.get_chemical_symbols())), atoms, choices
    )
    text = render(choices, model, checkpoint, labeler)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def check_elements(model: str, checkpoint: str | None, symbols: set[str]) -> None:
    """One line if the foundation model does not cover ``symbols``."""
    from pfd.models import backend_by_name, backend_class

    cls = backend_class(model)
    name = checkpoint or getattr(cls, "default_checkpoint", None)
    if not name:
        raise PFDError(
            f"model backend '{model}' has no default checkpoint; give --checkpoint"
        )
    backend = backend_by_name(model, "cpu", 1)
    backend.check_elements(backend.resolve(name), symbols)
