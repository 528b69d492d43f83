"""Structure variants: defects, surfaces, other phases and melts of one crystal.

Each generator takes one periodic input structure (ASE ``Atoms``) and returns
new ones, each with ``info['variant']`` (``'vacancy-Si0'``, ``'interstitial-Si-1'``,
``'slab-100'``, ``'phase-2'``, ``'melt'``) and the input's ``info['structure']``
and ``info['name']``, so that the loop can explore, select and label them like
any other structure and report errors per variant. The heavy libraries
(pymatgen-analysis-defects, pyxtal) are imported only when their variant is asked.
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
OVERLAP_FACTOR = 0.7  # of the covalent-radius sum: closer is an overlapping candidate

CalculatorFactory = Callable[[], Calculator]


def miller_index(value: Any) -> tuple[int, int, int]:
    """Check one Miller index: three integers, not all zero (``[1, 1, 1]``)."""
    items = list(value) if isinstance(value, list | tuple | np.ndarray) else None
    if (
        items is None
        or len(items) != 3
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
        default_factory=list, description="Miller indices, e.g. [[1, 0, 0], [1, 1, 1]]."
    )
    layers: int = Field(4, ge=1, description="Atomic planes of each slab (at least).")
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
            return value
        try:
            return [miller_index(v) for v in value]
        except ConfigError as err:
            raise ValueError(str(err)) from None

    @field_validator("interstitials")
    @classmethod
    def _elements(cls, value: list[str] | bool) -> list[str] | bool:
        if isinstance(value, list):
            bad = [s for s in value if s not in chemical_symbols[1:]]
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
    atoms.info = {
        "structure": parent.info.get("structure", 0),
        "name": f"{parent.info.get('name', parent.get_chemical_formula())}:{variant}",
        "variant": variant,
        **extra,
    }
    return atoms


def _spg_cell(atoms: Atoms) -> tuple:
    return (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)


def _spglib(name: str, atoms: Atoms, **kwargs: Any) -> Any:
    """``spglib.<name>`` of ``atoms``; None where spglib finds no symmetry."""
    with warnings.catch_warnings():  # spglib 2.x warns on its legacy error mode
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return getattr(spglib, name)(_spg_cell(atoms), **kwargs)
        except Exception:  # spglib raises its own error type on failure
            return None


def conventional_cell(atoms: Atoms, symprec: float = SYMPREC) -> Atoms:
    """spglib's conventional cell of ``atoms`` (not idealised); the input's own
    cell if spglib finds no symmetry."""
    std = _spglib("standardize_cell", atoms, no_idealize=True, symprec=symprec)
    if std is None:
        return Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
    lattice, scaled, numbers = std
    return Atoms(numbers, scaled_positions=scaled, cell=lattice, pbc=True)


def primitive_cell(atoms: Atoms, symprec: float = SYMPREC) -> Atoms:
    """spglib's primitive cell of ``atoms`` (not idealised); the input's own
    cell if spglib finds no symmetry."""
    std = _spglib(
        "standardize_cell", atoms, to_primitive=True, no_idealize=True, symprec=symprec
    )
    if std is None:
        return Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
    lattice, scaled, numbers = std
    return Atoms(numbers, scaled_positions=scaled, cell=lattice, pbc=True)


def _host(atoms: Atoms, min_atoms: int, symprec: float) -> tuple[Atoms, Atoms]:
    """(unit, supercell): the input twice if it has ``min_atoms`` atoms; else
    its primitive cell and the supercell of it closest to simple cubic with at
    least ``min_atoms`` atoms (``ase.build.find_optimal_cell_shape``)."""
    if len(atoms) >= min_atoms:
        same = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
        return same, same.copy()
    unit = primitive_cell(atoms, symprec)
    size = math.ceil(min_atoms / len(unit))
    if size == 1:
        return unit, unit.copy()
    return unit, make_supercell(unit, _cubic_shape(_key(unit.cell[:]), size))


def _key(cell: np.ndarray) -> tuple[float, ...]:
    return tuple(np.round(cell, 6).ravel().tolist())


@lru_cache(maxsize=64)
def _cubic_shape(cell: tuple[float, ...], size: int) -> np.ndarray:
    """ASE's search for the supercell matrix closest to simple cubic (seconds)."""
    return find_optimal_cell_shape(np.reshape(cell, (3, 3)), size, "sc")


def host_cell(atoms: Atoms, min_atoms: int, symprec: float = SYMPREC) -> Atoms:
    """A supercell of at least ``min_atoms`` atoms, as cubic as ASE finds.

    The input itself if it is large enough; otherwise a supercell of its
    primitive cell (see :func:`_host`).
    """
    return _host(atoms, min_atoms, symprec)[1]


def distinct_sites(atoms: Atoms, symprec: float = SYMPREC) -> list[tuple[int, int]]:
    """(representative index, multiplicity) of each symmetry-distinct site.

    spglib's equivalent atoms; without symmetry, the first atom of each element.
    """
    data = _spglib("get_symmetry_dataset", atoms, symprec=symprec)
    labels = np.asarray(data.equivalent_atoms) if data is not None else atoms.numbers
    counts = Counter(labels.tolist())
    firsts = sorted({int(np.flatnonzero(labels == lab)[0]) for lab in counts})
    return [(i, counts[labels[i]]) for i in firsts]


def vacancies(
    atoms: Atoms, min_atoms: int = 32, symprec: float = SYMPREC
) -> list[Atoms]:
    """One vacancy on each symmetry-distinct site of a supercell of ``atoms``.

    Parameters
    ----------
    atoms
        A periodic crystal.
    min_atoms
        The perfect supercell has at least this many atoms (see :func:`host_cell`).
    symprec
        spglib's tolerance in Å.

    Returns
    -------
    list of Atoms
        ``variant`` ``'vacancy-<element><k>'`` (k counts the element's distinct
        sites), ``multiplicity`` the number of equivalent sites in the supercell.
    """
    _check_periodic(atoms, "a vacancy")
    host = host_cell(atoms, min_atoms, symprec)
    seen: Counter[str] = Counter()
    out = []
    for index, multiplicity in distinct_sites(host, symprec):
        symbol = host[index].symbol
        cell = host.copy()
        del cell[index]
        out.append(
            _tag(
                cell,
                atoms,
                f"vacancy-{symbol}{seen[symbol]}",
                multiplicity=multiplicity,
            )
        )
        seen[symbol] += 1
    return out


def _to_structure(atoms: Atoms) -> Any:
    try:
        from pymatgen.io.ase import AseAtomsAdaptor
    except ImportError as err:
        raise PFDError(
            f"this variant needs pymatgen ({err}); pip install 'pfd[variants]'"
        ) from err
    return AseAtomsAdaptor.get_structure(
        Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
    )


def interstitials(
    atoms: Atoms,
    species: Sequence[str] | None = None,
    min_atoms: int = 32,
    max_sites: int = 2,
    symprec: float = SYMPREC,
) -> list[Atoms]:
    """Interstitials at the distinct Voronoi sites of the crystal.

    Sites come from pymatgen-analysis-defects' ``VoronoiInterstitialGenerator``
    (symmetry-reduced, no charge density needed) on the primitive cell; for
    each element the ``max_sites`` most open ones (largest distance to the host)
    whose atom would not overlap the host (0.6x the covalent-radius sum) are kept.

    Parameters
    ----------
    atoms
        A periodic crystal.
    species
        Elements to insert; None means each element of ``atoms``.
    min_atoms, symprec
        As for :func:`vacancies`.
    max_sites
        Sites kept per element.

    Returns
    -------
    list of Atoms
        n + 1 atoms each, ``variant`` ``'interstitial-<element>-<k>'``.
    """
    _check_periodic(atoms, "an interstitial")
    try:
        from pymatgen.analysis.defects.generators import VoronoiInterstitialGenerator
    except ImportError as err:
        raise PFDError(
            f"interstitials need pymatgen-analysis-defects ({err}); "
            "pip install 'pfd[variants]'"
        ) from err
    unit, host = _host(atoms, min_atoms, symprec)  # host repeats unit
    species = list(species or dict.fromkeys(atoms.get_chemical_symbols()))
    defects = VoronoiInterstitialGenerator().generate(_to_structure(unit), species)
    candidates: dict[str, list[tuple[float, Atoms]]] = {s: [] for s in species}
    for defect in defects:
        symbol = defect.site.specie.symbol
        cell = host + Atoms(symbol, positions=[defect.site.coords], pbc=True)
        cell.wrap()
        if too_close(cell, 0.6):
            continue
        gap = float(cell.get_distances(len(host), range(len(host)), mic=True).min())
        candidates[symbol].append((gap, cell))
    out = []
    for symbol in species:
        best = sorted(candidates[symbol], key=lambda c: -c[0])[:max_sites]
        out.extend(
            _tag(cell, atoms, f"interstitial-{symbol}-{k}", gap_A=round(gap, 3))
            for k, (gap, cell) in enumerate(best)
        )
    return out


def _planes(atoms: Atoms, tol: float = 0.1) -> np.ndarray:
    """Heights of the atomic planes along z (clustered within ``tol`` Å)."""
    z = np.sort(atoms.positions[:, 2])
    return z[np.concatenate([[True], np.diff(z) > tol])]


def _slab(unit: Atoms, hkl: tuple[int, int, int], layers: int) -> Atoms:
    """A slab of ``layers`` atomic planes, or whole bulk periods if a cut at
    ``layers`` planes would change the composition."""
    one = surface(unit, hkl, 1, periodic=False)
    per_period = len(_planes(one))
    slab = surface(unit, hkl, math.ceil(layers / per_period), periodic=False)
    z = slab.positions[:, 2]
    top = _planes(slab)[layers - 1] + 0.05
    trimmed = slab[z < top]
    bulk_ratio = np.bincount(unit.numbers) / len(unit)
    ratio = np.bincount(trimmed.numbers, minlength=len(bulk_ratio)) / len(trimmed)
    return trimmed if np.allclose(ratio, bulk_ratio) else slab


def slabs(
    atoms: Atoms,
    miller: Sequence[Sequence[int]] = ((1, 0, 0), (1, 1, 1)),
    layers: int = 4,
    vacuum_A: float = 10.0,
    min_atoms: int = 16,
    symprec: float = SYMPREC,
) -> list[Atoms]:
    """Slabs cut from the conventional cell, one per Miller index.

    Parameters
    ----------
    atoms
        A periodic crystal; Miller indices refer to its conventional cell.
    miller
        Miller indices, each three integers (``[1, 1, 1]``).
    layers
        Atomic planes parallel to the surface (more when cutting at exactly
        ``layers`` would change the composition: then whole bulk periods).
    vacuum_A
        Vacuum between the slab and its periodic image along the normal.
    min_atoms
        The slab is repeated in-plane (shortest axis first) to at least this.

    Returns
    -------
    list of Atoms
        ``variant`` ``'slab-<hkl>'`` (e.g. ``'slab-111'``, ``'slab-1-10'``), the
        third cell vector along the normal, pbc True (for plane-wave DFT) and
        ``fixed_cell`` True: explore these NVT only.
    """
    indices = [miller_index(hkl) for hkl in miller]
    _check_periodic(atoms, "a surface slab")
    unit = conventional_cell(atoms, symprec)
    out = []
    for hkl in indices:
        slab = _slab(unit, hkl, layers)
        reps = np.ones(3, dtype=int)
        lengths = slab.cell.lengths()
        while len(slab) * reps.prod() < min_atoms:
            reps[int(np.argmin(reps[:2] * lengths[:2]))] += 1
        slab = slab.repeat(tuple(int(r) for r in reps))
        slab.center(vacuum=vacuum_A / 2, axis=2)
        name = "slab-" + "".join(str(h) for h in hkl)
        out.append(_tag(slab, atoms, name, miller=list(hkl), fixed_cell=True))
    return out


def _random_crystal(
    atoms: Atoms, max_atoms: int, rng: np.random.Generator
) -> Atoms | None:
    """One pyxtal crystal of the composition of ``atoms`` in a random space
    group, scaled to the input's volume per atom; None if pyxtal cannot."""
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    counts = Counter(atoms.get_chemical_symbols())
    unit = math.gcd(*counts.values())
    formula = {s: c // unit for s, c in counts.items()}
    per_formula = sum(formula.values())
    z = int(rng.integers(1, max(1, max_atoms // per_formula) + 1))
    num = [c * z for c in formula.values()]
    group = int(rng.integers(2, 231))
    if not Group(group).check_compatible(num)[0]:
        return None
    crystal = pyxtal()
    try:
        crystal.from_random(
            3, group, list(formula), num, random_state=int(rng.integers(2**31))
        )
    except Exception:  # pyxtal raises bare errors when a group cannot be filled
        return None
    if not crystal.valid:
        return None
    new = crystal.to_ase()
    scale = (atoms.get_volume() / len(atoms) * len(new) / new.get_volume()) ** (1 / 3)
    new.set_cell(new.cell[:] * scale, scale_atoms=True)
    return new


def _relax(atoms: Atoms, calc: Calculator, steps: int, fmax: float) -> float:
    """Relax positions and cell a few FIRE steps; energy per atom (eV)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    atoms.calc = calc
    FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=fmax, steps=steps)
    return float(atoms.get_potential_energy()) / len(atoms)


def random_phases(
    atoms: Atoms,
    n: int = 3,
    calculator_factory: CalculatorFactory | None = None,
    seed: int = 0,
    max_atoms: int = 16,
    candidates: int | None = None,
    steps: int = 60,
    fmax: float = 0.05,
) -> list[Atoms]:
    """The ``n`` lowest distinct random crystals of the composition of ``atoms``.

    AIRSS-like: pyxtal draws symmetric crystals in random space groups (at most
    ``max_atoms`` atoms), the foundation model relaxes each a few FIRE steps
    with its cell, and candidates that overlap (any pair closer than 0.7x the
    covalent-radius sum), duplicate a lower one or the input (pymatgen's
    ``StructureMatcher``) are dropped.

    Parameters
    ----------
    atoms
        A periodic crystal: its composition and volume per atom are used.
    n
        Phases returned (fewer if fewer distinct ones were found).
    calculator_factory
        Makes the (foundation) calculator that relaxes the candidates.
    seed
        Seeds space groups, cell sizes and pyxtal.
    max_atoms
        Largest candidate cell.
    candidates
        Crystals relaxed (default ``4 n``); at most ``20`` draws each.
    steps, fmax
        FIRE steps and force threshold (eV/Å) of each relaxation.

    Returns
    -------
    list of Atoms
        ``variant`` ``'phase-<k>'`` in order of energy, with ``energy_eV_atom``
        and ``spacegroup`` (after relaxation) in ``info``.
    """
    _check_periodic(atoms, "a random phase")
    if calculator_factory is None:
        raise ConfigError(
            "random phases need the foundation model to relax them; "
            "pass calculator_factory (the loop passes its foundation model)"
        )
    try:
        import pyxtal  # noqa: F401
        from pymatgen.analysis.structure_matcher import StructureMatcher
    except ImportError as err:
        raise PFDError(
            f"random phases need pyxtal ({err}); pip install 'pfd[variants]'"
        ) from err
    calc = calculator_factory()
    rng = np.random.default_rng(seed)
    wanted = candidates or 4 * n
    relaxed: list[tuple[float, Atoms]] = []
    error: Exception | None = None
    for _ in range(20 * wanted):
        if len(relaxed) == wanted:
            break
        new = _random_crystal(atoms, max_atoms, rng)
        if new is None:
            continue
        new.rattle(0.02, seed=int(rng.integers(2**31)))  # lets a saddle relax away
        try:
            energy = _relax(new, calc, steps, fmax)
        except Exception as err:  # a model can fail on a wild candidate: skip it
            error = err
            continue
        if np.isfinite(energy) and not too_close(new, OVERLAP_FACTOR):
            relaxed.append((energy, new))
    if not relaxed and error is not None:
        raise PFDError(
            f"random phases: the calculator failed on every candidate: {error}"
        )
    matcher = StructureMatcher()
    kept = [_to_structure(atoms)]
    out = []
    for energy, new in sorted(relaxed, key=lambda c: c[0]):
        structure = _to_structure(new)
        if any(matcher.fit(structure, other) for other in kept):
            continue
        kept.append(structure)
        group = _spglib("get_spacegroup", new, symprec=SYMPREC)
        out.append(
            _tag(
                new, atoms, f"phase-{len(out)}", energy_eV_atom=energy, spacegroup=group
            )
        )
        if len(out) == n:
            break
    return out


def melting_point(atoms: Atoms, melting_K: float | None = None) -> float:
    """The user's melting point, or an element's tabulated one (pymatgen).

    No estimate is made for compounds: a guess from the elements would be
    wrong by hundreds of K (NaCl melts at 1074 K, Na at 371 K, Cl2 at 172 K).
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


def melt_ramps(
    melting_K: float, steps: int = 2000, factor: float = 1.5
) -> list[RampConfig]:
    """Ramps of the melt variant: a liquid held at ``factor`` x the melting
    point, and a quench from there to 300 K (each its own trajectory)."""
    top = factor * melting_K
    return [
        RampConfig(start_K=top, stop_K=top, steps=steps),
        RampConfig(start_K=top, stop_K=ROOM_K, steps=steps),
    ]


def melt(atoms: Atoms, melting_K: float | None = None, min_atoms: int = 32) -> Atoms:
    """The melt variant: a supercell whose ``info['ramps']`` are :func:`melt_ramps`."""
    _check_periodic(atoms, "a melt")
    ramps = melt_ramps(melting_point(atoms, melting_K))
    cell = host_cell(atoms, min_atoms)
    return _tag(cell, atoms, "melt", ramps=[r.model_dump() for r in ramps])


def generate(
    atoms: Atoms,
    cfg: VariantsConfig,
    calculator_factory: CalculatorFactory | None = None,
    seed: int = 0,
) -> list[Atoms]:
    """Every variant of ``atoms`` that ``cfg`` asks for, in a fixed order."""
    asked = cfg.vacancies or cfg.interstitials or cfg.surfaces or cfg.phases or cfg.melt
    if not asked:
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
        out += random_phases(
            atoms, cfg.phases, calculator_factory, seed, cfg.phase_max_atoms
        )
    if cfg.melt:
        out.append(melt(atoms, cfg.melting_K, cfg.min_atoms))
    return out


def describe(variants: list[Atoms]) -> list[str]:
    """One line per kind of variant and size: 'vacancy: 2 x 31 atoms (Si0, Si1)'."""
    groups: dict[tuple[str, int], list[str]] = {}
    for atoms in variants:
        kind, _, detail = atoms.info["variant"].partition("-")
        groups.setdefault((kind, len(atoms)), []).append(detail)
    return [
        f"{kind}: {len(details)} x {size} atoms"
        + (f" ({', '.join(details)})" if any(details) else "")
        for (kind, size), details in groups.items()
    ]
