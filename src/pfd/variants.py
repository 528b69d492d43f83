"""Structure variants: defects, surfaces, other phases and melts of one crystal.

Each generator takes one periodic structure (ASE ``Atoms``) and returns new
ones carrying ``info['variant']`` (``'vacancy-Si0'``, ``'interstitial-Si-1'``,
``'slab-100'``, ``'phase-2'``, ``'melt'``) and the input's ``info['structure']``
so the loop explores, selects and labels them like any structure and reports
errors per variant. pymatgen-analysis-defects and pyxtal (``pfd[variants]``)
are imported only when their variant is asked for.
"""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import spglib
from ase import Atoms
from ase.build import find_optimal_cell_shape, make_supercell, surface
from ase.calculators.calculator import Calculator
from ase.io import read

from pfd.config import RampConfig, StructureConfig, VariantsConfig, miller_index
from pfd.errors import ConfigError, PFDError
from pfd.structures import too_close

SYMPREC = 1e-2  # Å, spglib's tolerance: forgiving for relaxed (slightly noisy) inputs
ROOM_K = 300.0
OVERLAP_FACTOR = 0.7  # of the covalent-radius sum: a closer pair is an overlap
INSTALL = "pip install 'pfd[variants]'"

CalculatorFactory = Callable[[], Calculator]


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
    """The melt variant's ramp: one trajectory held ``steps`` at 1.5x the
    melting point (the liquid), then quenched to 300 K over ``steps``: a quench
    of its own from the input crystal would cool a superheated crystal."""
    top = 1.5 * melting_K
    return [RampConfig(start_K=top, stop_K=ROOM_K, steps=steps, hold_steps=steps)]


def melt(
    atoms: Atoms,
    melting_K: float | None = None,
    min_atoms: int = 32,
    steps: int = 2000,
) -> Atoms:
    """The melt variant: a supercell whose ``info['ramps']`` are :func:`melt_ramps`
    (``steps`` MD steps of liquid, then ``steps`` of quench)."""
    _check_periodic(atoms, "a melt")
    ramps = melt_ramps(melting_point(atoms, melting_K), steps)
    cell = host_cell(atoms, min_atoms)[1]
    return _tag(cell, atoms, "melt", ramps=[r.model_dump() for r in ramps])


def generate(
    atoms: Atoms,
    cfg: VariantsConfig,
    calculator_factory: CalculatorFactory | None = None,
    seed: int = 0,
) -> list[Atoms]:
    """Every variant of ``atoms`` that ``cfg`` asks for, in a fixed order."""
    if not cfg.asked:
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
        out.append(melt(atoms, cfg.melting_K, cfg.min_atoms, cfg.melt_steps))
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


def check_requests(inputs: Sequence[tuple[Atoms, StructureConfig]]) -> set[str]:
    """:func:`check_request` of each structure's entry; the elements the
    variants add (listed interstitials), which the model and labeller must cover."""
    added: set[str] = set()
    for atoms, entry in inputs:
        check_request(atoms, entry.variants)
        if entry.variants and isinstance(entry.variants.interstitials, list):
            added |= set(entry.variants.interstitials)
    return added


def with_variants(
    inputs: Sequence[tuple[Atoms, StructureConfig]], variants: VariantsConfig | None
) -> list[tuple[Atoms, StructureConfig]]:
    """``inputs`` with every entry asking for ``variants`` instead of its own
    (None: as they are): the variants distillation's teacher MD runs."""
    if variants is None:
        return list(inputs)
    return [(atoms, e.model_copy(update={"variants": variants})) for atoms, e in inputs]


def requests_key(inputs: Sequence[tuple[Atoms, StructureConfig]]) -> str:
    """The variants asked for, as text (``''`` if none): hashed with the
    structures, so that a resumed run cannot explore other variants."""
    asked = [
        e.variants.model_dump(mode="json") if e.variants and e.variants.asked else None
        for _, e in inputs
    ]
    return json.dumps(asked, sort_keys=True) if any(asked) else ""


def check_request(atoms: Atoms, cfg: VariantsConfig | None) -> None:
    """Refuse before anything runs what :func:`generate` could not make: a
    variant of a non-periodic structure, a melt without a melting point, or a
    generator whose package is not installed."""
    if cfg is None or not cfg.asked:
        return
    _check_periodic(atoms, "a variant")
    if cfg.melt:
        melting_point(atoms, cfg.melting_K)
    needs = (
        ("interstitials", cfg.interstitials, "pymatgen.analysis.defects"),
        ("phases", cfg.phases, "pyxtal"),
    )
    for key, asked, module in needs:
        if asked and not _installed(module):
            raise PFDError(
                f"variants.{key} needs the package {module} (not installed); "
                f"{INSTALL}, or remove variants.{key}"
            )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def run_variants(
    inputs: Sequence[tuple[Atoms, StructureConfig]],
    path: Path,
    calculator_factory: CalculatorFactory | None = None,
    seed: int = 0,
) -> list[Atoms]:
    """The variants each structure's YAML entry asks for, made once per run.

    Generated and written to ``path`` (extxyz) the first time; read back from
    it when the run resumes, since random phases would come out otherwise.
    The cells returned are always the ones read back, so a run and its
    resumption explore the same numbers.
    """
    asked = [(a, c.variants) for a, c in inputs if c.variants and c.variants.asked]
    if not asked:
        return []
    if not path.exists():
        from pfd.db import write_frames_atomic

        made = [
            variant
            for atoms, cfg in asked
            for variant in generate(
                atoms, cfg, calculator_factory, seed * 1000 + atoms.info["structure"]
            )
        ]
        for cell in made:  # extxyz has no None
            cell.info = {k: v for k, v in cell.info.items() if v is not None}
        write_frames_atomic(path, made)
    if not path.stat().st_size:
        return []
    cells = read(path, ":", format="extxyz")
    for cell in cells:
        cell.info["structure"] = int(cell.info["structure"])
    return cells
