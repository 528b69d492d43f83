"""pfd report: a whole report of an EMT run, its cache, its page.

The analyses themselves are tested on known answers in tests/analysis/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write
from typer.testing import CliRunner

from pfd.cli.main import app
from tests.conftest import BASE_CONFIG, merge

CU = bulk("Cu", "fcc", 3.6, cubic=True)


SMALL = {
    "model": {"backend": "pfd.testing:EMTBackend", "checkpoint": "foundation.json"},
    "explore": {"workers": 1},
    "report": {
        "enabled": True,
        "test_data": "test.extxyz",
        "phonons": {"npoints": 20, "dft": True},
        "vacancy": {"dft": True},
        "diffusion": {"steps": 100, "equilibration_steps": 10, "min_atoms": 32},
        "speed": {"sizes": [4, 32], "steps": 2},
    },
}


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    write(root / "cu.extxyz", CU)
    test = []
    rng = np.random.default_rng(3)
    for _ in range(3):
        a = CU.copy()
        a.rattle(0.05, rng=rng)
        a.calc = EMT()
        a.get_stress()
        test.append(a)
    write(root / "test.extxyz", test)
    (root / "pfd.yaml").write_text(yaml.safe_dump(merge(BASE_CONFIG, SMALL)))
    result = CliRunner().invoke(app, ["run", str(root / "pfd.yaml"), "-q"])
    assert result.exit_code == 0, result.output
    return root / "run" / "report"


def test_report_has_every_section_and_its_images(reported: Path):
    numbers = json.loads((reported / "report.json").read_text())
    for key in ("errors", "learning_curve", "eos", "phonons", "vacancy", "diffusion"):
        assert key in numbers
    assert set(numbers["errors"]) == {"dft_run", "dft_test"}
    eos = next(iter(numbers["eos"].values()))
    assert set(eos["fit"]) == {"foundation", "teacher", "DFT"}
    phonons = next(iter(numbers["phonons"].values()))
    assert set(phonons) == {"foundation", "teacher", "DFT"}
    vacancy = next(iter(numbers["vacancy"].values()))
    assert vacancy["DFT"]["at_teacher_geometry_eV"] == pytest.approx(
        vacancy["teacher"]["relaxed_eV"],
        abs=0.05,  # EMT labels, EMT-shifted model
    )
    page = (reported / "index.html").read_text()
    images = [s.split('"')[1] for s in page.split("<img src=")[1:]]
    assert len(images) >= 6
    assert all((reported / name).is_file() for name in images)
    assert "Equation of state" in page
    # a crystal at 300 and 900 K: no diffusion, no activation energy
    diffusion = numbers["diffusion"]
    assert [r["species"]["Cu"]["D_cm2_s"] for r in diffusion["runs"]] == [None, None]
    assert diffusion["arrhenius"]["Cu"]["Ea_eV"] is None
    assert "no diffusion at 300 K" in page
    assert numbers["speed"]["threads"] == 2
    assert "2 threads" in page


def test_rerun_reuses_what_is_computed(reported: Path):
    before = {p.name: p.stat().st_mtime_ns for p in reported.glob("*.json")}
    first = json.loads((reported / "report.json").read_text())
    assert first["reused"] == []
    dft_jobs = sorted((reported / "dft").iterdir())
    config = reported.parent.parent / "pfd.yaml"
    result = CliRunner().invoke(
        app, ["report", str(reported.parent), "-c", str(config)]
    )
    assert result.exit_code == 0, result.output
    numbers = json.loads((reported / "report.json").read_text())
    assert sorted(numbers["reused"]) == sorted(numbers["seconds"])
    assert numbers["seconds"] == first["seconds"]  # what they took when computed
    for name in ("eos.json", "phonons.json", "diffusion.json"):
        assert (reported / name).stat().st_mtime_ns == before[name]
    assert sorted((reported / "dft").iterdir()) == dft_jobs


def test_copied_run_reuses_its_report_without_computing(
    reported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from pfd.testing import ShiftedEMT

    calls = []
    original = ShiftedEMT.calculate

    def counting(self, *args, **kwargs):
        calls.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ShiftedEMT, "calculate", counting)
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(reported.parent, copy)
    config = reported.parent.parent / "pfd.yaml"
    result = CliRunner().invoke(app, ["report", str(copy), "-c", str(config)])
    assert result.exit_code == 0, result.output
    numbers = json.loads((copy / "report" / "report.json").read_text())
    assert sorted(numbers["reused"]) == sorted(numbers["seconds"])
    # errors, eos, phonons, vacancy, diffusion, speed
    assert len(numbers["reused"]) == 6
    assert calls == []  # not one energy or force computed again


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_page_renders_in_headless_chromium(reported: Path, tmp_path: Path):
    from PIL import Image

    shot = tmp_path / "page.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,3000",
            f"--screenshot={shot}",
            (reported / "index.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # plots put colour on the page: orange/blue markers, not only black text on white
    coloured = np.abs(pixels - pixels.mean(axis=2, keepdims=True)).max(axis=2) > 60
    assert coloured.mean() > 0.001
