from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from pfd.config import StructureConfig
from pfd.errors import PFDError
from pfd.structures import min_distance, perturb, read_structures, too_close


def test_supercell_and_info(tmp_path: Path):
    write(tmp_path / "si.vasp", bulk("Si", "diamond", 5.43, cubic=True))
    (atoms,) = read_structures(
        [StructureConfig(path=tmp_path / "si.vasp", supercell=(2, 1, 1))]
    )
    assert len(atoms) == 16
    assert atoms.info == {"structure": 0, "name": "si"}


def test_overlapping_atoms_rejected(tmp_path: Path):
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [0.2, 0, 0]], cell=[5, 5, 5], pbc=True)
    write(tmp_path / "bad.extxyz", atoms)
    with pytest.raises(PFDError, match=r"0\.20 Å apart \(overlapping\)"):
        read_structures([StructureConfig(path=tmp_path / "bad.extxyz")])


def test_empty_and_unreadable_files(tmp_path: Path):
    (tmp_path / "empty.xyz").write_text("")
    with pytest.raises(PFDError, match=r"empty\.xyz"):
        read_structures([StructureConfig(path=tmp_path / "empty.xyz")])
    (tmp_path / "junk.cif").write_text("this is not a cif\n")
    with pytest.raises(PFDError, match="cannot read structure file"):
        read_structures([StructureConfig(path=tmp_path / "junk.cif")])
    with pytest.raises(PFDError, match="not found"):
        read_structures([StructureConfig(path=tmp_path / "missing.cif")])


def test_perturb_strains_periodic_only():
    rng = np.random.default_rng(0)
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    new = perturb(cu, rng, 0.05, 0.03)
    assert not np.allclose(new.cell, cu.cell)
    assert np.max(np.abs(new.cell.cellpar()[:3] / 3.6 - 1)) <= 0.03 * 1.5
    cluster = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]])
    moved = perturb(cluster, rng, 0.05, 0.03)
    assert moved.cell.rank == 0
    assert not np.allclose(moved.positions, cluster.positions)


def test_distance_checks():
    pair = Atoms("Si2", positions=[[0, 0, 0], [1.0, 0, 0]], cell=[8, 8, 8], pbc=True)
    assert min_distance(pair) == pytest.approx(1.0)
    assert too_close(pair, 0.6)  # 1.0 Å < 0.6 * 2 * 1.11 Å
    pair.positions[1, 0] = 2.35
    assert not too_close(pair, 0.6)


def test_lone_atom_in_vacuum_is_refused_but_a_periodic_one_is_not(tmp_path: Path):
    write(tmp_path / "atom.xyz", Atoms("Cu", [[0, 0, 0]]))
    with pytest.raises(PFDError, match="single atom without a periodic cell"):
        read_structures([StructureConfig(path=tmp_path / "atom.xyz")])
    write(tmp_path / "fcc.extxyz", bulk("Cu", "fcc", 3.6))  # 1 atom, periodic
    assert len(read_structures([StructureConfig(path=tmp_path / "fcc.extxyz")])) == 1


def test_structures_digest_is_the_contents_not_the_file(tmp_path: Path):
    from pfd.structures import structures_digest

    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    write(tmp_path / "a.extxyz", cu)
    (tmp_path / "b").mkdir()
    write(tmp_path / "b" / "a.vasp", cu)
    one, two = (
        read_structures([StructureConfig(path=p)])
        for p in (tmp_path / "a.extxyz", tmp_path / "b" / "a.vasp")
    )
    assert structures_digest(one) == structures_digest(two)
    cu.positions[0, 0] += 0.01
    write(tmp_path / "a.extxyz", cu)
    moved = read_structures([StructureConfig(path=tmp_path / "a.extxyz")])
    assert structures_digest(moved) != structures_digest(one)
