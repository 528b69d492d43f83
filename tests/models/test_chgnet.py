"""The real CHGNet backend (shipped 0.3.0 weights); its contract: test_contract.py."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from pfd.errors import PFDError
from pfd.label.results import single_point
from pfd.models.chgnet import SHIPPED, CHGNetBackend, load_model, training_labels
from pfd.structures import perturb

pytest.importorskip("chgnet")


@pytest.fixture(scope="module")
def backend():
    # one thread: on a shared 2-core machine two OpenMP threads that spin while
    # the other is descheduled made CHGNet's training 10x slower
    return CHGNetBackend(threads=1)


def test_shipped_weights_load_without_network(backend, monkeypatch, tmp_path: Path):
    def offline(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", offline)
    monkeypatch.setattr(socket, "create_connection", offline)
    for name, (version, _) in SHIPPED.items():
        path = backend.resolve(name)
        assert path.is_file()
        assert "chgnet" in str(path)
        assert "pretrained" in str(path)
        assert load_model(path).version == version
    # 0.2.0 needs mlp_out_bias, which only CHGNet.load sets for the shipped file
    assert load_model(backend.resolve("chgnet-0.2.0")).model_args["mlp_out_bias"]
    assert backend.resolve("CHGNet") == backend.resolve("chgnet-0.3.0")
    with pytest.raises(PFDError, match="nothing is downloaded"):
        backend.resolve("chgnet-9.9.9")
    with pytest.raises(PFDError, match="not found"):
        backend.resolve(str(tmp_path / "model.pth.tar"))
    with pytest.raises(PFDError, match="does not cover element"):
        backend.check_elements(path, {"Cu", "Am"})
    backend.check_elements(path, {"H", "Pu"})


def test_stress_is_strain_derivative_in_ase_units(backend):
    """Stress = (1/V) dE/d(strain) in eV/Å³; a GPa or sign slip is off by 160x or 2x."""
    calc = backend.calculator(backend.resolve("chgnet-0.3.0"))
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    cu.positions += np.random.default_rng(1).normal(0, 0.04, cu.positions.shape)
    strain = np.array([[0.02, 0.01, 0.0], [0.01, -0.015, 0.008], [0.0, 0.008, 0.03]])
    cu.set_cell(cu.cell @ (np.eye(3) + strain), scale_atoms=True)
    cu.calc = calc
    stress = cu.get_stress(voigt=True)
    assert stress.shape == (6,)
    assert isinstance(cu.get_potential_energy(), float)
    h, volume = 2e-3, cu.get_volume()
    fd = np.zeros(6)
    for k, (i, j) in enumerate([(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]):
        energies = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[i, j] += sign * h / 2
            eps[j, i] += sign * h / 2
            work = cu.copy()
            work.set_cell(cu.cell @ (np.eye(3) + eps), scale_atoms=True)
            work.calc = calc
            energies.append(work.get_potential_energy())
        fd[k] = (energies[0] - energies[1]) / (2 * h) / volume
    assert np.abs(fd).max() > 5e-3  # a stress worth testing (> 0.8 GPa)
    np.testing.assert_allclose(stress, fd, rtol=0.03, atol=2e-4)


def test_training_labels_are_what_chgnet_trains_on(backend):
    """Frames labelled by CHGNet itself become CHGNet's own training targets."""
    import torch
    from chgnet.data.dataset import StructureData

    path = backend.resolve("chgnet-0.3.0")
    calc = backend.calculator(path)
    rng = np.random.default_rng(3)
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    labelled = [single_point(perturb(cu, rng, 0.08, 0.04), calc) for _ in range(2)]
    data = StructureData(
        **training_labels(labelled, with_stress=True),
        graph_converter=calc.model.graph_converter,
        shuffle=False,
    )
    for i, atoms in enumerate(labelled):
        graph, targets = data[i]
        pred = calc.model([graph], task="efs")
        assert float(targets["e"]) == pytest.approx(float(pred["e"][0]), abs=1e-5)
        forces = pred["f"][0].detach().numpy()
        np.testing.assert_allclose(targets["f"].numpy(), forces, atol=1e-4)
        stress = pred["s"][0].detach().numpy()  # GPa, 3x3
        assert torch.is_tensor(targets["s"])
        np.testing.assert_allclose(targets["s"].numpy(), stress, atol=1e-3)
        assert np.abs(stress).max() > 0.5  # in GPa: a sign slip would show
        assert float(targets["e"]) * len(atoms) == pytest.approx(
            atoms.get_potential_energy(), abs=1e-4
        )
