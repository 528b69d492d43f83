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


GRID = ExploreConfig(
    temperatures_K=[300, 600],
    pressures_bar=[None, 1e4],
    ramps=[RampConfig(start_K=300, stop_K=2000, steps=10)],
)


def test_plan_covers_temperatures_pressures_ramps():
    cfg = GRID
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


def test_ramp_with_a_hold_melts_then_quenches_in_one_trajectory():
    """EMT Cu held at 8300 K (a 32-atom crystal superheats below that), then
    cooled to 300 K in the same trajectory: the quench starts from the liquid."""
    ramp = RampConfig(start_K=8300, stop_K=300, steps=100, hold_steps=200)
    tasks = plan_md([_cu(2)], ExploreConfig(temperatures_K=[], ramps=[ramp]), 0)
    (task,) = tasks
    assert (task.steps, task.hold) == (300, 200)
    targets = [task.temperature_at(s) for s in (1, 200, 250, 300)]
    assert targets == [8300, 8300, 4300, 300]
    cfg = ExploreConfig(sample_every=10, friction_fs=20.0)  # follows the ramp closely
    traj = run_md(_cu(2), EMT(), task, cfg)
    assert traj.stopped is None
    assert len(traj.frames) == 30
    start = _cu(2).positions
    held = traj.frames[19]  # step 200: the end of the hold
    moved = held.positions - start - (held.positions - start).mean(0)
    assert (moved**2).sum(1).mean() > 0.648  # 0.1 d_nn²: it melted
    assert traj.frames[-1].info["temperature_K"] < 2000  # and cooled


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


def _variant(atoms, name, **info):
    atoms.info = {"structure": 0, "variant": name, **info}
    return atoms


def test_plan_of_variants_slab_nvt_only_and_melt_its_own_ramps():
    cfg = GRID
    melt = {"start_K": 2000.0, "stop_K": 300.0, "steps": 7}
    cells = [
        _variant(_cu(), "bulk"),
        _variant(_cu(2)[1:], "vacancy-Cu0"),
        _variant(_cu(2), "slab-100", fixed_cell=True),
        _variant(_cu(2), "melt", ramps=[melt]),
    ]
    tasks = plan_md(cells, cfg, seed=0)
    by_variant: dict[str, list[str]] = {}
    for t in tasks:
        by_variant.setdefault(t.variant, []).append(t.label)
    # bulk and vacancy: the grid and the user's ramp; slab: NVT at each T only
    assert len(by_variant["bulk"]) == len(by_variant["vacancy-Cu0"]) == 2 * 2 + 1
    assert by_variant["slab-100"] == ["s0 slab-100 300K NVT", "s0 slab-100 600K NVT"]
    assert by_variant["melt"] == ["s0 melt 2000->300K NVT"]
    assert [t.steps for t in tasks if t.variant == "melt"] == [7]
    # a run without variants plans exactly as before (labels and seeds)
    plain = plan_md([_cu()], cfg, seed=0)
    assert [t.label for t in plain] == [
        label.replace(" bulk", "") for label in by_variant["bulk"]
    ]
    assert [t.seed for t in plain] == [t.seed for t in tasks[: len(plain)]]


def test_slab_keeps_its_cell_and_frames_name_their_variant():
    cfg = ExploreConfig(steps=8, sample_every=4, strain=0.05)
    slab = _variant(_cu(2), "slab-100", fixed_cell=True)
    slab.center(vacuum=5.0, axis=2)
    traj = run_md(slab, EMT(), MDTask(0, 300, 300, None, 8, 1, "slab-100"), cfg)
    assert len(traj.frames) == 2
    for frame in traj.frames:
        assert np.array_equal(frame.cell[:], slab.cell[:])
        assert frame.info["variant"] == "slab-100"
        assert frame.info["condition"] == "s0 slab-100 300K NVT"
    bulk = run_md(_cu(2), EMT(), MDTask(0, 300, 300, None, 8, 1), cfg)
    assert not np.allclose(bulk.frames[0].cell[:], _cu(2).cell[:])  # strained
    assert "variant" not in bulk.frames[0].info
