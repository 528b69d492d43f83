"""Amorphous structure: melt-quench MD, g(r) and its first shell, the report's
RDF section, and a loop whose exploration quenches (EMT Cu stand-ins)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read

from pfd.analysis.amorphous import (
    QuenchProtocol,
    melt_quench,
    melted,
    rdf_of,
    structure_of,
)
from pfd.config import load_config
from pfd.config.report import RDFReportConfig
from pfd.db import RunDB
from pfd.layout import RunLayout
from pfd.loop import run_finetune
from pfd.progress import Reporter
from pfd.report import write_report
from pfd.report.amorphous import (
    amorphous_section,
    dft_sets,
    plan_entry,
    quench_ramps,
    ramp_target_temperature,
)
from pfd.report.models import Model
from pfd.report.page import render
from pfd.structures import read_inputs

QUIET = Reporter(quiet=True)
A_CU = 3.6
NN_CU = A_CU / np.sqrt(2)  # fcc first neighbours
CU32 = bulk("Cu", "fcc", A_CU, cubic=True).repeat(2)
# A perfect 32-atom EMT Cu crystal superheats far past its melting point: at
# 2000-3000 K it still vibrates about its sites after 0.8 ps (MSD 0.1 Å²), at
# 8300 K it is a liquid within 0.4 ps (MSD 1.6 Å², 2.5x the melt check's floor)
QUENCH = QuenchProtocol(
    melt_K=8300.0,
    final_K=300.0,
    melt_steps=200,
    quench_K_per_ps=50000.0,
    anneal_steps=100,
    sample_every=10,
)
RAMPS = [
    {"start_K": 2000, "stop_K": 2000, "steps": 12},
    {"start_K": 2000, "stop_K": 300, "steps": 12},
]


@pytest.fixture(scope="module")
def quenched():
    return melt_quench(CU32, EMT(), QUENCH, seed=2)


def test_crystal_has_a_sharp_first_peak_at_a_over_sqrt2_and_12_neighbours():
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(3):
        a = CU32.copy()
        a.rattle(0.02, rng=rng)
        frames.append(a)
    _, shell = structure_of(frames, rmax=6.0, nbins=200)
    assert shell.peak_A == pytest.approx(NN_CU, abs=0.03)  # bin width 0.03 Å
    assert shell.coordination == pytest.approx(12, abs=0.1)
    assert NN_CU < shell.minimum_A < A_CU  # between the first and second shell
    assert shell.fwhm_A < 0.2  # 0.15: the 5-bin smoothing of a near-delta peak
    assert shell.peak_g > 10


def test_small_cell_rdf_equals_its_repetitions():
    # a 4-atom cell is far smaller than 2 rmax: ASE's g(r) runs on a repetition
    small = bulk("Cu", "fcc", A_CU, cubic=True)
    small.rattle(0.05, seed=2)
    g_small = rdf_of([small], rmax=6.0, nbins=100)
    g_big = rdf_of([small.repeat(4)], rmax=6.0, nbins=100)
    assert np.allclose(g_small.g, g_big.g, atol=1e-9)


def test_quench_protocol_counts_steps_and_temperatures():
    # 8000 K at 50000 K/ps: 0.16 ps, 80 steps of 2 fs
    assert QUENCH.quench_steps == 80
    assert QUENCH.total_steps == 200 + 80 + 100
    assert QUENCH.target_temperature(200) == 8300
    assert QUENCH.target_temperature(200 + 10) == pytest.approx(7300)
    assert QUENCH.target_temperature(QUENCH.total_steps) == 300
    assert QUENCH.stage(201) == "quench"
    assert QUENCH.stage(QUENCH.total_steps) == "anneal"


def test_quenched_melt_has_a_broad_first_peak_and_about_12_neighbours(quenched):
    assert quenched.stopped is None
    assert quenched.steps_done == QUENCH.total_steps
    melt, anneal = quenched.stage("melt"), quenched.stage("anneal")
    assert len(anneal) == 10
    assert all(a.info["target_K"] == 300 for a in anneal)
    _, liquid = structure_of(melt[5:], rmax=6.0)
    _, glass = structure_of(anneal, rmax=6.0)
    # a liquid: low, broad first peak, no empty gap before the second shell
    assert liquid.peak_g < 4
    assert liquid.fwhm_A > 0.3
    assert 10 < liquid.coordination < 14
    # quenched: sharper than the liquid, far broader than the crystal (whose
    # anneal after a melt that did not melt has FWHM 0.24-0.27 Å, g 6.4)
    assert liquid.peak_g < glass.peak_g < 4.5
    assert glass.fwhm_A > 0.3
    assert 11 <= glass.coordination <= 14
    # EMT's Cu glass at the crystal's volume: first peak ~0.2 Å short of d_nn
    assert 0.85 * NN_CU < glass.peak_A < 1.02 * NN_CU


def test_melt_check_tells_a_melt_from_a_crystal_that_stays_one(quenched):
    """EMT Cu held at 8300 K for 0.4 ps melts; held at 2500 K for 0.3 ps the
    32-atom crystal superheats: hot, but its atoms vibrate about their sites."""
    msd = [a.info["msd_A2"] for a in quenched.stage("melt")]
    assert msd[-1] > msd[0]  # diffusing: the MSD grows
    check = melted(quenched, CU32)
    assert check.melted
    assert check.nn_distance_A == pytest.approx(NN_CU)
    assert check.msd_A2 > 2 * check.floor_A2
    assert "it melted" in check.reason
    hot = QuenchProtocol(melt_K=2500, final_K=300, melt_steps=150, anneal_steps=0)
    crystal = melted(melt_quench(CU32, EMT(), hot, seed=2), CU32)
    assert not crystal.melted
    assert crystal.msd_A2 < 0.3 * crystal.floor_A2
    assert "did not melt" in crystal.reason
    assert "melt longer or hotter" in crystal.reason


def test_ramp_target_of_a_frame_source():
    from pfd.config import RampConfig

    ramps = [RampConfig(start_K=2000, stop_K=300, steps=100)]
    assert ramp_target_temperature("s0 2000->300K NVT step 50", ramps) == pytest.approx(
        1150
    )
    assert ramp_target_temperature("s0 melt 2000->300K NVT step 100", ramps) == 300
    assert ramp_target_temperature("s0 2000K NVT step 50", ramps) is None  # a hold
    assert ramp_target_temperature("s0 300->900K NVT step 50", ramps) is None  # heating
    assert ramp_target_temperature("si perturbed #0", ramps) is None
    held = [RampConfig(start_K=2000, stop_K=300, steps=100, hold_steps=40)]
    assert ramp_target_temperature("s0 2000->300K NVT step 40", held) == 2000
    assert ramp_target_temperature("s0 2000->300K NVT step 90", held) == 1150


def _labelled(frames, subset: str):
    out = []
    for a in frames:
        b = a.copy()
        b.calc = EMT()
        b.get_forces()
        b.info["subset"] = subset
        out.append(b)
    return out


def test_section_renders_three_curves_with_shells_and_errors(
    quenched, tmp_path: Path, make_config
):
    teacher = Model("teacher", tmp_path / "t.json", EMT)
    student = Model("student", tmp_path / "s.json", lambda: EMT(asap_cutoff=True))
    frames = {
        "dft_test": _labelled(quenched.stage("anneal")[::3], "amorphous-300K")
        + _labelled(quenched.stage("melt")[-2:], "liquid-2000K")
    }
    settings = RDFReportConfig(melt_steps=40, anneal_steps=30, quench_K_per_ps=2e4)
    dft = dft_sets(frames, [], settings)
    assert list(dft) == ["DFT test: amorphous-300K"]  # not the liquid subset
    # 2000 K in 50 steps; anneal frames at steps 100, 110, 120
    quick = QuenchProtocol(melt_K=2300, melt_steps=40, quench_K_per_ps=2e4,
                           anneal_steps=30)  # fmt: skip
    numbers = amorphous_section(
        [teacher, student], CU32, dft, settings, quick, tmp_path
    )
    curves = numbers["curves"]
    assert set(curves) == {"DFT test: amorphous-300K", "teacher", "student",
                           "crystal (input)"}  # fmt: skip
    assert curves["teacher"]["frames"] == 3
    # 80 fs at 2300 K: the crystal only warms (the page must say so)
    assert curves["teacher"]["melt"]["melted"] is False
    assert curves["crystal (input)"]["shell"]["coordination"] == pytest.approx(12)
    # one coordination cutoff for all: the glass's minimum (the models' melts
    # did not melt), between the crystal's first and second shells
    assert numbers["cutoff_from"] == "DFT test: amorphous-300K"
    assert NN_CU < numbers["cutoff_A"] < A_CU
    assert curves["crystal (input)"]["coordination_at_cutoff"] == pytest.approx(12)
    errors = curves["DFT test: amorphous-300K"]["errors"]
    assert errors["teacher"]["force_rmse_eV_A"] == pytest.approx(0, abs=1e-9)
    assert errors["student"]["force_rmse_eV_A"] > 1e-3  # another EMT cutoff
    assert (tmp_path / "rdf_amorphous.png").stat().st_size > 10_000
    cfg = load_config(make_config())
    page = render({"models": {}, "learning_curve": {"rows": []}, "seconds": {},
                   "reused": [], "rdf": json.loads(json.dumps(numbers))},
                  cfg, tmp_path)  # fmt: skip
    assert "Amorphous structure" in page
    assert "DFT test: amorphous-300K" in page
    assert '<img src="rdf_amorphous.png"' in page
    assert "cooling at 2e+04 K/ps" in page
    assert page.count("no: a crystal") == 2  # teacher and student


def test_section_is_planned_only_for_quenching_runs(make_config):
    def entries(overrides):
        cfg = load_config(make_config(overrides))
        inputs = read_inputs(cfg.structures)
        return plan_entry(cfg, [], inputs, {}, Path())

    assert entries({}) == []  # no ramps
    assert entries({"explore": {"ramps": [RAMPS[0]]}}) == []  # a hold, no quench
    assert [e[0] for e in entries({"explore": {"ramps": RAMPS}})] == ["rdf"]
    asked = {"report": {"rdf": {"enabled": True, "melt_K": 2000}}}
    assert [e[0] for e in entries(asked)] == ["rdf"]
    melt = {"structures": [{"path": "cu.extxyz", "variants": {"melt": True}}]}
    cfg = load_config(make_config(melt))
    assert [r.stop_K for r in quench_ramps(cfg, read_inputs(cfg.structures))] == [300]


@pytest.mark.slow  # 6 min on a busy 2-core machine: SevenNet MD, training, report
def test_quench_loop_selects_ramp_frames_and_reports_their_rdf(make_config):
    """The real SevenNet-0 fine-tuned for an epoch, exploring by ramps only."""
    cfg = load_config(
        make_config(
            {
                "model": {"threads": 1},
                "explore": {
                    "temperatures_K": [],
                    "ramps": RAMPS,
                    "workers": 1,
                    "sample_every": 3,
                },
                "report": {
                    "enabled": True,
                    **{
                        k: {"enabled": False}
                        for k in ("eos", "phonons", "vacancy", "surfaces")
                    },
                    "diffusion": {"enabled": False},
                    "speed": {"enabled": False},
                    "rdf": {
                        "melt_steps": 10,
                        "quench_K_per_ps": 42500,  # 20 steps
                        "anneal_steps": 10,
                        "sample_every": 5,
                    },
                },
            }
        )
    )
    state = run_finetune(cfg, QUIET)
    assert state.finished
    layout = RunLayout(cfg.run_dir)
    candidates = read(layout.iteration(1) / "candidates.extxyz", ":")
    conditions = {a.info["condition"] for a in candidates}
    assert conditions == {"s0 2000K NVT", "s0 2000->300K NVT"}
    selected = [
        r.source for r in RunDB(layout.db).rows() if r.iteration == 1
    ]  # fmt: skip
    assert len(selected) == 2
    assert all(re.match(r"s0 2000(->300)?K NVT step \d+", s) for s in selected)
    page = write_report(cfg, QUIET).read_text()
    numbers = json.loads((layout.report / "report.json").read_text())
    curves = numbers["rdf"]["curves"]
    assert "teacher" in curves
    assert curves["teacher"]["frames"] == 2  # steps 35 and 40 of 40
    quench_frames = sum("->300K" in s for s in selected)
    if quench_frames:
        assert curves["DFT: run's quench frames"]["frames"] == quench_frames
    assert "Amorphous structure" in page


def test_noise_in_a_few_small_frames_is_not_the_first_minimum():
    """Two to four 32-atom GPAW frames of a Si quench (the a-Si example's test
    set): counting noise dips inside the first shell; the minimum must lie past
    it (a 5-bin running mean alone gave coordination 0.4 and 1.3 here). Two
    frames of the 3500 K liquid dip at 2.7 Å by noise (3.1 neighbours there);
    the report counts every curve within one cutoff, the glass's minimum."""
    from ase.io import read

    path = Path(__file__).parents[1] / "examples" / "a-si" / "test_dft.extxyz"
    frames = read(path, ":")
    subsets = {a.info["subset"] for a in frames}
    assert len(subsets) == 4  # liquid, two quench temperatures, amorphous
    shells = {}
    for subset in sorted(subsets):
        chosen = [a for a in frames if a.info["subset"] == subset]
        shells[subset] = chosen, structure_of(chosen, rmax=6.0)[1]
    for subset, (_, shell) in shells.items():
        if not subset.startswith("liquid"):
            assert 2.8 < shell.minimum_A < 3.3, subset
            assert 3.5 < shell.coordination < 6, subset
    glass = next(s for k, (_, s) in shells.items() if k.startswith("amorphous"))
    liquid, own = next(v for k, v in shells.items() if k.startswith("liquid"))
    _, at_cutoff = structure_of(liquid, rmax=6.0, cutoff_A=glass.minimum_A)
    assert at_cutoff.coordination > own.coordination + 0.5
    assert 3.5 < at_cutoff.coordination < 6.5
