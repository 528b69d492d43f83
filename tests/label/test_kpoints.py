"""One k-point grid for every code: sizes as ASE/GPAW count them, offsets per code."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import kptdensity2monkhorstpack
from ase.dft.kpoints import monkhorst_pack

from pfd.label.kpoints import KGrid, kpoint_grid


def test_size_counts_points_per_inverse_angstrom_with_2pi():
    si = bulk("Si", "diamond", 5.43)  # |b_i| = 2π√3/a = 2.004 Å⁻¹
    assert kpoint_grid(si, 2.0).size == (5, 5, 5)
    assert kpoint_grid(si, 1.0).size == (3, 3, 3)
    assert kpoint_grid(si, 0.49).size == (1, 1, 1)
    assert kpoint_grid(si, 0.0).is_gamma_only
    rng = np.random.default_rng(0)
    for _ in range(20):  # the same sizes as ASE's (and so GPAW's) density
        cell = np.eye(3) * rng.uniform(2, 12, 3) + rng.uniform(-1, 1, (3, 3))
        atoms = Atoms("H", cell=cell, pbc=True)
        density = rng.uniform(0.5, 4)
        expected = kptdensity2monkhorstpack(atoms, density, even=False)
        assert kpoint_grid(atoms, density).size == tuple(expected)


def test_non_periodic_directions_get_one_point():
    slab = bulk("Si", "diamond", 5.43, cubic=True)
    slab.pbc = [True, True, False]
    assert kpoint_grid(slab, 2.0).size == (3, 3, 1)
    h2o = molecule("H2O", vacuum=4.0)
    assert kpoint_grid(h2o, 5.0, "monkhorst-pack") == KGrid((1, 1, 1), False)


@pytest.mark.parametrize("kind", ["gamma", "monkhorst-pack"])
def test_qe_and_cp2k_offsets_give_the_same_points(kind: str):
    cell = np.diag([2.0, 2.6, 4.0])  # sizes 4, 3, 2 at density 1.2
    grid = kpoint_grid(Atoms("H", cell=cell, pbc=True), 1.2, kind)
    assert grid.size == (4, 3, 2)
    # CP2K's SCHEME MACDONALD (and ASE): Monkhorst-Pack points plus the shift
    macdonald = monkhorst_pack(grid.size) + grid.shift
    # QE's K_POINTS automatic: k_i = (j + s_i / 2) / n_i
    steps = zip(grid.qe_offset, grid.size, strict=True)
    axes = [[(j + s / 2) / n for j in range(n)] for s, n in steps]
    qe = np.array(list(itertools.product(*axes)))

    def canonical(points):
        return sorted(map(tuple, np.round(np.mod(points + 1e-9, 1.0), 6)))

    assert canonical(macdonald) == canonical(qe)
    has_gamma = any(np.allclose(k, 0) for k in canonical(qe))
    assert has_gamma == (kind == "gamma")
    if kind == "gamma":
        assert grid.shift == (0.125, 0.0, 0.25)
        assert grid.qe_offset == (0, 0, 0)
    else:
        assert grid.shift == (0.0, 0.0, 0.0)
        assert grid.qe_offset == (1, 0, 1)


def test_unknown_type_is_an_error():
    with pytest.raises(ValueError, match="unknown k-point grid type 'mp'"):
        kpoint_grid(bulk("Si"), 1.0, "mp")
