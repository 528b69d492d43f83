"""Speed: real force calls timed; student and teacher compared at equal size."""

from __future__ import annotations

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from pfd.analysis import compare_speed, md_speed, speed_cells
from pfd.config import SpeedReportConfig

CU = bulk("Cu", "fcc", 3.6, cubic=True)


class Counting(EMT):
    calls = 0

    def calculate(self, *args, **kwargs):
        type(self).calls += 1
        super().calculate(*args, **kwargs)


def test_speed_counts_real_force_calls():
    Counting.calls = 0
    assert md_speed(Counting(), CU.repeat(2), steps=3) > 0
    assert Counting.calls >= 5  # 2 warm-up + 3 timed steps, each a new geometry


def test_teacher_runs_up_to_its_largest_size_and_the_ratio_is_at_equal_size():
    settings = SpeedReportConfig(sizes=[4, 500], teacher_max_atoms=120, steps=1)
    every, limited = speed_cells(CU, settings)
    assert [len(c) for c in limited] == [4, 108]  # 3x3x3: the largest <= 120
    assert [len(c) for c in every] == [4, 108, 500]
    result = compare_speed(
        {"teacher": EMT, "student": EMT},
        CU,
        settings.model_copy(update={"sizes": [4, 32]}),
        threads=3,
    )
    assert result.equal_size_atoms == 32
    ms = result.ms_per_atom_step
    assert result.speedup == pytest.approx(ms["teacher"][32] / ms["student"][32])
    assert result.to_dict()["threads"] == 3
