"""A molecule (non-periodic cluster) end to end: the loop with the real SevenNet,
no stress anywhere, cells untouched, the DFT box, distillation and the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.cluster import Icosahedron
from ase.io import read, write

from pfd.config import load_config
from pfd.db import RunDB
from pfd.label.results import in_box, single_point
from pfd.loop import run_finetune
from pfd.progress import Reporter
from tests.conftest import BASE_CONFIG, merge

QUIET = Reporter(quiet=True)

#: a Cu13 icosahedron in vacuum, NVT only (a molecule has no pressure)
MOLECULE = {
    "name": "cu13",
    "structures": [{"path": "cu13.extxyz"}],
    "initial": {"frames_per_structure": 3, "displacement_A": 0.05, "strain": 0.0},
    "explore": {"temperatures_K": [300, 900], "pressures_bar": [None]},
}


def _cluster(path: Path) -> Atoms:
    cluster = Icosahedron("Cu", 2)  # 13 atoms, no cell, pbc False
    write(path, cluster)
    return cluster


def test_in_box_keeps_a_big_enough_cell_and_boxes_the_rest():
    water = Atoms("OH2", positions=[[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]])
    boxed = in_box(water, vacuum_A=6.0)  # no cell: a new box, 6 Å each side
    assert not any(boxed.pbc)
    span = np.ptp(water.positions, axis=0)
    assert np.allclose(boxed.cell.lengths(), span + 12.0)
    assert np.allclose(boxed.positions.min(axis=0), 6.0)
    own = water.copy()
    own.set_cell([15.0, 16.0, 17.0])
    own.positions += [10.0, 14.0, 1.0]  # off centre, even outside: centred in it
    kept = in_box(own)
    assert np.allclose(kept.cell[:], own.cell[:])
    assert np.allclose(kept.get_center_of_mass(), [7.5, 8.0, 8.5], atol=0.5)
    small = water.copy()
    small.set_cell([8.0, 8.0, 8.0])  # < 4 Å on a side: a new box instead
    assert np.allclose(in_box(small).cell.lengths(), span + 12.0)
    crystal = Atoms("Cu", cell=[2.5, 2.5, 2.5], pbc=True)
    assert in_box(crystal).cell[:] == pytest.approx(crystal.cell[:])


def test_labels_of_a_molecule_keep_its_frame_and_have_no_stress():
    from ase.calculators.emt import EMT

    cluster = Icosahedron("Cu", 2)
    cluster.rattle(0.05, seed=1)
    direct = single_point(cluster, EMT())
    boxed = single_point(cluster, EMT(), box_vacuum_A=6.0)
    assert np.allclose(boxed.positions, cluster.positions)  # the frame as it was
    assert boxed.cell.rank == 0
    assert np.allclose(boxed.get_forces(), direct.get_forces(), atol=1e-8)
    assert boxed.get_potential_energy() == pytest.approx(direct.get_potential_energy())
    assert "stress" not in boxed.calc.results


@pytest.mark.slow
def test_loop_on_a_cluster_trains_without_stress(make_config, tmp_path: Path):
    """One iteration (fine-tune, explore, select, label, test) with SevenNet-0
    (~4 min on 2 busy cores: two sevenn trainings)."""
    cluster = _cluster(tmp_path / "cu13.extxyz")
    log = tmp_path / "calls.log"
    cfg = load_config(
        make_config(
            merge(
                MOLECULE,
                {
                    "labeler": {
                        "calculator": "pfd.testing:CountingEMT",
                        "parameters": {"log": str(log)},
                    },
                    "convergence": {"max_iterations": 1, "force_rmse_eV_A": 1e-6},
                },
            )
        )
    )
    state = run_finetune(cfg, QUIET)
    run = cfg.run_dir
    db = RunDB(run / "pfd.db")
    assert db.count(iteration=0, status="labelled") == 3
    assert db.count(iteration=1, status="labelled") == 2
    assert len(log.read_text().splitlines()) == 5
    assert state.finished
    assert (run / "final_model.pth").exists()
    assert state.iterations[0].force_rmse_eV_A < 1.0  # tested before training on it
    # labels: no stress, frames still without cell or periodicity
    labels = read(run / "dft.extxyz", ":")
    assert len(labels) == 5
    for atoms in labels:
        assert not any(atoms.pbc)
        assert atoms.cell.rank == 0
        assert "stress" not in atoms.calc.results
        assert np.abs(atoms.get_forces().sum(axis=0)).max() < 1e-6
    # MD: NVT only (2 temperatures), cells unchanged
    candidates = read(run / "iter_001" / "candidates.extxyz", ":")
    conditions = {a.info["condition"] for a in candidates}
    assert conditions <= {"s0 300K NVT", "s0 900K NVT"}, conditions
    for atoms in candidates:
        assert not any(atoms.pbc)
        assert np.allclose(atoms.cell[:], cluster.cell[:])
    # SevenNet trained energy and forces only
    for finetune in [*sorted(run.glob("iter_*/finetune")), run / "final" / "finetune"]:
        if not (finetune / "input.yaml").exists():
            continue
        train = yaml.safe_load((finetune / "input.yaml").read_text())["train"]
        assert train["is_train_stress"] is False
        assert train["stress_loss_weight"] == 0.0
        assert ["Stress", "RMSE"] not in train["error_record"]


def test_gpaw_labels_a_molecule_in_a_box(tmp_path: Path):
    """H2 without a cell: GPAW computes it in a box (Γ only), forces sum to ~0."""
    pytest.importorskip("gpaw")
    from pfd.config import LabelerConfig
    from pfd.label import make_labeler

    labeler = make_labeler(
        LabelerConfig(
            code="gpaw",
            parameters={"mode": {"ecut": 250.0}, "convergence": {"energy": 1e-6}},
        )
    )
    h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.80]])  # stretched from 0.75
    result = labeler.calculate(h2, str(tmp_path))
    forces = result.get_forces()
    assert np.allclose(result.positions, h2.positions)
    assert result.cell.rank == 0
    assert "stress" not in result.calc.results
    assert np.abs(forces.sum(axis=0)).max() < 0.02  # eV/Å: a box, no images
    assert forces[1, 2] < -0.3  # pulled back towards 0.75 Å
    assert np.abs(forces[:, :2]).max() < 0.01
    text = (tmp_path / "gpaw.txt").read_text()
    assert "Monkhorst-Pack size: [1, 1, 1]" in text  # the Γ point only
    assert "Datatype:        float64" in text  # real wave functions
    assert "Cutoff: 250.0 eV" in text


# --- distillation and report (a subprocess: ``pfd run``) ----------------------

TINY = {
    "model": {"backend": "pfd.testing:EMTBackend", "checkpoint": "foundation.json"},
    "labeler": {"parameters": {"asap_cutoff": True}},
    "select": {"method": "random"},
    "distill": {
        "enabled": True,
        "steps": 40,
        "sample_every": 2,
        "max_frames": 120,
        "committee": 1,
        "student": {
            "rcut_A": 4.5,
            "embedding": [8, 16],
            "axis_neuron": 4,
            "fitting": [16, 16],
            "steps": 1000,
        },
    },
    "report": {
        "enabled": True,
        "speed": {"enabled": False},
        "vibrations": {"dft": True},  # the EMT labeller stands in for DFT
    },
}


@pytest.fixture(scope="module")
def distilled(tmp_path_factory) -> Path:
    pytest.importorskip("deepmd")
    tmp = tmp_path_factory.mktemp("molecule")
    _cluster(tmp / "cu13.extxyz")
    (tmp / "pfd.yaml").write_text(
        yaml.safe_dump(merge(merge(BASE_CONFIG, MOLECULE), TINY))
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pfd", "run", "pfd.yaml"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "run"


@pytest.mark.slow
def test_student_of_a_molecule_trains_on_nopbc_data(distilled: Path):
    train = sorted((distilled / "distill" / "deepmd" / "train_round_1").iterdir())
    assert train
    assert all((sub / "nopbc").exists() for sub in train)
    assert not any((sub / "set.000" / "virial.npy").exists() for sub in train)
    check = json.loads((distilled / "student" / "check.json").read_text())
    assert check["vs_teacher"]["force_rmse_eV_A"] < 0.5
    assert check["vs_teacher"]["stress_rmse_GPa"] is None
    lammps = (distilled / "student" / "lammps" / "in.lammps").read_text()
    assert "boundary        s s s" in lammps or "boundary s s s" in lammps


@pytest.mark.slow
def test_report_of_a_molecule_has_vibrations_not_crystal_sections(distilled: Path):
    numbers = json.loads((distilled / "report" / "report.json").read_text())
    for crystal_only in ("eos", "phonons", "vacancy", "diffusion"):
        assert crystal_only not in numbers
    errors = numbers["errors"]["dft_run"]
    assert set(errors) == {"foundation", "teacher", "student"}
    assert all(e["stress_rmse_GPa"] is None for e in errors.values())
    vib = numbers["vibrations"]["cu13"]
    assert vib["natoms"] == 13
    assert set(vib["models"]) == {"foundation", "teacher", "student"}
    assert all(len(m["frequencies_cm1"]) == 33 for m in vib["models"].values())
    # the EMT "DFT" (another cutoff than the teacher's EMT) at the teacher's minimum
    assert vib["reference"] == "DFT"
    assert vib["DFT"]["at_geometry_of"] == "teacher"
    assert len(vib["DFT"]["frequencies_cm1"]) == 33
    assert vib["against_reference"]["teacher"]["mean_relative_pct"] < 30
    assert len(list((distilled / "report" / "dft").glob("vib-cu13-*"))) == 6 * 13
    page = (distilled / "report" / "index.html").read_text()
    assert "Vibrations of the molecules" in page
    assert "vibrations_cu13.png" in page
    assert "Equation of state" not in page
