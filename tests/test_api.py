"""The public API from a notebook: fine-tune, distil, analyse; no run directory."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

import pfd
from pfd.structures import perturb
from pfd.testing import ShiftedEMT

pytest.importorskip("deepmd")

SHIFT_EV = 0.3  # the "DFT" code's energy zero, per Cu atom, against the model's


def _dft_frames(n: int) -> list:
    """EMT frames whose energies sit SHIFT_EV per atom above EMT's zero."""
    rng = np.random.default_rng(3)
    dft = ShiftedEMT({"Cu": SHIFT_EV})
    frames = []
    for _ in range(n):
        atoms = perturb(bulk("Cu", "fcc", 3.6, cubic=True), rng, 0.05, 0.02)
        atoms.calc = dft
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        stress = atoms.get_stress()
        atoms.calc = SinglePointCalculator(
            atoms, energy=energy, forces=forces, stress=stress
        )
        frames.append(atoms)
    return frames


def test_notebook_finetune_distil_analyse(tmp_path: Path):
    frames = _dft_frames(6)
    emt = "pfd.testing:EMTBackend"
    model = pfd.ModelConfig(backend=emt, checkpoint=str(tmp_path / "foundation.json"))
    foundation = pfd.load_calculator(model.checkpoint, backend=emt)
    before = pfd.analysis.evaluate(frames, foundation)
    assert before.energy_rmse_eV_atom == pytest.approx(SHIFT_EV, abs=0.01)

    teacher = pfd.finetune(frames, tmp_path / "ft", model=model,
                           settings=pfd.FineTuneConfig(epochs=1))  # fmt: skip
    assert teacher.is_file()
    assert teacher.is_relative_to(tmp_path / "ft")
    teacher_calc = functools.partial(pfd.load_calculator, str(teacher), backend=emt)
    after = pfd.analysis.evaluate(frames, teacher_calc())
    assert after.energy_rmse_eV_atom < 0.01  # the energy zero was learnt

    settings = pfd.DistillConfig(
        steps=12, sample_every=3, workers=1, temperatures_K=[600], pressures_bar=[None],
        student={"rcut_A": 4.0, "embedding": [4, 8], "fitting": [8], "steps": 60},
        committee=2,  # the student and one member (the default 4 trains 3 more)
    )  # fmt: skip
    cu = bulk("Cu", "fcc", 3.6, cubic=True)
    result = pfd.distill(teacher_calc, [cu], settings, tmp_path / "st")
    assert result.model == tmp_path / "st" / "student" / "graph_c.pb"
    assert result.check["vs_teacher"]["n_frames"] == result.check["n_test"] > 0
    lammps = (tmp_path / "st" / "student" / "lammps" / "in.lammps").read_text()
    assert "pair_style      deepmd ../graph_c.pb" in lammps
    assert "../member_2.pb out_freq 100 out_file model_devi.out" in lammps
    trained = tmp_path / "st" / "round_1" / "graph_c.pb"
    before = trained.stat().st_mtime_ns
    again = pfd.distill(teacher_calc, [cu], settings, tmp_path / "st")
    assert trained.stat().st_mtime_ns == before  # nothing trained twice
    force = again.check["vs_teacher"]["force_rmse_eV_A"]  # frames reread from extxyz
    assert force == pytest.approx(result.check["vs_teacher"]["force_rmse_eV_A"])
    student = pfd.load_calculator(result.model)
    scored = pfd.analysis.evaluate(frames, student)
    assert np.isfinite(scored.force_rmse_eV_A)

    eos = pfd.analysis.equation_of_state(teacher_calc, cu)
    assert eos.fit.B0_GPa == pytest.approx(134, abs=6)  # EMT Cu
