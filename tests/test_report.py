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

from pfd.analysis import vacancy_energy, vacancy_supercell
from pfd.cli.main import app
from pfd.report.dft import DFTJobs
from pfd.report.models import Model
from tests.conftest import BASE_CONFIG, merge

CU = bulk("Cu", "fcc", 3.6, cubic=True)


SMALL = {
    "model": {"backend": "pfd.testing:EMTBackend", "checkpoint": "foundation.json"},
    "explore": {"workers": 1},
    "report": {
        "enabled": True,
        "test_data": ["test.extxyz", "broad-set.extxyz"],  # one table each
        "phonons": {"npoints": 20, "dft": True},
        "vacancy": {"dft": True},
        "surfaces": {"miller": [[1, 1, 1]], "min_atoms": 8},
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
    write(root / "broad-set.extxyz", test[:2])
    (root / "pfd.yaml").write_text(yaml.safe_dump(merge(BASE_CONFIG, SMALL)))
    result = CliRunner().invoke(app, ["run", str(root / "pfd.yaml"), "-q"])
    assert result.exit_code == 0, result.output
    return root / "run" / "report"


def test_report_has_every_section_and_its_images(reported: Path):
    numbers = json.loads((reported / "report.json").read_text())
    for key in (
        "errors",
        "learning_curve",
        "eos",
        "phonons",
        "vacancy",
        "surfaces",
        "diffusion",
    ):
        assert key in numbers
    assert set(numbers["errors"]) == {"dft_run", "dft_test", "dft_broad_set"}
    assert numbers["errors"]["dft_broad_set"]["teacher"]["n_frames"] == 2
    assert (reported / "parity_dft_broad_set.png").is_file()
    eos = next(iter(numbers["eos"].values()))
    assert set(eos["fit"]) == {"foundation", "teacher", "DFT"}
    phonons = next(iter(numbers["phonons"].values()))
    assert set(phonons) == {"foundation", "teacher", "DFT"}
    vacancy = next(iter(numbers["vacancy"].values()))
    assert vacancy["DFT"]["at_teacher_geometry_eV"] == pytest.approx(
        vacancy["teacher"]["relaxed_eV"],
        abs=0.05,  # EMT labels, EMT-shifted model
    )
    (slab,) = numbers["surfaces"].values()
    assert slab["miller"] == [1, 1, 1]
    assert slab["DFT"]["at_teacher_geometry_J_m2"] == pytest.approx(
        slab["models"]["teacher"]["relaxed_J_m2"],
        abs=1e-6,  # a per-atom shift (the model's) cancels in a surface energy
    )
    assert 0.8 < slab["DFT"]["at_teacher_geometry_J_m2"] < 1.3  # EMT Cu(111)
    jobs = [p.name for p in (reported / "dft").iterdir()]
    # EOS jobs started ahead are the ones the analysis asked for: none redone
    assert sorted(j for j in jobs if j.startswith("eos-")) == [
        f"eos-cu-{k}" for k in range(7)
    ]
    assert not [j for j in jobs if "replaced" in j]
    page = (reported / "index.html").read_text()
    images = [s.split('"')[1] for s in page.split("<img src=")[1:]]
    assert len(images) >= 6
    assert all((reported / name).is_file() for name in images)
    assert "Equation of state" in page
    assert "finite-size effects are not converged" in page
    assert "DFT at the teacher-relaxed slab" in page
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
    for name in ("eos.json", "phonons.json", "vacancy.json", "surfaces.json"):
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
    # errors, errors_by_subset, eos, phonons, vacancy, surfaces, diffusion, speed
    assert len(numbers["reused"]) == 8
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
            "--window-size=1200,6000",  # every table and plot in view
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
    assert coloured.sum() > 3600  # pixels, as 0.1 % of the 1200x3000 view it had


def _emt_jobs(root: Path) -> DFTJobs:
    """'DFT' jobs with plain EMT, one line per calculation in root/calls.log."""
    from pfd.label.ase_calc import ASELabeler

    log = {"log": str(root / "calls.log")}
    return DFTJobs(ASELabeler("pfd.testing:CountingEMT", log), root / "dft", workers=2)


def _calls(root: Path) -> int:
    log = root / "calls.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _teacher(root: Path) -> Model:
    return Model("teacher", root / "teacher.json", EMT)


def test_vacancy_dft_reference_is_the_model_when_the_model_is_the_labeller(
    tmp_path: Path,
):
    from pfd.config import VacancyReportConfig
    from pfd.report.defects import Later, vacancy_section

    # the teacher stops after 1 BFGS step, DFT relaxes on from its atoms
    settings = VacancyReportConfig(
        min_atoms=8, fmax_eV_A=0.02, max_steps=1, dft_relax=True, dft_relax_steps=2
    )
    jobs = _emt_jobs(tmp_path)
    later = vacancy_section([_teacher(tmp_path)], [CU], settings, jobs)
    assert isinstance(later, Later)
    numbers = later.finish()["Cu4"]
    teacher, dft = numbers["teacher"], numbers["DFT"]
    assert not teacher["converged"]
    assert dft["natoms"] == teacher["natoms"] == 8
    assert dft["at_teacher_geometry_eV"] == pytest.approx(
        teacher["relaxed_eV"], abs=1e-6
    )
    relaxed = vacancy_energy(EMT(), vacancy_supercell(CU, settings), 0.02)
    assert dft["relaxed_eV"] == pytest.approx(relaxed.relaxed_eV, abs=0.005)
    assert dft["relaxed_eV"] < dft["at_teacher_geometry_eV"]
    assert 1 <= dft["relax_steps"] <= 2
    # perfect cell, teacher's vacancy, then one job per further DFT BFGS step
    done = [d for d in (tmp_path / "dft").iterdir() if (d / "output.extxyz").exists()]
    assert len(done) == 2 + dft["relax_steps"]
    jobs.close()
    calls = _calls(tmp_path)
    again = _emt_jobs(tmp_path)  # a rerun: every job is read back
    assert vacancy_section([_teacher(tmp_path)], [CU], settings, again).finish() == {
        "Cu4": numbers
    }
    assert _calls(tmp_path) == calls


def test_surface_dft_reference_is_the_model_when_the_model_is_the_labeller(
    tmp_path: Path,
):
    from pfd.config.report import SurfaceReportConfig
    from pfd.report.defects import report_slabs, surface_section

    settings = SurfaceReportConfig(min_atoms=8, max_steps=20)
    slabs = report_slabs([(CU, None)], settings)
    jobs = _emt_jobs(tmp_path)
    numbers = surface_section([_teacher(tmp_path)], slabs, settings, jobs).finish()
    (slab,) = numbers.values()
    assert slab["miller"] == [1, 0, 0]
    assert slab["miller_from"].startswith("the default [1, 0, 0]")
    gamma = slab["models"]["teacher"]["relaxed_J_m2"]
    assert slab["DFT"]["at_teacher_geometry_J_m2"] == pytest.approx(gamma, abs=1e-6)
    assert 0.9 < gamma < 1.4  # EMT Cu(100)
    assert sorted(d.name for d in (tmp_path / "dft").iterdir()) == [
        "surface-Cu4-bulk",
        "surface-Cu4_slab_100",
    ]


def test_surfaces_follow_the_structures_variants_unless_miller_is_given():
    from types import SimpleNamespace

    from pfd.config.report import SurfaceReportConfig
    from pfd.report.defects import report_slabs

    variants = SimpleNamespace(surfaces=[(1, 1, 1)], layers=3, vacuum_A=8.0)
    entry = SimpleNamespace(variants=variants)
    ((_, (slab,), source),) = report_slabs([(CU, entry)], SurfaceReportConfig())
    assert slab.info["miller"] == [1, 1, 1]
    assert source == "structures.variants.surfaces"
    given = SurfaceReportConfig(miller=[[1, 1, 0]])
    ((_, (slab,), source),) = report_slabs([(CU, entry)], given)
    assert slab.info["miller"] == [1, 1, 0]
    assert source == "report.surfaces.miller"


def test_a_dft_job_of_other_labeller_settings_is_run_again(tmp_path: Path):
    from pfd.label.ase_calc import ASELabeler

    first = _emt_jobs(tmp_path)(CU, "bulk").get_potential_energy()
    assert _emt_jobs(tmp_path)(CU, "bulk").get_potential_energy() == first
    assert _calls(tmp_path) == 1  # read back
    params = {"log": str(tmp_path / "calls.log"), "asap_cutoff": True}
    other = DFTJobs(ASELabeler("pfd.testing:CountingEMT", params), tmp_path / "dft")
    assert other(CU, "bulk").get_potential_energy() != pytest.approx(first, abs=1e-3)
    assert _calls(tmp_path) == 2
    assert (tmp_path / "dft" / "bulk.stale-1" / "output.extxyz").is_file()


def test_errors_per_subset_and_material(tmp_path: Path):
    """The page's per-subset table: one row per subset, one column per model."""
    from pfd.report.sections import subset_errors_section

    frames = []
    for k, subset in enumerate(["hot", "hot", "strained"]):
        a = CU.copy()
        a.rattle(0.05, seed=k)
        a.calc = EMT()
        a.get_forces()
        a.info["subset"] = subset
        frames.append(a)
    models = [Model("emt", tmp_path / "emt", EMT), Model("zero", tmp_path / "z", _Zero)]
    found = subset_errors_section(models, {"dft_test": frames})["dft_test"]
    assert set(found) == {"hot", "strained"}
    assert found["hot"]["emt"]["n_frames"] == 2
    assert found["hot"]["emt"]["force_rmse_eV_A"] == pytest.approx(0, abs=1e-9)
    assert found["strained"]["zero"]["force_rmse_eV_A"] > 0.01
    one = subset_errors_section(models, {"dft_test": frames[:2]})
    assert one == {}  # a single group is the data set itself


class _Zero(EMT):
    """EMT energies, zero forces."""

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.results["forces"] = np.zeros_like(self.results["forces"])
