"""The Quantum ESPRESSO labeller: real pw.x on 2-atom Si, and its one-line errors."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from pfd.config import LabelerConfig
from pfd.errors import LabelError, PFDError
from pfd.label import make_labeler
from pfd.label.qe import QELabeler
from pfd.label.runner import label_one

DEBIAN_SI = Path("/usr/share/espresso/pseudo/Si.pbe-rrkj.UPF")
needs_pw = pytest.mark.skipif(
    shutil.which("pw.x") is None or not DEBIAN_SI.exists(),
    reason="pw.x or Debian's quantum-espresso-data not installed",
)

#: 15 Ry norm-conserving Si, 3x3x3 Γ-centred grid: about a second per SCF.
FAST = {
    "pseudopotentials": {"Si": DEBIAN_SI.name},
    "ecutwfc": 15.0,
    "ecutrho": 60.0,
    "kpoints": {"density": 1.0},
}


def _labeler(**parameters) -> QELabeler:
    labeler = make_labeler(LabelerConfig(code="qe", parameters=FAST | parameters))
    assert isinstance(labeler, QELabeler)
    return labeler


def _si(a: float = 5.43):
    si = bulk("Si", "diamond", a)
    si.positions[1] += [0.05, -0.03, 0.02]
    return si


@pytest.fixture(scope="module")
def si_result(tmp_path_factory):
    return _labeler().calculate(_si(), str(tmp_path_factory.mktemp("qe")))


def test_parameters_merge_flat_and_nested_keywords():
    labeler = _labeler(conv_thr=1e-9, input_data={"system": {"degauss": 0.02}})
    data = labeler.parameters["input_data"]
    assert data["system"]["ecutwfc"] == 15.0  # flat keyword sorted into &system
    assert data["system"]["degauss"] == 0.02
    assert data["system"]["smearing"] == "mv"  # preset kept
    assert data["electrons"]["conv_thr"] == 1e-9
    assert data["control"]["tstress"] is True
    assert labeler.command == "pw.x"
    with pytest.raises(PFDError, match=r"ecutwfcc is not a pw\.x input keyword"):
        _labeler(ecutwfcc=30)
    with pytest.raises(PFDError, match=r"sytem is not a pw\.x namelist"):
        _labeler(input_data={"sytem": {"ecutwfc": 30}})
    with pytest.raises(PFDError, match="kpoints: unknown key size"):
        _labeler(kpoints={"size": [2, 2, 2]})


def test_command_and_env_stay_out_of_parameters():
    cfg = LabelerConfig(
        code="qe", command="mpirun -n 4 pw.x -nk 2", env={"OMP_NUM_THREADS": "2"}
    )
    labeler = make_labeler(cfg)
    assert labeler.binary == "pw.x"
    assert labeler.env == {"OMP_NUM_THREADS": "2"}
    assert "command" not in str(labeler.settings()["parameters"])
    assert "OMP_NUM_THREADS" not in str(labeler.settings()["parameters"])


def test_pseudopotential_is_found_or_a_one_line_error(tmp_path: Path):
    for name in ("Si.pbe-rrkj.UPF", "Si.pbesol-x.UPF", "Si.pz-vbc.UPF", "S.pbe-a.UPF"):
        (tmp_path / name).write_text("fake")
    labeler = make_labeler(
        LabelerConfig(code="qe", parameters={"pseudo_dir": str(tmp_path)})
    )
    assert labeler.pseudopotentials({"Si", "S"}) == {
        "Si": "Si.pbe-rrkj.UPF",
        "S": "S.pbe-a.UPF",
    }
    with pytest.raises(PFDError, match="no PBE pseudopotential for Cl, Li in") as err:
        labeler.pseudopotentials({"Si", "Li", "Cl"})
    assert "\n" not in str(err.value)
    (tmp_path / "si_pbe_v1.uspp.F.UPF").write_text("fake")
    with pytest.raises(
        PFDError, match=r"several PBE .* Si \(Si.pbe-rrkj.UPF, si_pbe_v1.uspp.F.UPF\)"
    ):
        labeler.pseudopotentials({"Si"})
    chosen = make_labeler(
        LabelerConfig(
            code="qe",
            parameters={
                "pseudo_dir": str(tmp_path),
                "pseudopotentials": {"Si": "si_pbe_v1.uspp.F.UPF"},
            },
        )
    )
    assert chosen.pseudopotentials({"Si"}) == {"Si": "si_pbe_v1.uspp.F.UPF"}
    wrong = make_labeler(
        LabelerConfig(
            code="qe",
            parameters={"pseudo_dir": str(tmp_path), "pseudopotentials": {"Si": "x"}},
        )
    )
    with pytest.raises(PFDError, match="pseudopotential x for Si is not in"):
        wrong.pseudopotentials({"Si"})


def test_missing_binary_is_a_one_line_error():
    labeler = make_labeler(LabelerConfig(code="qe", command="no-such-pw.x"))
    message = r"binary 'no-such-pw\.x'.* is not on PATH"
    with pytest.raises(PFDError, match=message) as err:
        labeler.check({"Si"})
    assert "\n" not in str(err.value)
    assert labeler.settings()["version"] == "unknown"


@needs_pw
def test_settings_hold_code_version_and_parameters():
    labeler = _labeler()
    labeler.check({"Si"})
    settings = labeler.settings()
    assert settings["code"] == "qe"
    assert settings["version"][0].isdigit()  # e.g. 6.7MaX, from pw.x's banner
    assert Path(settings["binary"]).name == "pw.x"
    assert settings["parameters"]["input_data"]["system"]["ecutwfc"] == 15.0


@needs_pw
def test_forces_are_real_and_the_energy_is_the_free_energy(si_result):
    """Forces and stress against finite differences: tests/label/test_contract.py."""
    forces = si_result.get_forces()
    assert np.abs(forces[1]).max() > 0.2  # a real force, not zero by symmetry
    assert np.abs(forces[0] + forces[1]).max() < 1e-3
    assert si_result.calc.results["free_energy"] == si_result.get_potential_energy()


@needs_pw
def test_stress_sign_follows_ase(tmp_path: Path):
    labeler = _labeler()
    squeezed = labeler.calculate(bulk("Si", "diamond", 5.1), str(tmp_path))
    stretched = labeler.calculate(bulk("Si", "diamond", 5.8), str(tmp_path))
    # ASE: a compressed cell pushes outwards, negative diagonal stress
    assert (squeezed.get_stress()[:3] < -0.01).all()  # eV/Å³ (1.6 GPa)
    assert (stretched.get_stress()[:3] > 0.01).all()


@needs_pw
def test_scf_not_converged_is_a_label_error(tmp_path: Path):
    labeler = _labeler(electron_maxstep=1)
    with pytest.raises(LabelError, match="QE SCF did not converge in 1 iterations"):
        labeler.calculate(_si(), str(tmp_path))


@needs_pw
def test_label_one_runs_pw_in_a_worker_with_command_and_env(si_result, tmp_path: Path):
    # a pw.x on the job's PATH that records its environment, then runs the real one
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "pw.x"
    wrapper.write_text(
        '#!/bin/sh\necho "$PFD_MARK $OMP_NUM_THREADS" > mark.txt\n'
        f'exec {shutil.which("pw.x")} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PFD_MARK": "from-config"}
    labeler = make_labeler(LabelerConfig(code="qe", parameters=FAST, env=env))
    assert labeler.settings()["binary"] == str(wrapper)
    jobdir = tmp_path / "job"
    result = label_one(labeler, _si(), jobdir)
    assert (jobdir / "mark.txt").read_text().split() == ["from-config", "1"]
    assert (jobdir / "espresso.pwo").exists()
    assert result.get_potential_energy() == pytest.approx(
        si_result.get_potential_energy(), abs=1e-5
    )
    assert np.allclose(result.get_forces(), si_result.get_forces(), atol=1e-4)
    assert np.allclose(result.get_stress(), si_result.get_stress(), atol=1e-5)
