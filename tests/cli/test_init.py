"""``pfd init`` writes a YAML that fits the structure; ``pfd run --dry-run`` checks
it, counts the DFT jobs and times one frame without starting a run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.lj import LennardJones
from ase.io import write
from typer.testing import CliRunner

from pfd.cli.main import app
from pfd.config import load_config
from pfd.layout import RunLayout
from pfd.testing import EMTBackend

runner = CliRunner()
EMT_LABELLER = {"code": "ase", "calculator": "ase.calculators.emt:EMT"}
LJ_LABELLER = {
    "code": "ase",
    "calculator": "ase.calculators.lj:LennardJones",
    "parameters": {"sigma": 2.0, "epsilon": 0.01},
}


class LJBackend(EMTBackend):
    """The EMT stand-in for every element, Lennard-Jones forces (NaCl here)."""

    ELEMENTS = frozenset({"Na", "Cl"})

    def calculator(self, model: Path):
        return LennardJones(sigma=2.0, epsilon=0.01)


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _init(tmp_path: Path, atoms: Atoms, name: str, model: str) -> Path:
    write(tmp_path / f"{name}.extxyz", atoms)
    out = tmp_path / f"{name}.yaml"
    result = _run(
        "init", str(tmp_path / f"{name}.extxyz"), "-o", str(out),
        "--model", model, "--checkpoint", str(tmp_path / "model.json"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


CASES = {  # name: (structure, model, labeller for the dry-run, atoms per frame)
    "cu": (bulk("Cu", "fcc", 3.61, cubic=True), "pfd.testing:EMTBackend",
           EMT_LABELLER, 32),
    "nacl": (bulk("NaCl", "rocksalt", 5.64, cubic=True),
             "tests.cli.test_init:LJBackend", LJ_LABELLER, 64),  # 5.64 Å < 6 Å
    "ch4": (molecule("CH4"), "pfd.testing:EMTBackend", EMT_LABELLER, 5),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_init_yaml_fits_and_dry_run_passes(tmp_path: Path, name: str):
    atoms, model, labeller, natoms = CASES[name]
    path = _init(tmp_path, atoms, name, model)
    config = load_config(path)
    periodic = name != "ch4"
    pressures = config.explore.pressures_bar
    assert pressures == ([None, 10000.0] if periodic else [None])
    structure = config.structures[0]
    assert len(structure.path.name)
    assert structure.path.is_file()
    if name == "cu":  # fcc Cu: 2x2x2 cubic cells reach the 6 Å default cutoff
        assert structure.supercell == (2, 2, 2)
        assert config.labeler.parameters["kpts"] == {"density": 3.5}  # a metal
        assert max(config.explore.temperatures_K) < 1358  # below Cu's melting point
    if name == "nacl":
        assert config.labeler.parameters["kpts"] == {"density": 2.0}
    if name == "ch4":  # light atoms, no cell: a boxed copy, 0.5 fs, no EOS
        assert structure.path.name == "ch4-box.extxyz"
        assert config.explore.timestep_fs == 0.5
        assert not config.report.eos.enabled
        assert config.distill.student.start_lr == 1e-3  # a cluster's student
    else:
        assert config.distill.student.start_lr == 3e-3  # the default

    raw = yaml.safe_load(path.read_text())
    raw["labeler"] = labeller
    path.write_text(yaml.safe_dump(raw))
    result = _run("run", "--dry-run", str(path))
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(rf"initial +6 jobs x {natoms} atoms", out)
    assert re.search(rf"each iteration +6 jobs x {natoms} atoms", out)
    assert bool(re.search(r"report: EOS +7 jobs", out)) == periodic
    assert re.search(r"to iteration 1 +\S+ (s|min) \(initial \+ iteration 1\)", out)
    layout = RunLayout(load_config(path).run_dir)
    for made in (layout.state, layout.config, layout.db, layout.labels):
        assert not made.exists(), made
    assert len(list((layout.root / ".dryrun").glob("*/timing.json"))) == 1


def test_second_dry_run_reuses_the_timed_frame(tmp_path: Path):
    path = _init(tmp_path, bulk("Cu", "fcc", 3.61, cubic=True), "cu", CASES["cu"][1])
    raw = yaml.safe_load(path.read_text())
    raw["labeler"] = EMT_LABELLER
    raw["distill"]["enabled"] = False
    path.write_text(yaml.safe_dump(raw))
    first = _run("run", "--dry-run", str(path))
    second = _run("run", "--dry-run", str(path))
    assert "job kept in" in first.output
    assert "reused from" in second.output


def test_dry_run_names_what_is_missing(tmp_path: Path):
    path = _init(tmp_path, bulk("Cu", "fcc", 3.61, cubic=True), "cu", CASES["cu"][1])
    raw = yaml.safe_load(path.read_text())
    raw["labeler"] = EMT_LABELLER
    raw["report"]["test_data"] = "nothere.extxyz"
    path.write_text(yaml.safe_dump(raw))
    result = _run("run", "--dry-run", str(path))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: report.test_data '{tmp_path / 'nothere.extxyz'}' not found; "
        "fix the path"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "not found"),
        ("1\n\nXx 0 0 0\n", "cannot read structure file"),
        ("2\n\nOg 0 0 0\nOg 3 0 0\n", "does not cover element(s) Og"),
    ],
)
def test_init_bad_structure_is_one_line(tmp_path: Path, content, expected):
    path = tmp_path / "s.xyz"
    if content is not None:
        path.write_text(content)
    result = _run(
        "init", str(path), "-o", str(tmp_path / "p.yaml"),
        "--model", "pfd.testing:EMTBackend", "--checkpoint", str(tmp_path / "m.json"),
    )  # fmt: skip
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    assert expected in lines[0]
    assert not (tmp_path / "p.yaml").exists()
