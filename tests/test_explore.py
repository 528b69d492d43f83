from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from pfd.config import ExploreConfig, GuardConfig, RampConfig
from pfd.explore import MDTask, plan_md, run_md


def _cu(n=1):
    atoms = bulk("Cu", "fcc", 3.6, cubic=True).repeat(n)
    atoms.info = {"structure": 0}
    return atoms


def test_plan_covers_temperatures_pressures_ramps():
    cfg = ExploreConfig(
        temperatures_K=[300, 600],
        pressures_bar=[None, 1e4],
        ramps=[RampConfig(start_K=300, stop_K=2000, steps=10)],
    )
    cluster = Atoms("Cu3", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]])
    cluster.info = {"structure": 1}
    tasks = plan_md([_cu(), cluster], cfg, seed=0)
    bulk_tasks = [t for t in tasks if t.structure == 0]
    assert len(bulk_tasks) == 2 * 2 + 1
    # a cluster has no cell: NVT only
    assert all(t.pressure_bar is None for t in tasks if t.structure == 1)
    assert len({t.seed for t in tasks}) == len(tasks)


def test_nvt_samples_frames_and_npt_changes_volume():
    cfg = ExploreConfig(steps=40, sample_every=10, timestep_fs=2.0)
    atoms = _cu(2)
    nvt = run_md(atoms, EMT(), MDTask(0, 500, 500, None, 40, 1), cfg)
    assert len(nvt.frames) == 4
    assert nvt.stopped is None
    assert all(np.isclose(f.cell.volume, nvt.frames[0].cell.volume) for f in nvt.frames)
    npt = run_md(atoms, EMT(), MDTask(0, 500, 500, 1e5, 40, 1), cfg)
    volumes = [f.cell.volume for f in npt.frames]
    assert np.ptp(volumes) > 1e-3
    assert "NPT" in npt.frames[0].info["source"]


class NaNAfter(EMT):
    """EMT that returns NaN energies after ``n`` calculations."""

    def __init__(self, n):
        super().__init__()
        self.calls, self.n = 0, n

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.calls += 1
        if self.calls > self.n:
            self.results["energy"] = float("nan")


def test_guard_stops_at_nan_and_keeps_earlier_frames():
    cfg = ExploreConfig(steps=100, sample_every=5)
    traj = run_md(_cu(), NaNAfter(32), MDTask(0, 300, 300, None, 100, 3), cfg)
    assert traj.stopped is not None
    assert "non-finite" in traj.stopped
    assert traj.steps_done < 100
    assert 4 <= len(traj.frames) <= 7
    assert all(np.isfinite(f.positions).all() for f in traj.frames)


def test_guard_stops_when_atoms_come_too_close():
    # every Cu-Cu contact (2.55 Å) is "too close" with this factor
    cfg = ExploreConfig(
        steps=50, sample_every=5, guards=GuardConfig(min_distance_factor=0.99)
    )
    traj = run_md(_cu(), EMT(), MDTask(0, 300, 300, None, 50, 3), cfg)
    assert traj.stopped == "step 5: atoms too close"
    assert traj.frames == []


def test_ramp_heats_up():
    cfg = ExploreConfig(steps=200, sample_every=50, friction_fs=20.0)
    traj = run_md(_cu(2), EMT(), MDTask(0, 50, 1500, None, 200, 5), cfg)
    temps = [f.info["temperature_K"] for f in traj.frames]
    # the first sample (step 50) targets 412 K, the last 1500 K
    assert temps[-1] > 1000 > temps[0]


def test_explore_gives_the_same_trajectories_on_any_executor():
    from pfd.execute import LocalExecutor
    from pfd.explore import explore

    cfg = ExploreConfig(temperatures_K=[300, 900], steps=8, sample_every=4)
    alone = explore([_cu()], EMT, cfg, seed=3)  # a LocalExecutor of one thread
    with LocalExecutor(md_workers=2) as pool:  # two spawned processes
        side_by_side = explore([_cu()], EMT, cfg, seed=3, executor=pool)
    assert [len(t.frames) for t in alone] == [2, 2]
    for a, b in zip(alone, side_by_side, strict=True):
        assert a.task == b.task
        assert np.array_equal(a.frames[-1].positions, b.frames[-1].positions)
