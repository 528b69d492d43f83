"""Structure variants: defects, surfaces, other phases and melts of one crystal.

Each generator takes one periodic structure (ASE ``Atoms``) and returns new
ones carrying ``info['variant']`` (``'vacancy-Si0'``, ``'interstitial-Si-1'``,
``'slab-100'``, ``'phase-2'``, ``'melt'``) and the input's ``info['structure']``
so the loop explores, selects and labels them like any structure and reports
errors per variant. pymatgen-analysis-defects and pyxtal (``pfd[variants]``)
are imported only when their variant is asked for.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from numbers import Integral
from typing import Any

import numpy as np
import spglib
from ase import Atoms
from ase.build import find_optimal_cell_shape, make_supercell, surface
from ase.calculators.calculator import Calculator
from ase.data import chemical_symbols
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pfd.config import RampConfig
from pfd.errors import ConfigError, PFDError
from pfd.structures import too_close

SYMPREC = 1e-2  # Å, spglib's tolerance: forgiving for relaxed (slightly noisy) inputs
ROOM_K = 300.0
OVERLAP_FACTOR = 0.7  # of the covalent-radius sum: a closer pair is an overlap
INSTALL = "pip install 'pfd[variants]'"

CalculatorFactory = Callable[[], Calculator]


def miller_index(value: Any) -> tuple[int, int, int]:
    """Check one Miller index: three integers, not all zero (``[1, 1, 1]``)."""
    items = list(value) if isinstance(value, list | tuple | np.ndarray) else []
    if (
        len(items) != 3
        or not all(isinstance(h, Integral) and not isinstance(h, bool) for h in items)
        or not any(items)
    ):
        raise ConfigError(
            f"bad Miller index {value!r}: give three integers, not all zero, "
            "e.g. [1, 1, 1]"
        )
    return (int(items[0]), int(items[1]), int(items[2]))


class VariantsConfig(BaseModel):
    """Which variants of one structure to generate (all off by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    vacancies: bool = Field(False, description="One vacancy per distinct site.")
    interstitials: list[str] | bool = Field(
        False, description="True: each element of the structure; or a list of them."
    )
    max_interstitial_sites: int = Field(2, ge=1, description="Per inserted element.")
    surfaces: list[tuple[int, int, int]] = Field(
        default_factory=list, description="Miller indices: [[1, 0, 0], [1, 1, 1]]."
    )
    layers: int = Field(4, ge=1, description="Atomic planes of each slab.")
    vacuum_A: float = Field(10.0, gt=0, description="Vacuum between slab images.")
    phases: int = Field(0, ge=0, description="Random phases kept (pyxtal + relax).")
    phase_max_atoms: int = Field(16, ge=1, description="Largest random cell.")
    melt: bool = Field(False, description="Melt-and-quench ramps of a supercell.")
    melting_K: float | None = Field(
        None, gt=0, description="Melting point; elements default to pymatgen's table."
    )
    min_atoms: int = Field(32, ge=1, description="Smallest defect/melt supercell.")

    @field_validator("surfaces", mode="before")
    @classmethod
    def _miller(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise ValueError(
                f"give a list of Miller indices, e.g. [[1, 1, 1]], not {value!r}"
            )
        try:
            return [miller_index(v) for v in value]
        except ConfigError as err:
            raise ValueError(str(err)) from None

    @field_validator("interstitials")
    @classmethod
    def _elements(cls, value: list[str] | bool) -> list[str] | bool:
        listed = value if isinstance(value, list) else []
        bad = [s for s in listed if s not in chemical_symbols[1:]]
        if bad:
            raise ValueError(f"unknown element(s) {bad}; give symbols like 'Si'")
        return value


def _check_periodic(atoms: Atoms, what: str) -> None:
    if not all(atoms.pbc):
        name = atoms.info.get("name", atoms.get_chemical_formula())
        raise ConfigError(
            f"structure '{name}' is not periodic (pbc={atoms.pbc.tolist()}): "
            f"{what} needs a crystal; remove the variants of this structure or give "
            "it a cell with pbc true"
        )


def _tag(atoms: Atoms, parent: Atoms, variant: str, **extra: Any) -> Atoms:
    atoms.calc = None
    atoms.pbc = True
    name = parent.info.get("name", parent.get_chemical_formula())
    atoms.info = {
        "structure": parent.info.get("structure", 0),
        "name": f"{name}:{variant}",
        "variant": variant,
        **extra,
    }
    return atoms


def _spglib(name: str, atoms: Atoms, symprec: float = SYMPREC, **kwargs: Any) -> Any:
    """``spglib.<name>`` of ``atoms``; None where spglib finds no symmetry."""
    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    with warnings.catch_warnings():  # spglib 2.x warns about its legacy error mode
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return getattr(spglib, name)(cell, symprec=symprec, **kwargs)
        except Exception:  # spglib raises its own error type on failure
            return None


def standard_cell(atoms: Atoms, primitive: bool = False) -> Atoms:
    """spglib's conventional (or primitive) cell, not idealised; the input's
    own cell where spglib finds no symmetry."""
    std = _spglib("standardize_cell", atoms, to_primitive=primitive, no_idealize=True)
    if std is None:
        return Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
    lattice, scaled, numbers = std
    return Atoms(numbers, scaled_positions=scaled, cell=lattice, pbc=True)


@lru_cache(maxsize=64)
def _cubic_shape(cell: tuple[float, ...], size: int) -> np.ndarray:
    """ASE's search for the supercell matrix closest to simple cubic (seconds)."""
    return find_optimal_cell_shape(np.reshape(cell, (3, 3)), size, "sc")


def host_cell(atoms: Atoms, min_atoms: int) -> tuple[Atoms, Atoms]:
    """(unit, supercell of unit) with at least ``min_atoms`` atoms.

    The input twice if it is large enough; else its primitive cell and the
    supercell of it closest to simple cubic (``find_optimal_cell_shape``).
    """
    if len(atoms) >= min_atoms:
        same = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
        return same, same.copy()
    unit = standard_cell(atoms, primitive=True)
    size = math.ceil(min_atoms / len(unit))
    key = tuple(np.round(unit.cell[:], 6).ravel().tolist())
    return unit, make_supercell(unit, _cubic_shape(key, size)) if size > 1 else unit


def distinct_sites(atoms: Atoms) -> list[tuple[int, int]]:
    """(first index, multiplicity) of each symmetry-distinct site (spglib's
    equivalent atoms; without symmetry, the first atom of each element)."""
    data = _spglib("get_symmetry_dataset", atoms)
    labels = np.asarray(data.equivalent_atoms) if data is not None else atoms.numbers
    counts = Counter(labels.tolist())
    firsts = sorted(int(np.flatnonzero(labels == lab)[0]) for lab in counts)
    return [(i, counts[labels[i]]) for i in firsts]


def vacancies(atoms: Atoms, min_atoms: int = 32) -> list[Atoms]:
    """One vacancy on each symmetry-distinct site of a supercell of ``atoms``.

    The perfect supercell has at least ``min_atoms`` atoms (:func:`host_cell`).
    Each cell is ``'vacancy-<element><k>'`` (k counts that element's distinct
    sites) with the site's ``multiplicity`` in the supercell.
    """
    _check_periodic(atoms, "a vacancy")
    host = host_cell(atoms, min_atoms)[1]
    seen: Counter[str] = Counter()
    out = []
    for index, multiplicity in distinct_sites(host):
        symbol = host[index].symbol
        cell = host.copy()
        del cell[index]
        name = f"vacancy-{symbol}{seen[symbol]}"
        out.append(_tag(cell, atoms, name, multiplicity=multiplicity))
        seen[symbol] += 1
    return out


def _to_structure(atoms: Atoms) -> Any:
    from pymatgen.io.ase import AseAtomsAdaptor

    bare = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
    return AseAtomsAdaptor.get_structure(bare)


def interstitials(
    atoms: Atoms,
    species: Sequence[str] | None = None,
    min_atoms: int = 32,
    max_sites: int = 2,
) -> list[Atoms]:
    """Interstitials at the distinct Voronoi sites of the crystal.

    Sites: pymatgen-analysis-defects' ``VoronoiInterstitialGenerator`` (symmetry
    reduced, no charge density needed) on the primitive cell, placed in the
    supercell of :func:`host_cell`. Per element, the ``max_sites`` most open
    sites whose atom clears the host (0.6x the covalent-radius sum) are kept.

    ``species`` None means each element of ``atoms``. Each cell is
    ``'interstitial-<element>-<k>'`` (most open first) with ``gap_A``, the
    distance from the inserted atom to the nearest host atom.
    """
    _check_periodic(atoms, "an interstitial")
    try:
        from pymatgen.analysis.defects.generators import VoronoiInterstitialGenerator
    except ImportError as err:
        raise PFDError(f"interstitials need {err.name}; {INSTALL}") from err
    unit, host = host_cell(atoms, min_atoms)
    species = list(species or dict.fromkeys(atoms.get_chemical_symbols()))
    found: dict[str, list[tuple[float, Atoms]]] = {s: [] for s in species}
    for defect in VoronoiInterstitialGenerator().generate(_to_structure(unit), species):
        symbol = defect.site.specie.symbol
        cell = host + Atoms(symbol, positions=[defect.site.coords])
        cell.wrap()
        if not too_close(cell, 0.6):
            gap = cell.get_distances(len(host), range(len(host)), mic=True).min()
            found[symbol].append((round(float(gap), 3), cell))
    return [
        _tag(cell, atoms, f"interstitial-{symbol}-{k}", gap_A=gap)
        for symbol in species
        for k, (gap, cell) in enumerate(
            sorted(found[symbol], key=lambda c: -c[0])[:max_sites]
        )
    ]


def _planes(atoms: Atoms, tol: float = 0.1) -> np.ndarray:
    """Heights of the atomic planes along z (clustered within ``tol`` Å)."""
    z = np.sort(atoms.positions[:, 2])
    return z[np.concatenate([[True], np.diff(z) > tol])]


def _slab(unit: Atoms, hkl: tuple[int, int, int], layers: int) -> Atoms:
    """``layers`` atomic planes of ``unit`` normal to ``hkl``; whole bulk periods
    (more planes) where a cut at ``layers`` would change the composition."""
    per_period = len(_planes(surface(unit, hkl, 1, periodic=False)))
    slab = surface(unit, hkl, math.ceil(layers / per_period), periodic=False)
    trimmed = slab[slab.positions[:, 2] < _planes(slab)[layers - 1] + 0.05]
    bulk = np.bincount(unit.numbers) / len(unit)
    cut = np.bincount(trimmed.numbers, minlength=len(bulk)) / len(trimmed)
    return trimmed if np.allclose(cut, bulk) else slab


def slabs(
    atoms: Atoms,
    miller: Sequence[Sequence[int]] = ((1, 0, 0), (1, 1, 1)),
    layers: int = 4,
    vacuum_A: float = 10.0,
    min_atoms: int = 16,
) -> list[Atoms]:
    """Slabs cut from the conventional cell (``ase.build.surface``).

    Miller indices (three integers each, ``[1, 1, 1]``) refer to the
    conventional cell. A slab has ``layers`` atomic planes (whole bulk periods
    where that would break the composition), ``vacuum_A`` between it and its
    image along the normal (the third cell vector), and is repeated in-plane
    to at least ``min_atoms``. Each is ``'slab-<hkl>'`` (``'slab-1-10'``), pbc
    True (for plane-wave DFT) with ``fixed_cell`` True: explore it NVT only.
    """
    indices = [miller_index(hkl) for hkl in miller]
    _check_periodic(atoms, "a surface slab")
    unit = standard_cell(atoms)
    out = []
    for hkl in indices:
        slab = _slab(unit, hkl, layers)
        reps = np.ones(3, dtype=int)
        while len(slab) * reps.prod() < min_atoms:
            reps[int(np.argmin(reps[:2] * slab.cell.lengths()[:2]))] += 1
        slab = slab.repeat(tuple(int(r) for r in reps))
        slab.center(vacuum=vacuum_A / 2, axis=2)
        name = "slab-" + "".join(str(h) for h in hkl)
        out.append(_tag(slab, atoms, name, miller=list(hkl), fixed_cell=True))
    return out


def melting_point(atoms: Atoms, melting_K: float | None = None) -> float:
    """The user's melting point, or an element's tabulated one (pymatgen).

    None is guessed for compounds: the elements' would be wrong by hundreds of
    K (NaCl melts at 1074 K, Na at 371 K, Cl2 at 172 K).
    """
    if melting_K is not None:
        return float(melting_K)
    symbols = set(atoms.get_chemical_symbols())
    if len(symbols) == 1:
        from pymatgen.core import Element

        value = Element(symbols.pop()).melting_point
        if value is not None:
            return float(value)
    raise ConfigError(
        f"no melting point for {atoms.get_chemical_formula()}: give "
        "variants.melting_K (K), e.g. 1074 for NaCl"
    )


def melt_ramps(melting_K: float, steps: int = 2000) -> list[RampConfig]:
    """The melt variant's ramps, each its own trajectory: a liquid held at 1.5x
    the melting point, and a quench from there to 300 K."""
    top = 1.5 * melting_K
    return [
        RampConfig(start_K=top, stop_K=top, steps=steps),
        RampConfig(start_K=top, stop_K=ROOM_K, steps=steps),
    ]


def melt(atoms: Atoms, melting_K: float | None = None, min_atoms: int = 32) -> Atoms:
    """The melt variant: a supercell whose ``info['ramps']`` are :func:`melt_ramps`."""
    _check_periodic(atoms, "a melt")
    ramps = melt_ramps(melting_point(atoms, melting_K))
    cell = host_cell(atoms, min_atoms)[1]
    return _tag(cell, atoms, "melt", ramps=[r.model_dump() for r in ramps])


def generate(
    atoms: Atoms,
    cfg: VariantsConfig,
    calculator_factory: CalculatorFactory | None = None,
    seed: int = 0,
) -> list[Atoms]:
    """Every variant of ``atoms`` that ``cfg`` asks for, in a fixed order."""
    asked = cfg.vacancies or cfg.interstitials or cfg.surfaces or cfg.phases
    if not (asked or cfg.melt):
        return []
    _check_periodic(atoms, "a variant")
    out: list[Atoms] = []
    if cfg.vacancies:
        out += vacancies(atoms, cfg.min_atoms)
    if cfg.interstitials:
        species = None if cfg.interstitials is True else cfg.interstitials
        out += interstitials(atoms, species, cfg.min_atoms, cfg.max_interstitial_sites)
    if cfg.surfaces:
        out += slabs(atoms, cfg.surfaces, cfg.layers, cfg.vacuum_A)
    if cfg.phases:
        from pfd.phases import random_phases

        out += random_phases(
            atoms, cfg.phases, calculator_factory, seed, cfg.phase_max_atoms
        )
    if cfg.melt:
        out.append(melt(atoms, cfg.melting_K, cfg.min_atoms))
    return out


def describe(variants: list[Atoms]) -> list[str]:
    """One line per kind and size: ``'vacancy: 2 x 31 atoms (Na0, Cl0)'``."""
    groups: dict[tuple[str, int], list[str]] = {}
    for atoms in variants:
        kind, _, detail = atoms.info["variant"].partition("-")
        groups.setdefault((kind, len(atoms)), []).append(detail)
    return [
        f"{kind}: {len(details)} x {size} atoms"
        + (f" ({', '.join(details)})" if any(details) else "")
        for (kind, size), details in groups.items()
    ]
