"""Structure variants on tiny crystals: counts, sizes, geometry, and one-line errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from pydantic import ValidationError
from threadpoolctl import threadpool_limits

from pfd.errors import ConfigError
from pfd.phases import random_phases
from pfd.structures import too_close
from pfd.variants import (
    VariantsConfig,
    describe,
    generate,
    interstitials,
    slabs,
    vacancies,
)


def _crystal(name: str) -> Atoms:
    atoms = {
        "Cu": bulk("Cu", "fcc", a=3.6),
        "NaCl": bulk("NaCl", "rocksalt", a=5.64),
        "ZnO": bulk("ZnO", "wurtzite", a=3.25, c=5.2),
        "Si": bulk("Si", "diamond", a=5.43),
    }[name]
    atoms.info = {"structure": 3, "name": name}
    return atoms


def test_fcc_cu_has_one_distinct_vacancy():
    (cell,) = vacancies(_crystal("Cu"), min_atoms=32)
    assert cell.info["variant"] == "vacancy-Cu0"
    assert cell.info["structure"] == 3
    assert len(cell) == 31  # 32-atom cubic supercell minus one
    assert cell.info["multiplicity"] == 32
    assert np.allclose(cell.cell.cellpar(), [7.2, 7.2, 7.2, 90, 90, 90])


@pytest.mark.parametrize("name", ["NaCl", "ZnO"])
def test_two_element_crystal_has_one_vacancy_per_species(name):
    atoms = _crystal(name)
    cells = vacancies(atoms, min_atoms=20)
    assert [c.info["variant"].rstrip("0") for c in cells] == [
        f"vacancy-{s}" for s in dict.fromkeys(atoms.get_chemical_symbols())
    ]
    for cell in cells:
        removed = cell.info["variant"][len("vacancy-") : -1]
        host = len(cell) + 1
        assert host >= 20
        assert host % len(atoms) == 0
        # the removed species is the one missing from the stoichiometric host
        counts = {s: cell.get_chemical_symbols().count(s) for s in set(cell.symbols)}
        assert counts[removed] == host // 2 - 1


def test_large_input_cell_is_used_as_it_is():
    big = _crystal("NaCl").repeat((3, 3, 3))  # 54 atoms >= min_atoms
    cells = vacancies(big, min_atoms=32)
    assert [len(c) for c in cells] == [53, 53]
    assert np.allclose(cells[0].cell[:], big.cell[:])


def _gap_and_planes(slab: Atoms) -> tuple[float, int]:
    z = np.sort(slab.positions[:, 2])
    planes = 1 + int(np.sum(np.diff(z) > 0.1))
    return slab.cell[2, 2] - (z[-1] - z[0]), planes


@pytest.mark.parametrize(
    ("name", "hkl", "layers"), [("Cu", (1, 1, 1), 5), ("NaCl", (1, 0, 0), 4)]
)
def test_slab_has_vacuum_and_layers(name, hkl, layers):
    (slab,) = slabs(_crystal(name), miller=[hkl], layers=layers, vacuum_A=12.0)
    gap, planes = _gap_and_planes(slab)
    assert gap >= 12.0 - 1e-6
    assert planes == layers
    assert slab.info["variant"] == "slab-" + "".join(map(str, hkl))
    assert slab.info["fixed_cell"] is True
    assert slab.pbc.all()
    # third cell vector along the surface normal
    assert np.allclose(slab.cell[:2] @ slab.cell[2], 0, atol=1e-8)
    counts = np.bincount(slab.numbers)
    assert len(set(counts[counts > 0])) == 1  # NaCl stays stoichiometric


@pytest.mark.parametrize("bad", ["111", [1, 1], (1.0, 1, 1), [0, 0, 0]])
def test_bad_miller_index_is_a_one_line_config_error(bad):
    with pytest.raises(ConfigError) as err:
        slabs(_crystal("Cu"), miller=[bad])
    message = str(err.value)
    assert "\n" not in message
    assert repr(bad) in message
    assert "[1, 1, 1]" in message


def test_variants_config_refuses_bad_requests():
    with pytest.raises(ValidationError, match=r"e\.g\. \[1, 1, 1\]"):
        VariantsConfig(surfaces=["111"])
    with pytest.raises(ValidationError, match=r"e\.g\. \[\[1, 1, 1\]\], not '111'"):
        VariantsConfig(surfaces="111")
    with pytest.raises(ValidationError, match="unknown element"):
        VariantsConfig(interstitials=["Xx"])
    with pytest.raises(ValidationError, match="extra"):
        VariantsConfig(vacancy=True)


def test_variant_of_a_molecule_is_a_one_line_config_error():
    water = molecule("H2O")
    water.info = {"structure": 0, "name": "water"}
    for make in (
        lambda: vacancies(water),
        lambda: generate(water, VariantsConfig(surfaces=[[1, 1, 1]])),
    ):
        with pytest.raises(ConfigError, match="'water' is not periodic") as err:
            make()
        assert "\n" not in str(err.value)
    assert generate(water, VariantsConfig()) == []  # nothing asked, nothing to refuse


def test_si_interstitials_at_distinct_open_sites():
    cells = interstitials(_crystal("Si"), min_atoms=16, max_sites=3)
    # diamond has two interstitial sites: tetrahedral and hexagonal
    assert [c.info["variant"] for c in cells] == [
        "interstitial-Si-0",
        "interstitial-Si-1",
    ]
    assert all(len(c) == 17 for c in cells)
    # the tetrahedral site is the most open one: one Si-Si bond length away
    assert cells[0].info["gap_A"] == pytest.approx(5.43 * np.sqrt(3) / 4, abs=0.01)
    assert cells[1].info["gap_A"] < cells[0].info["gap_A"]


def test_random_phases_of_cu_have_its_composition_and_no_overlaps():
    fcc = _crystal("Cu")
    with threadpool_limits(1):
        phases = random_phases(
            fcc,
            n=2,
            calculator_factory=EMT,
            seed=2,
            max_atoms=4,
            candidates=4,
            steps=30,
        )
    assert 1 <= len(phases) <= 2
    energies = [p.info["energy_eV_atom"] for p in phases]
    assert energies == sorted(energies)
    for phase in phases:
        assert set(phase.get_chemical_symbols()) == {"Cu"}
        assert 1 <= len(phase) <= 4
        assert not too_close(phase, 0.7)
        assert phase.info["structure"] == 3
    with pytest.raises(ConfigError, match="foundation model"):
        random_phases(fcc, n=1)


def test_generate_melt_and_describe():
    cu = _crystal("Cu")
    cfg = VariantsConfig(vacancies=True, surfaces=[[1, 0, 0]], layers=2, melt=True)
    variants = generate(cu, cfg)
    assert [v.info["variant"] for v in variants] == ["vacancy-Cu0", "slab-100", "melt"]
    (quench,) = variants[-1].info["ramps"]  # melt, then quench: one trajectory
    assert quench["start_K"] == pytest.approx(1.5 * 1357.77)
    assert quench["stop_K"] == 300.0
    assert quench["hold_steps"] == quench["steps"] == 2000
    assert describe(variants) == [
        "vacancy: 1 x 31 atoms (Cu0)",
        "slab: 1 x 16 atoms (100)",
        "melt: 1 x 32 atoms",
    ]
    with pytest.raises(ConfigError, match="melting_K"):
        generate(_crystal("NaCl"), VariantsConfig(melt=True))


def test_run_variants_are_made_once_and_read_back(tmp_path, monkeypatch):
    import pfd.variants
    from pfd.config import StructureConfig
    from pfd.variants import run_variants

    cu = _crystal("Cu")
    asked = VariantsConfig(vacancies=True, surfaces=[[1, 1, 1]], melt=True, min_atoms=8)
    inputs = [(cu, StructureConfig(path=tmp_path / "cu.extxyz", variants=asked))]
    path = tmp_path / "variants.extxyz"
    made = run_variants(inputs, path, EMT, seed=1)
    assert [v.info["variant"] for v in made] == ["vacancy-Cu0", "slab-111", "melt"]
    assert made[1].info["fixed_cell"] is True
    assert all(v.info["structure"] == 3 for v in made)
    (quench,) = made[-1].info["ramps"]  # the melt's ramp survives the file
    assert quench["start_K"] == pytest.approx(1.5 * 1357.77)
    assert quench["stop_K"] == 300.0
    assert quench["hold_steps"] > 0

    def no_generation(*args, **kwargs):
        raise AssertionError("generated again")

    monkeypatch.setattr(pfd.variants, "generate", no_generation)
    again = run_variants(inputs, path)  # no calculator needed: read back
    for a, b in zip(made, again, strict=True):
        assert np.array_equal(a.positions, b.positions)
        assert np.array_equal(a.cell[:], b.cell[:])
        assert a.info["variant"] == b.info["variant"]
    plain = StructureConfig(path=tmp_path / "cu.extxyz")
    assert run_variants([(cu, plain)], tmp_path / "none.extxyz") == []
    assert not (tmp_path / "none.extxyz").exists()


def test_teacher_md_runs_the_variants_each_at_its_own_conditions(tmp_path):
    """Distillation's teacher data covers the variants: every frame names its
    variant, a slab keeps its cell (NVT only), a melt runs its own ramp."""
    from pfd.config import DistillConfig, ExploreConfig, StructureExploreConfig
    from pfd.progress import Reporter
    from pfd.teacher import generate as teacher_md

    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    cu.info = {"structure": 0, "name": "Cu"}
    cfg = VariantsConfig(vacancies=True, surfaces=[[1, 0, 0]], melt=True,
                         melting_K=1358, melt_steps=6, min_atoms=8)  # fmt: skip
    variants = generate(cu, cfg)
    settings = DistillConfig(steps=6, sample_every=3, rattles_per_frame=0)
    explore = ExploreConfig(temperatures_K=[300], pressures_bar=[None, 1000])
    with threadpool_limits(1):
        frames = teacher_md(
            EMT, [cu], settings, explore, 0, tmp_path, Reporter(quiet=True),
            variants=variants, executor=_Serial(),
        )  # fmt: skip
    kinds = {}
    for frame in frames:
        kinds.setdefault(frame.info.get("variant", "bulk"), []).append(frame)
    assert set(kinds) == {"bulk", "vacancy-Cu0", "slab-100", "melt"}
    # bulk and vacancy: 150, 300, 360 K x (NVT, NPT) = 6 trajectories of 2 frames
    assert len(kinds["bulk"]) == len(kinds["vacancy-Cu0"]) == 12
    assert len(kinds["slab-100"]) == 3 * 2  # NVT only
    assert len(kinds["melt"]) == 4  # 6 steps held + 6 quenched, every 3rd
    slab = next(v for v in variants if v.info["variant"] == "slab-100")
    for frame in kinds["slab-100"]:
        assert np.allclose(frame.cell[:], slab.cell[:])
        assert len(frame) == len(slab)
    vacancy = next(v for v in variants if v.info["variant"] == "vacancy-Cu0")
    assert len(vacancy) == 7  # 8 sites (min_atoms) minus one
    assert all(len(f) == len(vacancy) for f in kinds["vacancy-Cu0"])
    assert all(np.isfinite(f.get_forces()).all() for f in frames)
    # distill.variant_conditions: the variants at their own (cheaper) grid only
    cheap = settings.model_copy(
        update={"variant_conditions": StructureExploreConfig(
            temperatures_K=[500], pressures_bar=[None], steps=9)}
    )  # fmt: skip
    (tmp_path / "cheap").mkdir()
    with threadpool_limits(1):
        frames = teacher_md(
            EMT, [cu], cheap, explore, 0, tmp_path / "cheap", Reporter(quiet=True),
            variants=variants, executor=_Serial(),
        )  # fmt: skip
    counts = Counter(f.info.get("variant", "bulk") for f in frames)
    assert counts["bulk"] == 12  # the structures' grid is unchanged
    assert counts["vacancy-Cu0"] == counts["slab-100"] == 3  # 500 K NVT, 9 steps
    assert counts["melt"] == 4  # its own ramp, as before


class _Serial:
    """An executor that runs each task in this process (no worker pool)."""

    def submit(self, kind, fn, *args):
        from concurrent.futures import Future

        future = Future()
        future.set_result(fn(*args))
        return future

    def slots(self, kind):
        return 1


def test_distill_variants_of_a_molecule_is_one_line_error():
    from pfd.variants import check_requests, with_variants

    mol = molecule("H2O")
    mol.info = {"structure": 0, "name": "water"}
    from pfd.config import StructureConfig

    entry = StructureConfig(path="water.xyz")
    check_requests([(mol, entry)])  # nothing asked: fine
    with pytest.raises(ConfigError, match=r"not periodic.*pbc true"):
        check_requests(with_variants([(mol, entry)], VariantsConfig(vacancies=True)))
