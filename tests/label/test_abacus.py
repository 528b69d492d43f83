"""The ABACUS labeller without ABACUS: the inputs it writes, and a fake ``abacus``.

ABACUS is not installable here (no Debian or PyPI package). The fake is a small
Python script put on PATH: ``abacus --version`` prints ABACUS's banner; a run
reads the STRU that abacuslite wrote (atoms grouped by species, as ABACUS wants
them), computes EMT energy, forces and stress for that structure, and writes
them as ABACUS 3.10 LTS does in ``OUT.<suffix>/running_scf.log``: eV, eV/Å, and
kBar with positive = compressive. So the test checks atom order, units and sign
against EMT run directly on the frame.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.units import GPa

from pfd.config import LabelerConfig
from pfd.errors import LabelError, PFDError
from pfd.label import make_labeler
from pfd.label.abacus import PRESET, AbacusLabeler
from tests.label.conftest import pseudos as _pseudos

pytest.importorskip("abacuslite")
pytest.importorskip("dpdata")


def _labeler(tmp_path: Path, command: str | None = None, **parameters) -> AbacusLabeler:
    pp = _pseudos(
        tmp_path / "sg15",
        [
            "Cu_ONCV_PBE-1.0.upf",
            "Au_ONCV_PBE-1.0.upf",
            "Si_ONCV_PBE-1.2.upf",
            "Si_ONCV_PBEsol-1.2.upf",  # the wrong functional: not picked
        ],
    )
    parameters = {"pseudo_dir": str(pp), **parameters}
    cfg = LabelerConfig(code="abacus", command=command, parameters=parameters)
    labeler = make_labeler(cfg)
    assert isinstance(labeler, AbacusLabeler)
    return labeler


def _input(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    assert lines[0] == "INPUT_PARAMETERS"
    return dict(line.split(None, 1) for line in lines[1:] if line)


def test_inputs_match_the_preset_and_the_kpoint_density(tmp_path: Path):
    labeler = _labeler(tmp_path, ecutwfc=80, kpoints={"density": 2.0})
    si = bulk("Si", "diamond", 5.43)
    labeler.write_input(si, str(tmp_path / "job"))
    inp = _input(tmp_path / "job" / "INPUT")
    assert inp.pop("pseudo_dir") == str((tmp_path / "sg15").resolve())
    assert float(inp.pop("ecutwfc")) == 80.0  # overridden
    assert float(inp.pop("scf_thr")) == pytest.approx(1e-8)
    assert float(inp.pop("smearing_sigma")) == pytest.approx(0.0037)
    assert float(inp.pop("mixing_beta")) == pytest.approx(0.4)
    assert inp == {
        "calculation": "scf",
        "basis_type": "pw",
        "scf_nmax": "100",
        "smearing_method": "gaussian",
        "mixing_type": "broyden",
        "cal_force": "1",
        "cal_stress": "1",
        "out_chg": "0",
        "out_wfc_pw": "0",
        "suffix": "ABACUS",
    }
    kpt = (tmp_path / "job" / "KPT").read_text().split()
    # 2.0 k-points per Å⁻¹: ceil(2π·2.0·|b|), |b| = √3/a for the fcc primitive cell
    assert kpt == ["K_POINTS", "0", "Gamma", "5", "5", "5", "0", "0", "0"]
    stru = (tmp_path / "job" / "STRU").read_text()
    assert "Si_ONCV_PBE-1.2.upf" in stru
    assert "PBEsol" not in stru
    assert labeler.settings() == {
        "code": "abacus",
        "version": "unknown",  # no abacus on PATH to ask
        "binary": "abacus",
        "parameters": {
            **PRESET,
            "pseudo_dir": str(tmp_path / "sg15"),
            "ecutwfc": 80,
        },
    }
    mp = _labeler(tmp_path, kpoints={"density": 1.0, "type": "monkhorst-pack"})
    mp.write_input(si, str(tmp_path / "mp"))
    assert (tmp_path / "mp" / "KPT").read_text().split()[2:6] == ["MP", "3", "3", "3"]


@pytest.mark.parametrize(
    "atoms",
    [
        bulk("Cu", "fcc", 3.6, cubic=True),
        # mixed species: ABACUS groups atoms by species; results come back in order
        Atoms(
            "CuAuCuAu",
            scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
            cell=[3.9, 3.8, 3.85],
            pbc=True,
        ),
    ],
    ids=["Cu4", "CuAuCuAu"],
)
def test_results_are_read_back_in_ase_units_and_order(tmp_path, fake_abacus, atoms):
    atoms = atoms.copy()
    atoms.rattle(0.05, seed=3)
    labeler = _labeler(tmp_path)
    labeler.check(set(atoms.get_chemical_symbols()))
    result = labeler.calculate(atoms, str(tmp_path / "job"))
    reference = atoms.copy()
    reference.calc = EMT()
    assert result.get_potential_energy() == pytest.approx(
        reference.get_potential_energy(), abs=1e-8
    )
    np.testing.assert_allclose(result.get_forces(), reference.get_forces(), atol=1e-8)
    # dpdata's kBar (CODATA) and ASE's differ in the 6th digit
    np.testing.assert_allclose(result.get_stress(), reference.get_stress(), rtol=1e-5)
    np.testing.assert_allclose(result.positions, atoms.positions)
    assert result.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert labeler.settings()["version"] == "3.10.1"  # the fake's banner
    assert len(fake_abacus.read_text().splitlines()) == 1  # ran once


def test_stress_sign_kbar_compressive_to_ase_tensile(tmp_path, fake_abacus):
    """A squeezed cell pushes outwards: ABACUS prints > 0 kBar, ASE has < 0."""
    squeezed = bulk("Cu", "fcc", 3.4, cubic=True)
    result = _labeler(tmp_path).calculate(squeezed, str(tmp_path / "job"))
    log = (tmp_path / "job" / "OUT.ABACUS" / "running_scf.log").read_text()
    kbar_xx = float(log.split("TOTAL-STRESS (KBAR)")[1].split("\n")[2].split()[0])
    assert kbar_xx > 0
    assert result.get_stress()[0] == pytest.approx(-0.1 * GPa * kbar_xx, rel=1e-5)


def test_unconverged_scf_is_a_label_error(tmp_path, fake_abacus, monkeypatch):
    monkeypatch.setenv("FAKE_ABACUS_CONVERGED", "0")
    labeler = _labeler(tmp_path, scf_nmax=12)
    with pytest.raises(LabelError, match="SCF did not converge within scf_nmax=12"):
        labeler.calculate(bulk("Cu", "fcc", 3.6), str(tmp_path / "job"))
    assert _input(tmp_path / "job" / "INPUT")["scf_nmax"] == "12"


def test_failing_abacus_is_a_one_line_label_error(tmp_path, fake_abacus, monkeypatch):
    monkeypatch.setenv("FAKE_ABACUS_EXIT", "3")
    with pytest.raises(
        LabelError, match="exited with 3: NOTICE: pseudopotential"
    ) as err:
        _labeler(tmp_path).calculate(bulk("Cu", "fcc", 3.6), str(tmp_path / "job"))
    assert "\n" not in str(err.value)
    monkeypatch.setenv("FAKE_ABACUS_EXIT", "0")  # ends well, but writes no log
    with pytest.raises(LabelError, match=r"wrote no running_scf\.log"):
        _labeler(tmp_path).calculate(bulk("Cu", "fcc", 3.6), str(tmp_path / "job2"))


def test_check_names_what_is_missing(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("ABACUS_PP_PATH", raising=False)
    with pytest.raises(PFDError, match=r"set labeler.parameters.pseudo_dir"):
        make_labeler(LabelerConfig(code="abacus")).pseudopotentials({"Si"})
    labeler = _labeler(tmp_path, command="no_such_abacus")
    with pytest.raises(
        PFDError, match=r"ABACUS binary 'no_such_abacus' .* not on PATH"
    ):
        labeler.check({"Si"})
    with pytest.raises(
        PFDError, match=r"no PBE UPF file for Fe .* e\.g\. \{Fe: FILE\}"
    ):
        labeler.pseudopotentials({"Si", "Fe"})
    _pseudos(tmp_path / "sg15", ["Si.pbe-n-rrkjus_psl.1.0.0.UPF"])
    with pytest.raises(PFDError, match=r"several \(Si.pbe-n-rrkjus.*\) for Si"):
        labeler.pseudopotentials({"Si"})
    chosen = _labeler(tmp_path, pseudopotentials={"Si": "Si_ONCV_PBE-1.2.upf"})
    assert chosen.pseudopotentials({"Si"}) == {"Si": "Si_ONCV_PBE-1.2.upf"}
    with pytest.raises(PFDError, match=r"needs labeler\.parameters\.orbital_dir"):
        _labeler(tmp_path, basis_type="lcao").basissets({"Si"})
    with pytest.raises(PFDError, match="calculation must be 'scf'"):
        _labeler(tmp_path, calculation="md")


def test_labels_through_the_job_runner(tmp_path, fake_abacus):
    """As the loop runs it: the pickled labeller in a worker process, one job dir."""
    from pfd.label.runner import label_one

    atoms = bulk("Cu", "fcc", 3.6, cubic=True)
    atoms.rattle(0.03, seed=1)
    result = label_one(_labeler(tmp_path), atoms, tmp_path / "jobs" / "f0")
    reference = atoms.copy()
    reference.calc = EMT()
    np.testing.assert_allclose(result.get_forces(), reference.get_forces(), atol=1e-6)
    assert (tmp_path / "jobs" / "f0" / "output.extxyz").exists()


def test_pfd_run_labels_with_abacus(tmp_path, fake_abacus, make_config):
    """One loop iteration as a user runs it; every label records ABACUS's version."""
    import subprocess

    from ase.db import connect

    pp = _pseudos(tmp_path / "sg15", ["Cu_ONCV_PBE-1.0.upf"])
    path = make_config(
        {
            "model": {
                "backend": "pfd.testing:EMTBackend",
                "checkpoint": "foundation.json",
            },
            "labeler": {
                "code": "abacus",
                "parameters": {"pseudo_dir": str(pp), "ecutwfc": 50},
                "workers": 1,
            },
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "pfd", "run", str(path), "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(connect(str(tmp_path / "run" / "pfd.db")).select(status="labelled"))
    assert len(rows) == 3 + 2  # initial frames + one iteration's selection
    settings = rows[0].data["label_settings"]
    assert settings["code"] == "abacus"
    assert settings["version"] == "3.10.1"
    assert settings["parameters"]["ecutwfc"] == 50
    assert len(fake_abacus.read_text().splitlines()) == 5  # each frame once
