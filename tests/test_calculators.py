"""load_calculator: one door to an ASE calculator for any model file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from pfd.calculators import ModelCalculator, load_calculator
from pfd.errors import PFDError

EMT_BACKEND = "pfd.testing:EMTBackend"


def _emt_model(path: Path, shift: float) -> Path:
    path.write_text(json.dumps({"e0": {"Cu": shift}, "trained_on": 0}))
    return path


def test_serves_a_backend_model(tmp_path: Path):
    from ase.calculators.emt import EMT

    model = _emt_model(tmp_path / "model.json", -0.25)
    atoms = bulk("Cu", "fcc", 3.6, cubic=True)
    atoms.rattle(0.05, seed=1)
    atoms.calc = EMT()
    expected = atoms.get_potential_energy() - 0.25 * len(atoms)
    atoms.calc = load_calculator(model, backend=EMT_BACKEND, type_map=["Cu"])
    assert atoms.get_potential_energy() == pytest.approx(expected, abs=1e-9)
    # a picklable recipe for worker processes gives the same model
    atoms.calc = ModelCalculator(str(model), backend=EMT_BACKEND)()
    assert atoms.get_potential_energy() == pytest.approx(expected, abs=1e-9)


def test_backend_of_a_run_directory(tmp_path: Path):
    """A run's model file is read by the run's backend (its config.json)."""
    (tmp_path / "config.json").write_text(
        json.dumps({"model": {"backend": EMT_BACKEND}})
    )
    model = _emt_model(tmp_path / "final_model.pth", 1.0)
    (tmp_path / "iter_001").mkdir()
    earlier = _emt_model(tmp_path / "iter_001" / "model.pth", 2.0)
    atoms = bulk("Cu", "fcc", 3.6)
    energies = []
    for path in (model, earlier):
        atoms.calc = load_calculator(path)
        energies.append(atoms.get_potential_energy())
    assert energies[1] - energies[0] == pytest.approx(1.0)


def test_elements_checked(tmp_path: Path):
    model = _emt_model(tmp_path / "model.json", 0.0)
    with pytest.raises(PFDError, match="Si"):
        load_calculator(model, backend=EMT_BACKEND, type_map=["Cu", "Si"])


def _one_line(err: pytest.ExceptionInfo, *words: str) -> None:
    text = str(err.value)
    assert "\n" not in text
    for word in words:
        assert word in text, text


def test_not_a_model_file(tmp_path: Path):
    torch = pytest.importorskip("torch")
    data = tmp_path / "graphs.pt"  # training data, as SevenNet writes it
    torch.save([{"pos": torch.zeros(2, 3)}], data)
    with pytest.raises(PFDError) as err:
        load_calculator(data)
    _one_line(err, "graphs.pt", "not a model file", "a model file is")
    with pytest.raises(PFDError) as err:
        load_calculator(tmp_path / "absent.pth")
    _one_line(err, "absent.pth", "not found", "a model file is")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PFDError) as err:
        load_calculator(tmp_path / "notes.txt")
    _one_line(err, "notes.txt", "not a model file")
    with pytest.raises(PFDError) as err:
        load_calculator(tmp_path / "notes.txt", backend=EMT_BACKEND)  # JSON only
    _one_line(err, "notes.txt", "cannot load", "a model file is")
    with pytest.raises(PFDError) as err:
        load_calculator(data, threads=0)
    _one_line(err, "threads")


def test_text_file_named_like_a_student(tmp_path: Path):
    pytest.importorskip("deepmd")
    fake = tmp_path / "graph.pb"
    fake.write_text("not a graph\n")
    with pytest.raises(PFDError) as err:
        load_calculator(fake)
    _one_line(err, "graph.pb", "not a frozen DeePMD-kit graph")


def test_shipped_name_and_sniffed_checkpoint():
    pytest.importorskip("sevenn")
    from pfd.calculators import guess_kind
    from pfd.models.sevennet import SevenNetBackend

    assert guess_kind("7net-0") == "sevennet"
    checkpoint = SevenNetBackend().resolve("7net-0")
    assert guess_kind(str(checkpoint)) == "sevennet"  # from what the file holds
    calc = load_calculator("7net-0", threads=1, type_map=["Cu"])
    atoms = bulk("Cu", "fcc", 3.6)
    atoms.calc = calc
    assert np.isfinite(atoms.get_potential_energy())
