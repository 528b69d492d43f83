"""The ``pfd`` commands as a user calls them: exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pfd.cli.main import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"explore": {"temprature_K": [300]}}, "unknown key 'explore.temprature_K'"),
        ({"explore": {"temperatures_K": [-10]}}, "must be > 0 K"),
        ({"structures": [{"path": "missing.cif"}]}, "structure file"),
        ({"model": {"checkpoint": "no-such-model.pth"}}, "not found"),
        (
            {"labeler": {"calculator": "ase.calculators.nothere:X"}},
            "cannot import module",
        ),
        (
            {"labeler": {"calculator": "ase.calculators.emt"}},
            "must look like 'module:Class'",
        ),
    ],
)
def test_bad_input_is_one_line_and_nonzero(make_config, overrides, expected):
    result = _run("run", str(make_config(overrides)))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.output


def test_element_not_in_model(make_config, tmp_path: Path):
    from ase import Atoms
    from ase.io import write

    write(
        tmp_path / "og.extxyz",
        Atoms("Og2", positions=[[0, 0, 0], [3, 0, 0]], cell=[8] * 3, pbc=True),
    )
    result = _run("run", str(make_config({"structures": [{"path": "og.extxyz"}]})))
    assert result.exit_code == 1
    assert "does not cover element(s) Og" in result.output


def test_uninstalled_dft_code(make_config, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gpaw" else real(name, *a),
    )
    result = _run(
        "run", str(make_config({"labeler": {"code": "gpaw", "calculator": None}}))
    )
    assert result.exit_code == 1
    assert "GPAW is not installed" in result.output


def test_unwritable_run_dir(make_config, tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _run("run", str(make_config({"run_dir": "file/run"})))
    assert result.exit_code == 1
    assert "cannot write to run directory" in result.output


def test_debug_shows_traceback(make_config):
    with pytest.raises(Exception, match="unknown key"):
        _run("--debug", "run", str(make_config({"bogus": 1})))


def test_status_of_a_non_run(tmp_path: Path):
    result = _run("status", str(tmp_path))
    assert result.exit_code == 1
    assert "is not a pfd run directory" in result.output


def test_run_status_and_test(make_config, tmp_path: Path):
    result = _run("run", str(make_config()), "--quiet")
    assert result.exit_code == 0, result.output
    status = _run("status", str(tmp_path / "run"), "--json")
    payload = json.loads(status.output)
    assert payload["frames"]["labelled"] == 5
    assert payload["iterations"][0]["n_new"] == 2
    assert set(payload["seconds"]) == {"finetune"}  # distill, report off
    assert payload["seconds"]["finetune"] > 0
    table = _run("status", str(tmp_path / "run"))
    assert "foundation model, zero-shot" in table.output
    assert "final model" in table.output
    assert "wall time so far: finetune" in table.output

    out = tmp_path / "errors.json"
    tested = _run(
        "test",
        str(tmp_path / "run" / "final_model.pth"),
        str(tmp_path / "run" / "dft.extxyz"),
        "--output",
        str(out),
    )
    assert tested.exit_code == 0, tested.output
    errors = json.loads(out.read_text())
    assert errors["all"]["n_frames"] == 5
    assert set(errors) >= {"all", "init-0", "explore-1"}  # per subset
    assert errors["all"]["force_rmse_eV_A"] < 1.0


def test_test_rejects_unlabelled_file(tmp_path: Path):
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "bare.extxyz", bulk("Cu", cubic=True))
    result = _run("test", "7net-0", str(tmp_path / "bare.extxyz"))
    assert result.exit_code == 1
    assert "holds no frames with energies and forces" in result.output
