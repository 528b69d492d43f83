"""The student committee: DeePMD's model deviation, its config, its LAMMPS line."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from pfd.config import ConfigError, DistillConfig, load_distill_settings
from pfd.errors import PFDError
from pfd.explore import labelled_by
from pfd.students.committee import (
    by_subset,
    default_threshold,
    deviation,
    ranking,
    ranking_line,
)


class _Shifted(Calculator):
    """EMT with a constant force added to atom 0 and an energy shift per atom."""

    implemented_properties = ("energy", "forces")

    def __init__(self, force: tuple[float, float, float], e_atom: float = 0.0):
        super().__init__()
        self.force, self.e_atom = np.array(force), e_atom

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        ref = self.atoms.copy()
        ref.calc = EMT()
        forces = ref.get_forces()
        forces[0] += self.force
        energy = ref.get_potential_energy() + self.e_atom * len(ref)
        self.results = {"energy": energy, "forces": forces}


def test_deviation_is_deepmds_formula():
    """Per atom sqrt(mean_k |F_k - <F>|^2), max over atoms; std of E/atom."""
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    cu.rattle(0.05, seed=1)
    d = np.array([0.3, 0.0, 0.4])  # |d| = 0.5 eV/Å
    models = [_Shifted((0, 0, 0)), _Shifted(d, 0.01), _Shifted(-d, -0.01)]
    dev = deviation(models, [cu, cu])
    # atom 0: forces F, F+d, F-d: mean F, spread sqrt((0 + 2|d|^2)/3)
    assert dev.max_force_eV_A == pytest.approx([np.sqrt(2 / 3) * 0.5] * 2)
    assert dev.mean_force_eV_A == pytest.approx([np.sqrt(2 / 3) * 0.5 / 4] * 2)
    assert dev.energy_eV_atom == pytest.approx([np.sqrt(2 / 3) * 0.01] * 2)
    same = deviation([EMT(), EMT()], [cu])
    assert same.max_force_eV_A[0] == pytest.approx(0, abs=1e-12)


def test_deviation_by_subset_and_threshold():
    frames = [Atoms("Cu", info={"subset": s}) for s in ("a", "a", "b")]
    summary = by_subset(frames, np.array([0.1, 0.3, 0.5]), 0.2)
    assert summary["all"].n_flagged == 2
    assert summary["a"].mean_eV_A == pytest.approx(0.2)
    assert summary["b"].max_eV_A == pytest.approx(0.5)
    assert summary["b"].n_flagged == 1
    held_out = np.linspace(0.0, 0.1, 101)
    assert default_threshold(held_out) == pytest.approx(2 * 0.095)


def test_bad_committee_input_is_one_line(tmp_path: Path):
    assert DistillConfig().committee == 4  # the default: four students
    part = tmp_path / "c.yaml"
    part.write_text("distill: {committee: 1, deviation_threshold_eV_A: 0.2}\n")
    with pytest.raises(ConfigError) as err:
        load_distill_settings(part, DistillConfig())
    message = str(err.value)
    assert "\n" not in message
    assert "needs a committee of 2 or more" in message
    assert "distill.committee: 2 or more" in message
    part.write_text("distill: {committee: 0}\n")
    with pytest.raises(ConfigError, match=r"'distill\.committee'"):
        load_distill_settings(part, DistillConfig())
    with pytest.raises(PFDError, match="needs 2 or more models, got 1"):
        deviation([EMT()], [bulk("Cu")])


def test_pfd_test_of_a_directory_without_a_student(tmp_path: Path):
    from ase.io import write
    from typer.testing import CliRunner

    from pfd.cli.main import app

    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    cu.calc = EMT()
    cu.calc = labelled_by(cu)
    write(tmp_path / "cu.extxyz", cu)
    result = CliRunner().invoke(
        app, ["test", str(tmp_path), str(tmp_path / "cu.extxyz")]
    )
    assert result.exit_code == 1
    assert "is a directory without a distilled student" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_lammps_input_runs_the_student_and_writes_the_deviation(tmp_path: Path):
    from pfd.students.deepmd import DeepMDStudent
    from pfd.students.lammps import write_lammps_input

    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    student = tmp_path / "student"
    models = [student / n for n in ("graph_c.pb", "member_2.pb", "member_3.pb")]
    learner = DeepMDStudent()
    write_lammps_input(cu, learner, models, ["Cu"], student / "lammps", steps=50)
    text = (student / "lammps" / "in.lammps").read_text()
    line = "pair_style      deepmd ../graph_c.pb ../member_2.pb ../member_3.pb"
    assert f"{line} out_freq 100 out_file model_devi.out\n" in text
    assert "variable        STEPS index 50\n" in text
    assert "model_devi.out" in text.split("units")[0]  # said in the header
    write_lammps_input(cu, learner, models[0], ["Cu"], tmp_path / "one")
    one = (tmp_path / "one" / "in.lammps").read_text()
    assert "pair_style      deepmd ../student/graph_c.pb\n" in one
    assert "model_devi" not in one
    assert "fix             nvt all nvt temp ${TEMP} ${TEMP} 0.1\n" in one
    assert "dump" not in one
    # NPT at a pressure, positions dumped: the stability benchmark's input
    write_lammps_input(cu, learner, models[0], ["Cu"], tmp_path / "npt",
                       pressure_bar=1e4, dump_every=500)  # fmt: skip
    npt = (tmp_path / "npt" / "in.lammps").read_text()
    assert npt.startswith("# NPT (10000 bar) MD of")
    fix = "fix             npt all npt temp ${TEMP} ${TEMP} 0.1"
    assert f"{fix} iso 10000 10000 1\n" in npt
    assert "dump            traj all custom 500 dump.lammpstrj id type x y z\n" in npt
    assert npt.index("\ndump ") < npt.index("\nrun ")


# --- real tiny students -------------------------------------------------------------

TINY = {
    "rcut_A": 4.0,
    "embedding": [4, 8],
    "axis_neuron": 4,
    "fitting": [8, 8],
    "steps": 300,
    "sel": [40],
    "compress": False,
    "refit_bias": False,
}


def _emt_frames(n: int, seed: int, rattle: float, scale: float = 1.0) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", 3.6 * scale, cubic=True).repeat(2)
        atoms.positions += rng.normal(0, rattle, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.calc = labelled_by(atoms)
        frames.append(atoms)
    return frames


def _tiny_committee(work: Path, n: int) -> tuple[list[Path], dict]:
    """``n`` tiny students on rattled fcc Cu (EMT labels), trained in ``work``."""
    from pfd.progress import Reporter
    from pfd.students import make_student
    from pfd.students.committee import build_committee

    train, test = _emt_frames(40, 0, 0.05), _emt_frames(6, 1, 0.05)
    cfg = DistillConfig(student=TINY, committee=n)
    make = functools.partial(make_student, "deepmd", type_map=["Cu"], threads=2)
    shipped = make(cfg.student).train(train, test, work / "round_1", seed=1)
    out = work / "student"
    out.mkdir(exist_ok=True)
    return build_committee(
        make, shipped, train, test, cfg, work, out, 0, Reporter(quiet=True)
    )


@pytest.fixture(scope="module")
def tiny_committee(tmp_path_factory) -> tuple[list[Path], Path]:
    """Three tiny students: ~30 s on a quiet machine."""
    pytest.importorskip("deepmd")
    work = tmp_path_factory.mktemp("committee")
    members, record = _tiny_committee(work, 3)
    assert record["committee"]["threshold_eV_A"] > 0
    rank = record["committee"]["ranking"]  # on the 6 held-out frames
    assert rank["n_frames"] == 6
    assert rank["top_n"] == 1
    return members, work


def test_ranking_says_how_well_deviation_orders_errors():
    error = np.linspace(0.05, 1.0, 20)
    good = ranking(2 * error + 0.01, error)  # the same order
    assert good["spearman"] == pytest.approx(1.0)
    assert (good["top_n"], good["top_shared"], good["weak"]) == (4, 4, False)
    bad = ranking(error[::-1], error)  # the reverse: the largest errors look safest
    assert bad["spearman"] == pytest.approx(-1.0)
    assert (bad["top_shared"], bad["weak"]) == (0, True)
    assert "WEAK" in ranking_line(bad, "frames")
    assert "WEAK" not in ranking_line(good, "frames")
    assert "4/4" in ranking_line(good, "frames")
    flat = ranking(np.ones(5), np.arange(5.0))  # no ranking at all
    assert flat["spearman"] is None
    assert flat["weak"]
    with pytest.raises(ValueError, match="one deviation per error"):
        ranking(np.ones(3), np.ones(4))


@pytest.mark.slow
def test_pfd_test_prints_how_well_the_committee_ranks_errors(tiny_committee, tmp_path):
    from ase.io import write
    from typer.testing import CliRunner

    from pfd.cli.main import app

    members, _ = tiny_committee
    data = tmp_path / "frames.extxyz"
    write(data, _emt_frames(5, 4, 0.05) + _emt_frames(5, 5, 0.25, scale=0.9))
    out = tmp_path / "errors.json"
    args = ["test", str(members[0]), str(data), "--output", str(out)]
    for m in members[1:]:
        args += ["--committee", str(m)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ranks the model's largest atomic force error on 10 frames" in result.output
    rank = json.loads(out.read_text())["committee"]["ranking"]
    assert rank["n_frames"] == 10
    assert rank["top_n"] == 2
    # hot, compressed frames: the largest errors and the largest deviations
    assert rank["spearman"] > 0.5
    assert rank["top_shared"] >= 1


@pytest.mark.slow
def test_members_differ_and_disagree_off_distribution(tiny_committee):
    members, work = tiny_committee
    assert [m.name for m in members] == ["graph.pb", "member_2.pb", "member_3.pb"]
    seeds = {(work / f"committee_{k}" / "input.json").read_text() for k in (2, 3)}
    assert len(seeds) == 2  # other seeds, same settings otherwise
    like_training = _emt_frames(6, 2, 0.05)
    off = _emt_frames(6, 3, 0.25, scale=0.9)  # hot and compressed by 10 %
    on_dev = deviation(members, like_training).max_force_eV_A
    off_dev = deviation(members, off).max_force_eV_A
    assert np.all(on_dev > 1e-4)  # the members are different models
    assert np.median(off_dev) > 2 * np.median(on_dev), (on_dev, off_dev)
    # DeePMD's calc_model_devi and the same formula through ASE calculators agree
    from pfd.calculators import load_calculator

    calcs = [load_calculator(m) for m in members]
    assert deviation(calcs, off).max_force_eV_A == pytest.approx(off_dev, rel=1e-5)


@pytest.mark.slow
def test_committee_in_lammps_writes_model_devi(tiny_committee):
    from pfd.students.deepmd import DeepMDStudent
    from pfd.students.lammps import lammps_binary, run_lammps, write_lammps_input

    if lammps_binary() is None:
        pytest.skip("LAMMPS (lmp) not installed")
    members, work = tiny_committee
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    out = work / "lammps"
    write_lammps_input(cu, DeepMDStudent(), members, ["Cu"], out, natoms=32)
    proc = run_lammps(out, 200)
    assert proc.returncode == 0, proc.stdout[-2000:]
    rows = np.loadtxt(out / "model_devi.out")
    assert rows[:, 0].tolist() == [0, 100, 200]  # every out_freq steps
    assert np.all(rows[:, 4] > 0)  # max_devi_f: the members disagree somewhere
    first = deviation(members, [_lammps_start(out)]).max_force_eV_A[0]
    assert rows[0, 4] == pytest.approx(first, rel=1e-3)  # the same number as ours


def _lammps_start(out: Path) -> Atoms:
    from ase.io import read

    atoms = read(out / "conf.lmp", format="lammps-data", atom_style="atomic")
    atoms.set_chemical_symbols(["Cu"] * len(atoms))
    return atoms


@pytest.mark.slow
def test_smaller_committee_reuses_members_and_drops_the_rest(tiny_committee):
    members, work = tiny_committee
    before = members[1].stat().st_mtime_ns
    fewer, record = _tiny_committee(work, 2)
    assert fewer == members[:2]
    assert (work / "committee_2" / "graph.pb").stat().st_mtime_ns <= before
    assert not members[2].exists()  # member_3.pb of the larger committee is gone
    assert record["committee"]["members"] == [str(m) for m in fewer]
