"""Replay of pseudo-labels: frames made and labelled by the foundation, cached,
shifted into the DFT zero, refused where a backend cannot weight them, and
learnt by SevenNet so that the fine-tuned model stays near the foundation there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read

from pfd.config import ExploreConfig, FineTuneConfig, load_config
from pfd.config.loop import ReplayConfig
from pfd.errors import ConfigError, PFDError
from pfd.label.results import single_point
from pfd.replay import (
    DEFAULT_FRAMES,
    ReplaySet,
    frames_wanted,
    replay_set,
    shift_energies,
)
from pfd.structures import perturb
from pfd.testing import EMTBackend
from pfd.training import training_job

EXPLORE = ExploreConfig(temperatures_K=[300, 900])
SMALL = ReplayConfig(frames=8, steps=4, min_atoms=4)  # the cubic cell: no search


@pytest.fixture
def cu():
    atoms = bulk("Cu", "fcc", 3.6, cubic=True)
    atoms.info = {"structure": 0, "name": "cu"}
    return atoms


class WeightingEMT(EMTBackend):
    """The EMT stand-in, declaring that it weights replayed frames."""

    supports_weighted_replay = True


class BrokenEMT(EMTBackend):
    def calculator(self, model):
        raise AssertionError("the cached replay frames should have been used")


def test_replay_frames_are_labelled_by_the_foundation_cached_and_reused(
    tmp_path: Path, cu
):
    foundation = EMTBackend().resolve(str(tmp_path / "foundation.json"))
    path = tmp_path / "run" / "replay.extxyz"
    path.parent.mkdir()
    made = replay_set(path, [cu], EMTBackend(), foundation, SMALL, EXPLORE, seed=1)

    assert made is not None
    assert made.weights == {"energy": 0.0, "force": SMALL.weight, "stress": 0.0}
    frames = made.frames
    assert len(frames) == 8
    assert all(f.info["replay"] is True for f in frames)
    # each kind the run never labels; the crystal itself is DFT's, not replayed
    assert {f.info["variant"] for f in frames} == {
        "vacancy-Cu0",
        "slab-100",
        "slab-111",
    }
    for frame in frames:  # the foundation's (EMT) labels, positions as cached
        ref = single_point(frame, EMT())  # (extxyz keeps 8 decimals of Å)
        assert frame.get_potential_energy() == pytest.approx(
            ref.get_potential_energy(), abs=1e-5
        )
        assert np.allclose(frame.get_forces(), ref.get_forces(), atol=1e-5)
        assert np.allclose(frame.get_stress(), ref.get_stress(), atol=1e-6)
    assert len(read(path, ":")) == 8

    again = replay_set(path, [cu], BrokenEMT(), foundation, SMALL, EXPLORE, seed=1)
    assert again is not None
    assert [f.positions.tolist() for f in again.frames] == [
        f.positions.tolist() for f in frames
    ]
    # other MD settings: made anew, not read back
    longer = SMALL.model_copy(update={"steps": 6})
    with pytest.raises(AssertionError, match="cached replay frames"):
        replay_set(path, [cu], BrokenEMT(), foundation, longer, EXPLORE, seed=1)


def test_replay_energies_move_to_the_dft_zero_and_never_validate(tmp_path: Path, cu):
    rng = np.random.default_rng(0)
    shift = -2.0  # eV/atom between the "DFT" zero and the foundation's (EMT)
    dft = []
    for _ in range(10):
        atoms = single_point(perturb(cu, rng, 0.05, 0.02), EMT())
        results = dict(atoms.calc.results)
        results["energy"] += shift * len(atoms)
        atoms.calc = SinglePointCalculator(atoms, **results)
        dft.append(atoms)
    replayed = [single_point(perturb(cu.repeat(2), rng, 0.1, 0), EMT())]
    foundation = EMTBackend().resolve(str(tmp_path / "foundation.json"))
    replay = ReplaySet(replayed, foundation, {"energy": 0.1, "force": 0.3})

    job = training_job(
        WeightingEMT(), foundation, dft, tmp_path / "ft", FineTuneConfig(), 0, 1, replay
    )
    assert job.replay_weights == {"energy": 0.1, "force": 0.3}
    assert len(job.replay) == 1
    raw = replayed[0].get_potential_energy()
    assert job.replay[0].get_potential_energy() == pytest.approx(raw + shift * 32)
    assert np.array_equal(job.replay[0].get_forces(), replayed[0].get_forces())
    assert replayed[0].get_potential_energy() == raw  # the cache is not touched
    assert len(job.train) + len(job.valid) == len(dft)  # validation: DFT only

    with pytest.raises(PFDError, match=r"cannot weight.*finetune\.replay\.frames: 0"):
        training_job(EMTBackend(), foundation, dft, tmp_path / "x", FineTuneConfig(),
                     0, 1, replay)  # fmt: skip


def test_shift_energies_adds_each_element_its_shift():
    atoms = bulk("NaCl", "rocksalt", 5.6)  # one Na, one Cl
    atoms.calc = SinglePointCalculator(atoms, energy=-5.0, free_energy=-5.1)
    (moved,) = shift_energies([atoms], {11: 1.0, 17: -0.25})
    assert moved.get_potential_energy() == pytest.approx(-4.25)
    assert moved.calc.results["free_energy"] == pytest.approx(-4.35)


def test_replay_is_off_by_default_and_refused_where_the_backend_cannot_weight_frames(
    tmp_path,
):
    from pfd.models.sevennet import SevenNetBackend

    assert frames_wanted(ReplayConfig(frames=None), SevenNetBackend) == DEFAULT_FRAMES
    assert frames_wanted(ReplayConfig(), SevenNetBackend) == 0  # off by default
    assert frames_wanted(ReplayConfig(), EMTBackend) == 0
    assert frames_wanted(ReplayConfig(frames=0), SevenNetBackend) == 0

    config = {
        "structures": [{"path": "cu.xyz"}],
        "model": {"backend": "pfd.testing:EMTBackend", "checkpoint": "f.json"},
        "finetune": {"replay": {"frames": 8}},
    }
    path = tmp_path / "pfd.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message
    assert "backend 'pfd.testing:EMTBackend' cannot weight replayed frames" in message
    assert "set finetune.replay.frames: 0" in message
    del config["finetune"]
    path.write_text(yaml.safe_dump(config))
    assert load_config(path).finetune.replay.frames == 0  # off unless asked


@pytest.mark.slow
def test_sevennet_learns_replayed_frames_with_their_weight(tmp_path: Path):
    """Fine-tuned on EMT Cu, SevenNet-0 drifts from its own forces on Cu
    vacancies; replaying its own labels there (weight 1) keeps it closer."""
    from pfd.analysis.errors import evaluate
    from pfd.models.sevennet import SevenNetBackend

    backend = SevenNetBackend(threads=2)
    foundation = backend.resolve("7net-0")
    rng = np.random.default_rng(3)
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    dft = [single_point(perturb(cu, rng, 0.1, 0.03), EMT()) for _ in range(4)]
    calc = backend.calculator(foundation)
    vacancy = cu.repeat((2, 1, 1))
    del vacancy[0]
    replayed = [single_point(perturb(vacancy, rng, 0.1, 0), calc) for _ in range(4)]
    settings = FineTuneConfig(epochs=3, batch_size=2, learning_rate=0.004)

    def tuned(name: str, replay: ReplaySet | None) -> Path:
        job = training_job(
            backend, foundation, dft, tmp_path / name, settings, 0, 1, replay
        )
        return backend.fine_tune(job)

    plain = tuned("plain", None)
    weights = {"energy": 1.0, "force": 1.0, "stress": 0.0}
    kept = tuned("replay", ReplaySet(replayed, foundation, weights))

    spec = yaml.safe_load((tmp_path / "replay" / "input.yaml").read_text())
    assert spec["train"]["use_weight"] is True
    entry = spec["data"]["load_trainset_path"][1]
    assert entry["data_weight"] == weights
    assert len(read(entry["file_list"][0]["file"], ":")) == 4
    drift = {
        name: evaluate(replayed, backend.calculator(model)).force_rmse_eV_A
        for name, model in {"plain": plain, "replay": kept}.items()
    }
    (tmp_path / "drift.json").write_text(json.dumps(drift))
    assert drift["plain"] > 0.01  # fine-tuning moved it away from its own forces
    assert drift["replay"] < 0.7 * drift["plain"], drift
