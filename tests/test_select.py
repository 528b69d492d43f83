from __future__ import annotations

import numpy as np
from ase.build import bulk

from pfd.config import GuardConfig, SelectConfig
from pfd.select import filter_frames, select_frames
from pfd.structures import perturb


def _frames():
    rng = np.random.default_rng(1)
    base = bulk("Cu", "fcc", 3.6, cubic=True)
    base.info = {"structure": 0}
    near = []
    for _ in range(6):  # near-duplicates of the labelled structure
        f = perturb(base, rng, 0.002, 0.0)
        f.info = {"structure": 0, "kind": "near"}
        near.append(f)
    far = []
    for s in (0.08, 0.12):  # strongly strained: new environments
        f = base.copy()
        f.set_cell(base.cell * (1 + s), scale_atoms=True)
        f.info = {"structure": 0, "kind": "far"}
        far.append(f)
    return base, near + far


def test_entropy_picks_novel_frames():
    base, frames = _frames()
    chosen = select_frames(
        frames, [base], SelectConfig(max_per_iteration=2), np.random.default_rng(0)
    )
    assert [f.info["kind"] for f in chosen] == ["far", "far"]


def test_random_respects_cap_and_is_seeded():
    _, frames = _frames()
    cfg = SelectConfig(method="random", max_per_iteration=3)
    a = select_frames(frames, [], cfg, np.random.default_rng(4))
    b = select_frames(frames, [], cfg, np.random.default_rng(4))
    assert len(a) == 3
    assert [f.positions.sum() for f in a] == [f.positions.sum() for f in b]


def test_filters_drop_close_pairs_and_sheared_cells():
    base, frames = _frames()
    squashed = base.copy()
    squashed.positions[1] = squashed.positions[0] + [0.5, 0, 0]
    sheared = base.copy()
    sheared.set_cell([[3.6, 0, 0], [2.5, 3.6, 0], [0, 0, 3.6]], scale_atoms=True)
    for f in (squashed, sheared):
        f.info = {"structure": 0}
    kept = filter_frames(
        [*frames, squashed, sheared], [base], SelectConfig(), GuardConfig()
    )
    assert len(kept) == len(frames)


def test_stratified_selection_covers_every_condition():
    base, frames = _frames()
    for f in frames:  # near-duplicates at "300K", strained frames at "1500K"
        f.info["condition"] = "1500K" if f.info["kind"] == "far" else "300K"
    cfg = SelectConfig(max_per_iteration=2)
    chosen = select_frames(frames, [base], cfg, np.random.default_rng(0))
    assert sorted(f.info["condition"] for f in chosen) == ["1500K", "300K"]
    plain = SelectConfig(max_per_iteration=2, stratify=False)
    chosen = select_frames(frames, [base], plain, np.random.default_rng(0))
    assert [f.info["condition"] for f in chosen] == ["1500K", "1500K"]


def test_selection_goes_round_the_variants_first():
    base, frames = _frames()
    near = [f for f in frames if f.info["kind"] == "near"]
    far = [f for f in frames if f.info["kind"] == "far"]
    for k, f in enumerate(far):  # the novel frames: the bulk at two conditions
        f.info.update(variant="bulk", condition=f"s0 bulk T{k}")
    for k, f in enumerate(near):  # near-duplicates: two variants, one condition each
        name = "vacancy-Cu0" if k % 2 else "slab-100"
        f.info.update(variant=name, condition=f"s0 {name} 300K NVT")
    cfg = SelectConfig(max_per_iteration=3)
    chosen = select_frames(frames, [base], cfg, np.random.default_rng(0))
    assert sorted(f.info["variant"] for f in chosen) == [
        "bulk",
        "slab-100",
        "vacancy-Cu0",
    ]
    for f in frames:  # without variants the conditions alone: the bulk twice
        del f.info["variant"]
    chosen = select_frames(frames, [base], cfg, np.random.default_rng(0))
    assert [f.info["kind"] for f in chosen].count("far") == 2


def test_frames_of_a_variant_are_filtered_against_its_own_cell():
    cube = bulk("Cu", "fcc", 3.6, cubic=True)
    cube.info = {"structure": 0, "variant": "bulk"}
    hexagonal = bulk("Cu", "hcp", a=2.55)  # cell angles 90, 90, 120
    hexagonal.info = {"structure": 0, "variant": "phase-0"}
    frame = perturb(hexagonal, np.random.default_rng(0), 0.02, 0.0)
    frame.info = dict(hexagonal.info)
    cfg = SelectConfig(max_cell_angle_deviation_deg=10)
    assert len(filter_frames([frame], [cube, hexagonal], cfg, GuardConfig())) == 1
    frame.info["variant"] = "bulk"  # the same cell, against the cube: sheared 30°
    assert filter_frames([frame], [cube, hexagonal], cfg, GuardConfig()) == []
