"""Teacher-checked active learning of the student (distill.active), EMT teacher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from pfd.config import ConfigError, DistillConfig, load_distill_settings
from pfd.errors import PFDError
from pfd.students.active import active_lines, check_active, choose

ACTIVE = {
    "rounds": 1,
    "frames_per_round": 10,
    "random_fraction": 0.2,
    "fresh_frames": 6,
    "steps": 90,
    "supercell_multiplier": 2,
    "retrain_steps": 300,
    "force_rmse_eV_A": 1e-4,  # out of reach: the round retrains
}


def test_off_by_default_and_bad_input_is_one_line(tmp_path: Path):
    assert DistillConfig().active.rounds == 0
    part = tmp_path / "a.yaml"
    part.write_text("distill: {committee: 1, active: {rounds: 2}}\n")
    with pytest.raises(ConfigError) as err:
        load_distill_settings(part, DistillConfig())
    message = str(err.value)
    assert "\n" not in message
    assert "picks frames by committee deviation: set distill.committee >= 2" in message
    part.write_text("distill: {active: {rounds: 1, frames: 3}}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'distill\.active\.frames'"):
        load_distill_settings(part, DistillConfig())
    on = DistillConfig(committee=2, active={"rounds": 1})
    with pytest.raises(PFDError) as err:
        check_active(tmp_path / "final_model.pth", on)
    assert "teacher model" in str(err.value)
    assert "not found" in str(err.value)
    assert "\n" not in str(err.value)
    check_active(tmp_path / "final_model.pth", DistillConfig())  # off: no check
    # distil() refuses before any MD or training
    from pfd.distillation import distill

    with pytest.raises(PFDError, match=r"teacher model .* not found"):
        distill(str(tmp_path / "none.pth"), bulk("Cu"), on, tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_choose_fresh_most_deviating_and_random():
    dev = np.array([0.1, 0.9, 0.2, 0.8, 0.05, 0.7, 0.3, 0.6, 0.4, 0.5])
    act = DistillConfig().active.model_copy(
        update={"fresh_frames": 3, "frames_per_round": 5, "random_fraction": 0.4}
    )
    fresh, top, rand = choose(dev, act, np.random.default_rng(0))
    assert (len(fresh), len(top), len(rand)) == (3, 3, 2)
    assert not set(fresh) & set(top + rand)  # fresh frames are never trained on
    assert len(set(top + rand)) == 5
    rest = sorted(set(range(10)) - set(fresh), key=lambda i: -dev[i])
    assert top == rest[:3]  # the largest deviations of the others, largest first
    assert set(rand) <= set(rest[3:])
    assert choose(dev, act, np.random.default_rng(0)) == (fresh, top, rand)
    few = choose(dev[:3], act, np.random.default_rng(0))
    assert len(few[0]) == 1  # at most half are kept for the check
    assert len(few[1]) + len(few[2]) == 2


def test_status_lines():
    rnd = {
        "round": 1, "md_frames": 40, "retrained": True, "frames_picked": 10,
        "by_deviation": 8, "at_random": 2, "fresh_frames": 6,
        "deviation": {"median_eV_A": 0.05, "max_eV_A": 0.4},
        "fresh_force_rmse_before_eV_A": 0.25, "fresh_force_rmse_after_eV_A": 0.12,
        "stop": "target reached",
    }  # fmt: skip
    lines = active_lines(
        {
            "rounds": [rnd],
            "frames_added": 10,
            "target_force_rmse_eV_A": 0.15,
            "stop": "target reached",
        }
    )
    assert lines[0].startswith("teacher-checked learning: 1 round(s), 10 teacher")
    assert "target F RMSE 0.150 eV/Å; stop: target reached" in lines[0]
    assert "40 student-MD frames" in lines[1]
    assert "10 added (8 most deviating, 2 random)" in lines[1]
    assert "6 fresh frames 0.250 -> 0.120 eV/Å" in lines[1]


# --- a real round: tiny DeePMD students, EMT teacher ---------------------------------

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


class _NoTeacher:
    """A teacher that must not be asked again (a resumed run relabels nothing)."""

    def __call__(self):
        raise AssertionError("the teacher was called on resume")


def _settings() -> DistillConfig:
    return DistillConfig(
        temperatures_K=[300, 700],
        pressures_bar=[None],
        supercells=[(2, 1, 1)],
        steps=60,
        sample_every=2,
        workers=1,
        student=TINY,
        committee=2,
        committee_steps=300,
        active=ACTIVE,
    )


@pytest.mark.slow
def test_a_round_learns_the_flagged_frames_and_resumes(tmp_path: Path):
    """~1 min: distil (EMT teacher), one round of teacher-checked learning."""
    pytest.importorskip("deepmd")
    from ase.io import read

    from pfd.distillation import distill

    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    work = tmp_path / "distill"
    result = distill(EMT, cu, _settings(), work, threads=1)
    active = result.check["active"]
    rnd = active["rounds"][0]
    assert rnd["retrained"]
    assert active["stop"] == rnd["stop"] == "max rounds"
    assert (rnd["by_deviation"], rnd["at_random"]) == (8, 2)
    # the round lowers the student's error on the frames it flagged
    before = rnd["added_force_rmse_before_eV_A"]
    assert rnd["added_force_rmse_after_eV_A"] < 0.8 * before, rnd
    # the student MD (64 atoms, 90 steps) is not the teacher's (8 atoms, 60 steps)
    root = work / "active" / "round_1"
    md = read(root / "md.extxyz", ":")
    assert {len(a) for a in md} == {64}
    assert len(md) == rnd["md_frames"] == 2 * 90 // 2
    flagged = [a.info["max_devi_f"] for a in read(root / "added.extxyz", ":")]
    assert min(flagged[:8]) >= np.median([a.info["max_devi_f"] for a in md])
    fresh = read(root / "fresh.extxyz", ":")
    assert len(fresh) == 6
    assert fresh[0].get_forces().shape == (64, 3)
    # the shipped student and member are the retrained ones; records follow
    student = work / "student"
    shipped = (student / "graph.pb").read_bytes()
    assert shipped == (root / "member_1" / "graph.pb").read_bytes()
    assert (student / "member_2.pb").read_bytes() == (
        root / "member_2" / "graph.pb"
    ).read_bytes()
    assert result.check["committee"]["members"][1] == str(student / "member_2.pb")
    assert "seconds" in result.check["committee"]  # of the first training, kept
    assert "round 1: 90 student-MD frames" in active_lines(active)[1]
    # a rerun reuses every file: no teacher call, the same record and student
    again = distill(_NoTeacher(), cu, _settings(), work, threads=1)
    assert again.check["active"]["rounds"] == active["rounds"]
    assert (student / "graph.pb").read_bytes() == shipped
    json.dumps(again.check)  # check.json material
