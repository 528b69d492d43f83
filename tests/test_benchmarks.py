"""Smoke runs of the benchmarks on tiny sizes, so that they cannot rot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

pytest.importorskip("deepmd")


def test_data_efficiency_smoke(tmp_path: Path):
    """Both arms run end to end: the loop, the curve, labels, scratch students."""
    import data_efficiency

    overrides = {
        "model": {"backend": "pfd.testing:EMTBackend", "checkpoint": "f.json"},
        "labeler": {"parameters": {"asap_cutoff": True}},
        "initial": {"frames_per_structure": 2},
        "finetune": {"epochs": 1},
        "explore": {"temperatures_K": [600], "pressures_bar": [None], "steps": 20},
        "select": {"max_per_iteration": 2},
        "convergence": {"force_rmse_eV_A": 1e-6, "max_iterations": 2},
    }
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(overrides))
    out = tmp_path / "bench"
    args = ["emt", "--out", str(out), "--config", str(config)]
    result = data_efficiency.main([*args, "--sizes", "3", "6", "--steps", "60"])

    assert [p["model"] for p in result["pfd"]] == [
        "foundation",
        "iteration 1",
        "iteration 2",
    ]
    assert [p["labels"] for p in result["pfd"]] == [0, 2, 4]
    assert result["pfd"][-1]["labels_spent"] == 6  # 2 initial + 2 + 2 tested
    assert [s["labels"] for s in result["scratch"]] == [3, 6]
    assert all(s["force_rmse_eV_A"] > 0 for s in result["scratch"])
    # EMT's own forces cannot be learnt from 6 frames in 60 steps
    assert result["summary"]["reached"] is False
    assert result["summary"]["scratch_labels"] == ">6"
    by = result["summary"]["by_quantity"]
    assert set(by) == {"force", "energy", "stress", "all"}
    assert by["force"]["scratch_labels"] == ">6"
    assert by["all"]["reached"] is False  # never before forces alone
    assert len(list((out / "labels").glob("*/output.extxyz"))) == 6
    # errors per test subset (EMT's test set: MD at 4 temperatures, strained cells)
    subsets = set(result["scratch"][-1]["by_subset"])
    assert {"strained", "md-300K"} <= subsets
    assert subsets == set(result["pfd"][-1]["by_subset"])
    assert json.loads((out / "results.json").read_text())["summary"]["ratio"] == ">1.0"

    again = data_efficiency.main([*args, "--sizes", "3", "6", "--steps", "60"])
    assert (
        again["scratch"][0]["force_rmse_eV_A"]
        == result["scratch"][0]["force_rmse_eV_A"]
    )


def test_demo_time_smoke(tmp_path: Path, make_config):
    """--run times a fresh run of a config; the table comes from the run's records."""
    import demo_time

    config = make_config(
        {"model": {"backend": "pfd.testing:EMTBackend", "checkpoint": "f.json"}}
    )
    out = tmp_path / "demo"
    (out / "stale").mkdir(parents=True)  # a demo starts from nothing
    args = ["--run", "--config", str(config), "--out", str(out)]
    result = demo_time.main([*args, "--json", str(tmp_path / "t.json")])
    assert not (out / "stale").exists()
    assert set(result["phases_s"]) == {"finetune"}  # distill and report are off
    parts = [r["part"] for r in result["parts"]]
    assert parts[0].startswith("start")
    assert "iteration 1: explore_select" in parts
    assert 0 < result["total_s"] <= result["wall_s"]
    assert result["labels"] == 3 + 2
    assert result["met"] is True

    again = demo_time.main([str(out)])  # from the records alone
    assert again["phases_s"] == result["phases_s"]
    assert again["wall_s"] is None


def test_foundation_models_smoke(tmp_path: Path, make_config):
    """Each model's loop runs from the same config; the table picks the cheapest."""
    import foundation_models
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    frames = []
    for k in range(2):
        atoms = bulk("Cu", "fcc", 3.6, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=atoms.get_potential_energy(),
            forces=atoms.get_forces(),
            stress=atoms.get_stress(),
        )
        frames.append(atoms)
    write(tmp_path / "test.extxyz", frames)
    config = make_config(
        {"report": {"enabled": True, "test_data": "test.extxyz"}},
        name="base.yaml",
    )
    out = tmp_path / "bench"
    emt = ["pfd.testing:EMTBackend"]
    args = ["--config", str(config), "--out", str(out)]
    args += ["--model", "a", *emt, "a.json", "--model", "b", *emt, "b.json"]
    result = foundation_models.main(args)

    rows = {r["name"]: r for r in result["models"]}
    assert set(rows) == {"a", "b"}
    for row in rows.values():
        assert row["labels"] == 3 + 2  # initial frames + one iteration's selection
        assert row["iterations"] == 1
        assert row["converged"] is True  # the base config's loose target
        assert row["fine_tuned"]["force_rmse_eV_A"] > 0
        assert row["zero_shot"]["force_rmse_eV_A"] > 0
        assert row["finetune_s"] > 0
    assert result["choice"] in {"a", "b"}
    spec = yaml.safe_load((out / "a" / "pfd.yaml").read_text())
    assert spec["distill"] == {"enabled": False}
    assert spec["report"]["eos"] == {"enabled": False}
    assert Path(spec["structures"][0]["path"]).is_absolute()

    reused = foundation_models.main(
        [*args[:4], "--model", "a", *emt, "a.json", "--reuse", f"a={out / 'a' / 'run'}"]
    )
    assert reused["models"][0]["labels"] == rows["a"]["labels"]

    # the same labels for every model: the run's own model is reproduced
    replayed = foundation_models.main(
        [
            *["--replay", str(out / "a" / "run"), "--out", str(out / "r")],
            *["--model", "a", *emt, str(tmp_path / "a.json")],
            *["--model", "b", *emt, str(tmp_path / "b.json")],
        ]
    )["rows"]
    assert set(replayed) == {"a/zero-shot", "a/1", "b/zero-shot", "b/1"}
    assert replayed["a/1"]["labels"] == 3  # the frames iteration 1 trained on
    assert replayed["a/1"]["force_rmse_eV_A"] == pytest.approx(
        rows["a"]["fine_tuned"]["force_rmse_eV_A"]
    )
    assert replayed["a/zero-shot"]["force_rmse_eV_A"] == pytest.approx(
        rows["a"]["zero_shot"]["force_rmse_eV_A"]
    )
