"""pfd report: each analysis on EMT Cu (known answers), then a whole report."""

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
from pfd.config import PhononReportConfig
from pfd.report import (
    arrhenius,
    diffusion_coefficient,
    eos_points,
    fit_eos,
    msd_run,
    phonon_bands,
    vacancy_energy,
)
from tests.conftest import BASE_CONFIG, merge

CU = bulk("Cu", "fcc", 3.6, cubic=True)


def test_eos_recovers_emt_lattice_constant_and_bulk_modulus():
    frames = eos_points(CU, 7, 0.08)
    energies = []
    for f in frames:
        f.calc = EMT()
        energies.append(f.get_potential_energy() / len(f))
    fit = fit_eos([f.get_volume() / len(f) for f in frames], energies)
    assert (4 * fit["V0"]) ** (1 / 3) == pytest.approx(3.59, abs=0.01)
    assert fit["B0_GPa"] == pytest.approx(134, abs=5)  # EMT's Cu, as ASE documents


def test_acoustic_phonons_vanish_at_gamma():
    bands = phonon_bands(CU, EMT(), PhononReportConfig(supercell=(2, 2, 2), npoints=20))
    gamma = np.abs(bands["gamma_THz"])
    assert len(gamma) == 3  # bands of the primitive cell phonopy found (1 atom)
    assert np.all(gamma < 0.05)
    assert bands["labels"][0] == "G"
    assert np.max(bands["frequencies_THz"]) == pytest.approx(7.9, abs=1.0)


def test_vacancy_formation_energy_is_positive_and_relaxation_lowers_it():
    result = vacancy_energy(CU.repeat(2), EMT(), fmax=0.05)
    assert 0.5 < result["relaxed_eV"] < result["unrelaxed_eV"] < 2.0


def test_crystal_below_melting_does_not_diffuse():
    times, msd, frames = msd_run(CU.repeat(2), EMT(), 300, 300, 50, 2.0)
    assert len(frames) == len(times)
    assert diffusion_coefficient(times, msd["Cu"]) < 1e-6  # liquids: ~1e-5 cm²/s
    assert msd["Cu"][-1] < 0.2  # Å², vibration only


def test_arrhenius_recovers_activation_energy():
    from ase.units import kB

    temps = [600.0, 900.0, 1200.0]
    coeffs = [1e-3 * np.exp(-0.5 / (kB * t)) for t in temps]
    fit = arrhenius(temps, coeffs)
    assert fit["Ea_eV"] == pytest.approx(0.5, rel=1e-6)
    assert arrhenius(temps, [0.0, 0.0, 1e-9]) is None


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


def test_speed_counts_real_force_calls():
    from pfd.report import md_speed

    calls = []

    class Counting(EMT):
        def calculate(self, *args, **kwargs):
            calls.append(1)
            super().calculate(*args, **kwargs)

    assert md_speed(CU.repeat(2), Counting(), steps=3) > 0
    assert len(calls) >= 5  # 2 warm-up + 3 timed steps, each a new geometry
