"""Held-out test sets: MD frames at chosen conditions, labelled and written."""

from __future__ import annotations

from pathlib import Path

from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read

from pfd.config import LabelerConfig
from pfd.testset import label_to_file, md_frames


def test_md_frames_labelled_to_file(tmp_path: Path):
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    conditions = [(300, None, "md-300K"), (900, 5000.0, "md-900K")]
    frames = md_frames(cu, EMT(), conditions, steps=20, per_trajectory=2)
    assert [f.info["subset"] for f in frames] == ["md-300K"] * 2 + ["md-900K"] * 2
    assert frames[0].positions.tolist() != frames[1].positions.tolist()
    labeler = LabelerConfig(code="ase", calculator="ase.calculators.emt:EMT")
    out = tmp_path / "test.extxyz"
    label_to_file(frames, labeler, tmp_path / "work", out, workers=1)
    back = read(out, ":")
    assert [a.info["subset"] for a in back] == [f.info["subset"] for f in frames]
    assert all(a.calc is not None and "forces" in a.calc.results for a in back)
    # a rerun reads the jobs back: same energies
    again = label_to_file(frames, labeler, tmp_path / "work", out, workers=1)
    assert again[0].get_potential_energy() == back[0].get_potential_energy()
