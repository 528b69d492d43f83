"""Input structures: reading, checking, perturbing, filtering."""

from __future__ import annotations

import hashlib

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.io import read
from ase.neighborlist import neighbor_list

from pfd.config import StructureConfig
from pfd.errors import PFDError

OVERLAP_A = 0.5  # closer than this is never a physical structure
#: the variant name of an input structure itself in a run with variants:
#: periodic, not periodic
BULK, INPUT = "bulk", "input"


def read_structures(configs: list[StructureConfig]) -> list[Atoms]:
    """Read every input structure, apply supercells, and check them.

    Each returned ``Atoms`` carries ``info['structure']`` (its index) and
    ``info['name']`` (``name`` or the file stem, with the frame index when a file
    has several).
    """
    return [atoms for atoms, _ in read_inputs(configs)]


def read_inputs(configs: list[StructureConfig]) -> list[tuple[Atoms, StructureConfig]]:
    """:func:`read_structures`, each with the YAML entry it was read from."""
    out: list[tuple[Atoms, StructureConfig]] = []
    for cfg in configs:
        if not cfg.path.is_file():
            raise PFDError(
                f"structure file '{cfg.path}' not found; check structures.path"
            )
        try:
            images = read(cfg.path, index=cfg.index, format=cfg.format)
        except Exception as err:  # ase.io raises many types for bad files
            raise PFDError(
                f"cannot read structure file '{cfg.path}': {err}; "
                "give a format ASE can read (structures.format)"
            ) from err
        images = images if isinstance(images, list) else [images]
        if not images:
            raise PFDError(f"structure file '{cfg.path}' holds no structures")
        for k, atoms in enumerate(images):
            if len(atoms) == 0:
                raise PFDError(f"structure file '{cfg.path}' holds an empty structure")
            atoms = atoms.copy()
            atoms.calc = None
            if any(atoms.pbc):
                atoms = atoms.repeat(cfg.supercell)
            name = (cfg.name or cfg.path.stem) + (f"[{k}]" if len(images) > 1 else "")
            check_structure(atoms, name)
            atoms.info = {"structure": len(out), "name": name}
            out.append((atoms, cfg))
    return out


def structures_digest(structures: list[Atoms], extra: str = "") -> str:
    """SHA-256 of what the structures are (numbers, cell, pbc, positions), so a
    resumed run compares contents, wherever the files now lie; ``extra`` (the
    variants asked for, say) is hashed with them when given."""
    sha = hashlib.sha256(extra.encode())
    for atoms in structures:
        sha.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
        sha.update(np.asarray(atoms.pbc, dtype=np.int8).tobytes())
        for array in (atoms.cell[:], atoms.positions):
            sha.update(np.ascontiguousarray(np.round(array, 8)).tobytes())
    return sha.hexdigest()


def check_structure(atoms: Atoms, name: str) -> None:
    """Refuse structures with overlapping atoms or a degenerate cell, and a lone
    atom in vacuum (no neighbour, no force: nothing a model can train on)."""
    if len(atoms) == 1 and not any(atoms.pbc):
        raise PFDError(
            f"structure '{name}' is a single atom without a periodic cell: it has "
            "no forces to learn from; give a molecule of 2 or more atoms or a "
            "periodic cell"
        )
    if any(atoms.pbc) and atoms.cell.rank < int(np.sum(atoms.pbc)):
        raise PFDError(f"structure '{name}' is periodic but has no valid cell")
    dmin = min_distance(atoms)
    if dmin < OVERLAP_A:
        raise PFDError(
            f"structure '{name}' has atoms {dmin:.2f} Å apart (overlapping); "
            "fix the coordinates or the cell"
        )


def min_distance(atoms: Atoms, cutoff: float = 4.0) -> float:
    """Shortest interatomic distance (inf if none within cutoff)."""
    if len(atoms) < 2 and not any(atoms.pbc):
        return float("inf")
    d = neighbor_list("d", atoms, cutoff)
    return float(d.min()) if len(d) else float("inf")


def too_close(atoms: Atoms, factor: float) -> bool:
    """True if any pair is closer than ``factor`` times its covalent-radius sum."""
    i, j, d = neighbor_list("ijd", atoms, 3.0)
    if not len(d):
        return False
    radii = covalent_radii[atoms.numbers]
    return bool(np.any(d < factor * (radii[i] + radii[j])))


def perturb(
    atoms: Atoms, rng: np.random.Generator, displacement_A: float, strain: float
) -> Atoms:
    """A copy with Gaussian atom displacements and a random symmetric cell strain.

    Non-periodic structures are only displaced.
    """
    new = atoms.copy()
    if strain > 0 and all(new.pbc):
        eps = rng.uniform(-strain, strain, size=(3, 3))
        eps = 0.5 * (eps + eps.T)
        new.set_cell(new.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    if displacement_A > 0:
        new.positions += rng.normal(0.0, displacement_A, size=new.positions.shape)
    return new


def cell_angles_ok(atoms: Atoms, reference: Atoms, max_deviation_deg: float) -> bool:
    """True unless the cell angles drifted further than allowed from the input's."""
    if not all(atoms.pbc):
        return True
    angles = atoms.cell.cellpar()[3:]
    ref = reference.cell.cellpar()[3:]
    return bool(np.all(np.abs(angles - ref) <= max_deviation_deg))


def cell_key(atoms: Atoms) -> tuple[int, str]:
    """(structure, variant) of an explored cell or of a frame sampled from one;
    variant ``''`` in a run without variants."""
    return int(atoms.info["structure"]), str(atoms.info.get("variant", ""))


def exploration_cells(structures: list[Atoms], variants: list[Atoms]) -> list[Atoms]:
    """What the loop explores: the structures, then their variants.

    With variants, each structure is a copy tagged ``'bulk'`` (``'input'`` if
    not periodic), so that every frame names the variant it comes from;
    without, the structures as they are (a run without variants is unchanged).
    """
    if not variants:
        return list(structures)
    tagged = []
    for atoms in structures:
        cell = atoms.copy()
        cell.info["variant"] = BULK if all(atoms.pbc) else INPUT
        tagged.append(cell)
    return tagged + list(variants)
