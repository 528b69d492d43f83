"""The loop with structure variants: Cu's vacancy, (111) slab and melt are made once,
explored, selected, labelled and tested like structures (EMT stand-ins)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from typer.testing import CliRunner

from pfd.cli.main import app
from pfd.config import load_config
from pfd.db import RunDB
from pfd.errors import PFDError
from pfd.layout import RunLayout
from pfd.loop import run_finetune
from pfd.progress import Reporter
from tests.conftest import merge, stand_in

QUIET = Reporter(quiet=True)
VARIANTS = {
    "vacancies": True,
    "surfaces": [[1, 1, 1]],
    "layers": 3,
    "melt": True,
    "melt_steps": 8,
    "min_atoms": 8,
}
CELLS = {"bulk", "vacancy-Cu0", "slab-111", "melt"}


def _overrides(tmp_path: Path, variants: dict = VARIANTS) -> dict:
    return merge(
        stand_in(tmp_path, "variants"),
        {
            "structures": [{"path": "cu.extxyz", "variants": variants}],
            "initial": {"frames_per_structure": 1},
            "explore": {
                "temperatures_K": [300],
                "steps": 8,
                "sample_every": 4,
                "workers": 1,
            },
            "select": {"max_per_iteration": 4, "method": "random"},
        },
    )


def _calls(tmp_path: Path) -> int:
    return len((tmp_path / "calls-variants.log").read_text().splitlines())


@pytest.mark.slow  # ~30 s: 8 DFT jobs in their own processes, 9 trajectories
def test_variants_are_explored_labelled_and_tested(
    make_config, tmp_path: Path, monkeypatch
):
    cfg = load_config(make_config(_overrides(tmp_path)))
    state = run_finetune(cfg, QUIET)
    layout = RunLayout(cfg.run_dir)
    made = read(layout.variants, ":")
    assert [c.info["variant"] for c in made] == ["vacancy-Cu0", "slab-111", "melt"]

    # one initial frame per variant, then one frame of each cell in iteration 1
    db = RunDB(layout.db)
    init = {f.uid: f.atoms.info["variant"] for f in db.frames(iteration=0)}
    assert init == {
        "init-s0-0": "bulk",
        "init-s0-vacancy-Cu0-0": "vacancy-Cu0",
        "init-s0-slab-111-0": "slab-111",
        "init-s0-melt-0": "melt",
    }
    new = [f.atoms for f in db.frames(iteration=1, status="labelled")]
    assert sorted(a.info["variant"] for a in new) == sorted(CELLS)
    assert all(a.info["structure"] == 0 for a in new)
    exported = {a.info["variant"] for a in read(layout.dft, ":")}
    assert exported == CELLS

    # the slab keeps its cell (NVT, not strained); the melt runs its own ramps
    slab = made[1]
    candidates = read(layout.iteration(1) / "candidates.extxyz", ":")
    by_cell: dict[str, list] = {}
    for frame in candidates:
        by_cell.setdefault(frame.info["variant"], []).append(frame)
    assert set(by_cell) == CELLS
    assert all(np.allclose(f.cell[:], slab.cell[:]) for f in by_cell["slab-111"])
    assert {f.info["condition"] for f in by_cell["slab-111"]} == {
        "s0 slab-111 300K NVT"  # no NPT
    }
    assert {f.info["condition"] for f in by_cell["bulk"]} == {
        "s0 bulk 300K NVT",
        "s0 bulk 300K NPT 1000bar",
    }
    melt_k = 1.5 * 1357.77
    assert {f.info["condition"] for f in by_cell["melt"]} == {
        f"s0 melt {melt_k:g}->300K NVT"  # held at melt_k, then quenched
    }

    # the new frames' errors per variant, recorded and shown by `pfd status`
    (record,) = state.iterations
    assert set(record.variants) == {f"s0 {v}" for v in CELLS}
    assert all(e["n_frames"] == 1 for e in record.variants.values())
    assert all(e["force_rmse_eV_A"] < 1.0 for e in record.variants.values())
    status = CliRunner().invoke(app, ["status", str(cfg.run_dir)])
    assert status.exit_code == 0, status.output
    assert re.search(r"s0 slab-111: 1 frames, force RMSE \d\.\d{3} eV/Å", status.output)

    # a resumed run reads the variants back: nothing generated or labelled again
    import pfd.variants

    def no_generation(*args, **kwargs):
        raise AssertionError("variants generated again on resume")

    monkeypatch.setattr(pfd.variants, "generate", no_generation)
    before, calls = layout.variants.read_bytes(), _calls(tmp_path)
    again = run_finetune(cfg, QUIET)
    assert again.finished
    assert layout.variants.read_bytes() == before
    assert _calls(tmp_path) == calls

    # other variants cannot be asked for mid-run
    changed = load_config(
        make_config(_overrides(tmp_path, {**VARIANTS, "melt": False}), "other.yaml")
    )
    with pytest.raises(PFDError, match="different 'structures'"):
        run_finetune(changed, QUIET)


def test_dry_run_lists_the_jobs_of_each_variant(make_config, tmp_path: Path):
    path = make_config(_overrides(tmp_path))
    result = CliRunner().invoke(app, ["run", "--dry-run", str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "3 structure variants can be made" in out
    # 1 frame of the structure (4 atoms), 1 of each variant (7, 24 and 8 atoms)
    assert re.search(r"initial +4 jobs x 4/7/8/24 atoms", out)
    for cell, atoms in [("bulk", 4), ("vacancy-Cu0", 7), ("slab-111", 24)]:
        line = rf"s0 {cell} +{atoms} atoms, +1 k-points: 1 initial, ~1 per iteration"
        assert re.search(line + r", ~\S+ (s|min) per job", out), out
    assert not RunLayout(load_config(path).run_dir).variants.exists()


def test_database_keeps_structure_and_variant(tmp_path: Path):
    from ase.build import bulk

    db = RunDB(tmp_path / "pfd.db")
    slab = bulk("Cu", "fcc", 3.6, cubic=True)
    slab.info = {"structure": 1, "variant": "slab-111", "condition": "s1 slab-111"}
    plain = bulk("Cu", "fcc", 3.6, cubic=True)
    plain.info = {"structure": 0}
    db.add_pending(slab, uid="a", iteration=1, stage="explore", source="md")
    db.add_pending(plain, uid="b", iteration=1, stage="explore", source="md")
    assert db.get("a").atoms.info["variant"] == "slab-111"
    assert db.get("a").atoms.info["structure"] == 1
    assert "condition" not in db.get("a").atoms.info  # only what names the cell
    assert not {"structure", "variant"} & set(db.get("b").atoms.info)  # as before
    assert db.count(variant="slab-111") == 1


def test_errors_per_variant_group_the_new_frames():
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from pfd.analysis.errors import predict
    from pfd.convergence import errors_per_variant, variant_lines
    from pfd.label.results import single_point

    frames = []
    for k, variant in enumerate(["bulk", "melt", "melt"]):
        atoms = bulk("Cu", "fcc", 3.6, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms = single_point(atoms, EMT())
        atoms.info = {"structure": 0, "variant": variant}
        frames.append(atoms)
    errors = errors_per_variant(frames, predict(frames, EMT(asap_cutoff=True)))
    assert list(errors) == ["s0 bulk", "s0 melt"]
    assert [e["n_frames"] for e in errors.values()] == [1, 2]
    assert all(e["force_rmse_eV_A"] > 0 for e in errors.values())
    assert variant_lines(errors)[1].startswith("s0 melt: 2 frames, force RMSE")
    for atoms in frames:  # a run without variants records none
        del atoms.info["variant"]
    assert errors_per_variant(frames, predict(frames, EMT())) == {}
