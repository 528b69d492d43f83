"""Several materials in one run: each structure's own MD conditions, selection
round the materials, errors and the stop rule per material (EMT stand-ins)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read, write
from typer.testing import CliRunner

from pfd.cli.main import app
from pfd.config import ConvergenceConfig, ExploreConfig, SelectConfig, load_config
from pfd.convergence import meets_targets
from pfd.db import RunDB
from pfd.errors import ConfigError
from pfd.explore import plan_md
from pfd.layout import RunLayout
from pfd.loop import run_finetune
from pfd.materials import check_materials, material_of, structure_index
from pfd.progress import Reporter
from pfd.select import select_frames
from pfd.state import IterationRecord, RunState
from tests.conftest import merge, stand_in

QUIET = Reporter(quiet=True)
GOLD = {"temperatures_K": [500], "pressures_bar": [None], "steps": 8}


def _named(atoms: Atoms, index: int, name: str, **info) -> Atoms:
    atoms.info = {"structure": index, "name": name, **info}
    return atoms


def _cu() -> Atoms:
    return _named(bulk("Cu", "fcc", 3.6, cubic=True), 0, "cu")


def _au() -> Atoms:
    return _named(bulk("Au", "fcc", 4.08, cubic=True), 1, "gold")


# --- conditions per structure -----------------------------------------------------


def test_each_structure_runs_its_own_conditions_and_variants_inherit_them():
    cfg = ExploreConfig(
        temperatures_K=[300, 900],
        pressures_bar=[None, 1000],
        steps=12,
        per_structure={
            "gold": {**GOLD, "ramps": [{"start_K": 300, "stop_K": 800, "steps": 20}]}
        },
    )
    slab = _named(
        bulk("Au", "fcc", 4.08, cubic=True),
        1,
        "gold:slab-111",
        variant="slab-111",
        fixed_cell=True,
    )
    tasks = plan_md([_cu(), _au(), slab], cfg, seed=3)
    by = {(t.structure, t.variant): [] for t in tasks}
    for t in tasks:
        by[t.structure, t.variant].append(
            (t.start_K, t.stop_K, t.pressure_bar, t.steps)
        )
    assert by[0, ""] == [
        (300, 300, None, 12),
        (300, 300, 1000, 12),
        (900, 900, None, 12),
        (900, 900, 1000, 12),
    ]
    assert by[1, ""] == [(500, 500, None, 8), (300, 800, None, 20)]
    assert by[1, "slab-111"] == [(500, 500, None, 8)]  # gold's T, no ramps, NVT


def test_without_per_structure_the_task_list_is_unchanged():
    """Same tasks, seeds and order as before per_structure existed: one draw of
    default_rng(seed) per task, structures in order, T outer, P inner, then ramps."""
    cfg = ExploreConfig(
        temperatures_K=[300, 900],
        pressures_bar=[None, 1000],
        ramps=[{"start_K": 300, "stop_K": 800, "steps": 20}],
    )
    tasks = plan_md([_cu(), _au()], cfg, seed=11)
    rng = np.random.default_rng(11)
    expected = [
        (s, a, b, p, n, int(rng.integers(2**31)))
        for s in (0, 1)
        for a, b, p, n in [
            (300, 300, None, 300),
            (300, 300, 1000, 300),
            (900, 900, None, 300),
            (900, 900, 1000, 300),
            (300, 800, None, 20),
        ]
    ]
    got = [
        (t.structure, t.start_K, t.stop_K, t.pressure_bar, t.steps, t.seed)
        for t in tasks
    ]
    assert got == expected
    same = _with(cfg, per_structure={"gold": {"steps": 300}})  # = explore's
    assert plan_md([_cu(), _au()], same, seed=11) == tasks


def _with(cfg: ExploreConfig, **update) -> ExploreConfig:
    return ExploreConfig.model_validate({**cfg.model_dump(), **update})


def _inputs(*atoms: Atoms) -> list:
    from pfd.config import StructureConfig

    return [(a, StructureConfig(path=f"{a.info['name']}.xyz")) for a in atoms]


def test_bad_materials_are_one_line_errors():
    dimer = _named(Atoms("Cu2", [[0, 0, 0], [2.5, 0, 0]]), 1, "dimer")
    npt = ExploreConfig(pressures_bar=[None, 1000])
    with pytest.raises(
        ConfigError,
        match=r"names 'Au', which is no structure; the "
        r"structures are: cu, gold",
    ):
        check_materials(ExploreConfig(per_structure={"Au": {}}), _inputs(_cu(), _au()))
    with pytest.raises(ConfigError, match="two structures are named 'cu'"):
        check_materials(npt, _inputs(_cu(), _named(_au(), 1, "cu")))
    bad = _with(npt, per_structure={"dimer": {"pressures_bar": [1]}})
    message = (
        r"structure 'dimer' is not periodic: NPT needs a cell; use pressures_bar: "
        r"\[null\] in explore.per_structure.dimer"
    )
    with pytest.raises(ConfigError, match=message):
        check_materials(bad, _inputs(_cu(), dimer))
    with pytest.raises(ConfigError, match="not periodic: NPT needs a cell"):
        check_materials(npt, _inputs(dimer))  # no crystal at all: explore's NPT
    check_materials(npt, _inputs(_cu(), dimer))  # mixed: the dimer runs NVT
    tasks = plan_md([_cu(), dimer], npt, seed=0)
    assert all(t.pressure_bar is None for t in tasks if t.structure == 1)


# --- selection, errors per material ---------------------------------------------


def _frames(rng: np.random.Generator) -> list[Atoms]:
    """Cu at five conditions (four frames each), Au at one (four frames)."""
    out = []
    for index, atoms, conds in [
        (0, _cu(), [f"s0 {t}K NVT" for t in range(5)]),
        (1, _au(), ["s1 500K NVT"]),
    ]:
        for cond in conds:
            for _ in range(4):
                frame = atoms.copy()
                frame.rattle(0.02, seed=int(rng.integers(1000)))
                frame.info = {"structure": index, "condition": cond}
                out.append(frame)
    return out


@pytest.mark.parametrize("method", ["random", "entropy"])
def test_selection_goes_round_the_materials_first(method: str):
    frames = _frames(np.random.default_rng(0))
    cfg = SelectConfig(max_per_iteration=4, method=method)
    for seed in range(5):
        chosen = select_frames(frames, [], cfg, np.random.default_rng(seed))
        # Au has one condition of six: by conditions alone it would get one pick
        assert sorted(f.info["structure"] for f in chosen) == [0, 0, 1, 1]
        assert len({f.info["condition"] for f in chosen}) == 3


def test_frames_name_their_material():
    frame = Atoms("Cu")
    assert material_of(frame) is None
    frame.info = {"uid": "init-s1-2", "source": "gold perturbed #2"}
    assert structure_index(frame) == 1
    assert material_of(frame, {1: "gold"}) == "gold"
    frame.info = {"uid": "it1-0", "source": "s0 bulk 300K NPT 1000bar step 8"}
    assert material_of(frame) == "s0"
    frame.info = {"structure": 3, "name": "alloy"}
    assert material_of(frame) == "alloy"


def test_pfd_test_groups_frames_per_material(tmp_path: Path):
    from pfd.label.results import single_point

    frames = []
    for k, atoms in enumerate([_cu(), _cu(), _au()]):
        atoms.rattle(0.05, seed=k)
        info = dict(atoms.info)
        atoms = single_point(atoms, EMT())
        atoms.info = info
        frames.append(atoms)
    write(tmp_path / "plain.extxyz", frames)
    for atoms, subset in zip(frames, ["init-0", "explore-1", "explore-1"], strict=True):
        atoms.info["subset"] = subset
    write(tmp_path / "subsets.extxyz", frames)
    model = tmp_path / "model.json"
    model.write_text(json.dumps({"e0": {"Cu": 0.01, "Au": -0.02}}))
    rows = {}
    for name in ("plain", "subsets"):
        out = tmp_path / f"{name}.json"
        result = CliRunner().invoke(
            app,
            [
                "test",
                str(model),
                str(tmp_path / f"{name}.extxyz"),
                "--backend",
                "pfd.testing:EMTBackend",
                "-o",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        rows[name] = json.loads(out.read_text())
    plain, subsets = rows["plain"], rows["subsets"]
    assert {k for k in plain if k not in ("model", "data")} == {"all", "cu", "gold"}
    assert plain["cu"]["n_frames"] == 2
    assert plain["gold"]["energy_rmse_eV_atom"] == pytest.approx(0.02)
    assert {k for k in subsets if k not in ("model", "data")} == {
        "all",
        "init-0",
        "explore-1",
        "cu",
        "gold",
    }


# --- the whole loop with two materials ---------------------------------------------


def _two_materials(tmp_path: Path, make_config, **convergence) -> Path:
    write(tmp_path / "au.extxyz", bulk("Au", "fcc", 4.08, cubic=True))
    update = merge(
        stand_in(tmp_path, "materials"),
        {
            "structures": [
                {"path": "cu.extxyz"},
                {"path": "au.extxyz", "name": "gold"},
            ],
            "initial": {"frames_per_structure": 1},
            "explore": {
                "temperatures_K": [300],
                "pressures_bar": [None, 1000],
                "steps": 12,
                "sample_every": 4,
                "workers": 1,
                "per_structure": {"gold": GOLD},
            },
            "select": {"max_per_iteration": 2, "method": "random"},
            "convergence": {
                "max_iterations": 1,
                "force_rmse_eV_A": 10.0,
                "energy_rmse_eV_atom": 10.0,
                **convergence,
            },
        },
    )
    return make_config(update)


def test_two_materials_run_with_own_conditions_and_stop_per_material(
    make_config, tmp_path: Path
):
    path = _two_materials(tmp_path, make_config)
    cfg = load_config(path)
    state = run_finetune(cfg, QUIET)
    layout = RunLayout(cfg.run_dir)

    # each material explored at its own conditions: Cu by explore, gold by its entry
    candidates = read(layout.iteration(1) / "candidates.extxyz", ":")
    conditions = {(f.info["structure"], f.info["condition"]) for f in candidates}
    assert conditions == {
        (0, "s0 300K NVT"),
        (0, "s0 300K NPT 1000bar"),
        (1, "s1 500K NVT"),
    }
    gold = [f for f in candidates if f.info["structure"] == 1]
    assert [f.info["source"].rsplit(" ", 1)[1] for f in gold] == ["4", "8"]  # 8 steps

    # both materials selected, labelled and tested, each under its own name
    db = RunDB(layout.db)
    new = [f.atoms for f in db.frames(iteration=1, status="labelled")]
    assert sorted(structure_index(a) for a in new) == [0, 1]
    (record,) = state.iterations
    assert set(record.materials) == {"cu", "gold"}
    assert all(e["n_frames"] == 1 for e in record.materials.values())
    stored = json.loads(layout.state.read_text())["iterations"][0]["materials"]
    assert stored == record.materials
    assert state.converged  # loose thresholds: every material meets them

    # a threshold the whole set meets but one material misses: not converged
    forces = {k: e["force_rmse_eV_A"] for k, e in record.materials.items()}
    worst = max(forces, key=forces.get)
    assert record.force_rmse_eV_A < forces[worst]  # the overall RMSE mixes both
    limit = 0.5 * (record.force_rmse_eV_A + forces[worst])
    strict = ConvergenceConfig(force_rmse_eV_A=limit, energy_rmse_eV_atom=10.0)
    assert not meets_targets(record, strict)
    assert meets_targets(
        IterationRecord(**{**record.__dict__, "materials": {}}), strict
    )  # by the overall RMSE alone it would have stopped

    # a resumed run with that threshold decides from the stored errors the same way
    changed = yaml.safe_load(path.read_text())
    changed["convergence"]["force_rmse_eV_A"] = limit
    path.write_text(yaml.safe_dump(changed))
    again = run_finetune(load_config(path), QUIET)
    assert not again.converged
    assert not again.iterations[0].converged
    assert RunState.load(cfg.run_dir).final_model.endswith(".pth")

    status = CliRunner().invoke(app, ["status", str(cfg.run_dir)])
    assert status.exit_code == 0, status.output
    for name in ("cu", "gold"):
        assert re.search(
            rf"material {name}: 1 frames, force RMSE \d\.\d{{3}} eV/Å", status.output
        ), status.output


def test_dry_run_says_each_structures_conditions(make_config, tmp_path: Path):
    write(tmp_path / "dimer.xyz", Atoms("Cu2", [[0, 0, 0], [2.5, 0, 0]]))
    path = _two_materials(tmp_path, make_config)
    raw = yaml.safe_load(path.read_text())
    raw["structures"].append({"path": "dimer.xyz"})
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["run", "--dry-run", str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "MD conditions per structure" in out
    assert "  cu: 300 K x NVT, NPT 1000 bar, 12 steps" in out
    assert "  gold (own): 500 K x NVT, 8 steps" in out
    assert "  dimer: 300 K x NVT (not periodic: NPT runs as NVT), 12 steps" in out
