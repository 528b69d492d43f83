"""The CP2K labeller: real cp2k on 2-atom Si and LiCl, and its one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from pfd.config import LabelerConfig, deep_merge
from pfd.errors import LabelError, PFDError
from pfd.label import make_labeler
from pfd.label.cp2k import CP2KLabeler
from pfd.testing import check_labeller_contract

DATA = Path("/usr/share/cp2k")
needs_data = pytest.mark.skipif(
    not (DATA / "BASIS_MOLOPT").exists(), reason="Debian's cp2k-data not installed"
)
needs_cp2k = pytest.mark.skipif(
    shutil.which("cp2k.psmp") is None or not (DATA / "BASIS_MOLOPT").exists(),
    reason="cp2k.psmp or Debian's cp2k-data not installed",
)

#: Low cutoff and looser screening: a few seconds per SCF of a 2-atom cell. GPW
#: forces and stress are derivatives of the GPW energy at any cutoff (checked).
FAST = {
    "kpoints": {"density": 0.6},  # 2x2x2 for Si and LiCl at every cell used here
    "input": {
        "force_eval": {
            "dft": {
                "mgrid": {"cutoff": 60, "rel_cutoff": 15},
                "qs": {"eps_default": 1e-8},
                "scf": {"eps_scf": 1e-6},
            }
        }
    },
}
GAMMA = deep_merge(FAST, {"kpoints": {"density": 0.0}})


def _labeler(parameters=FAST, **kwargs) -> CP2KLabeler:
    labeler = make_labeler(LabelerConfig(code="cp2k", parameters=parameters, **kwargs))
    assert isinstance(labeler, CP2KLabeler)
    return labeler


def _si():
    si = bulk("Si", "diamond", 5.43)
    si.positions[1] += [0.05, -0.03, 0.02]
    return si


@needs_data
def test_parameters_merge_and_input_text():
    labeler = _labeler()
    cutoffs = labeler.parameters["input"]["FORCE_EVAL"]["DFT"]["MGRID"]
    assert cutoffs == {"CUTOFF": 60, "REL_CUTOFF": 15}  # lower-case keys merged
    scf = labeler.parameters["input"]["FORCE_EVAL"]["DFT"]["SCF"]
    assert scf["SMEAR"]["METHOD"] == "FERMI_DIRAC"  # preset kept
    assert scf["EPS_SCF"] == 1e-6
    text = labeler.input_text(_si())
    assert "SCHEME MACDONALD 2 2 2 0.2500000000 0.2500000000 0.2500000000" in text
    assert "BASIS_SET DZVP-MOLOPT-SR-GTH-q4" in text
    assert "POTENTIAL GTH-PBE-q4" in text
    assert "STRESS_TENSOR ANALYTICAL" in text
    assert "&XC_FUNCTIONAL PBE" in text
    assert "KPOINTS" not in _labeler(GAMMA).input_text(_si())  # Γ-point code
    mp = _labeler(deep_merge(FAST, {"kpoints": {"type": "monkhorst-pack"}}))
    assert "SCHEME MACDONALD 2 2 2 0.0000000000" in mp.input_text(_si())
    with pytest.raises(PFDError, match="unknown key cutoff for cp2k"):
        _labeler({"cutoff": 400})
    with pytest.raises(PFDError, match=r"kpoints\.type 'mp' is not one of"):
        _labeler({"kpoints": {"type": "mp"}})


def test_command_and_env_stay_out_of_parameters():
    labeler = _labeler(command="mpirun -n 4 cp2k.psmp", env={"OMP_NUM_THREADS": "2"})
    assert labeler.binary == "cp2k.psmp"
    assert labeler.env == {"OMP_NUM_THREADS": "2"}
    assert "mpirun" not in str(labeler.settings()["parameters"])


def test_missing_basis_or_potential_is_a_one_line_error(tmp_path: Path):
    (tmp_path / "BASIS").write_text(
        "# test basis\nSi DZVP-MOLOPT-SR-GTH DZVP-MOLOPT-SR-GTH-q4\n 1\n 2 0 1 1 1 1\n"
        " 1.0 0.5 0.5\nLi SZV-MOLOPT-SR-GTH SZV-MOLOPT-SR-GTH-q3\n 1\n"
    )
    (tmp_path / "POT").write_text(
        "Si GTH-PBE-q4 GTH-PBE\n    2    2\n 0.44 1 -6.26\nLi GTH-PADE-q3 GTH-PADE\n"
    )
    files = {"data_dir": str(tmp_path), "basis_set_file": "BASIS"}
    labeler = _labeler(files | {"potential_file": "POT"})
    assert labeler.kinds({"Si"}) == {"Si": ("DZVP-MOLOPT-SR-GTH-q4", "GTH-PBE-q4")}
    message = r"basis set DZVP-MOLOPT-SR-GTH for Li is not in .*SZV-MOLOPT-SR-GTH\)"
    with pytest.raises(PFDError, match=message) as err:
        labeler.kinds({"Si", "Li"})
    assert "\n" not in str(err.value)
    szv = _labeler(
        files | {"potential_file": "POT", "basis_sets": {"Li": "SZV-MOLOPT-SR-GTH"}}
    )
    with pytest.raises(PFDError, match=r"pseudopotential GTH-PBE for Li .*GTH-PADE-q3"):
        szv.kinds({"Li"})
    with pytest.raises(PFDError, match=r"potential file .*nothing not found"):
        _labeler(files | {"potential_file": "nothing"}).kinds({"Si"})
    with pytest.raises(PFDError, match="basis set DZVP-MOLOPT-SR-GTH for Xe"):
        _labeler(files | {"potential_file": "POT"}).kinds({"Xe"})


def test_missing_binary_is_a_one_line_error():
    labeler = _labeler(command="no-such-cp2k.psmp")
    with pytest.raises(PFDError, match=r"'no-such-cp2k\.psmp'.* is not on PATH") as err:
        labeler.check({"Si"})
    assert "\n" not in str(err.value)
    assert labeler.settings()["version"] == "unknown"


@needs_cp2k
def test_settings_hold_code_version_and_parameters():
    labeler = _labeler()
    labeler.check({"Si", "Li", "Cl"})
    settings = labeler.settings()
    assert settings["code"] == "cp2k"
    assert settings["version"][:4].isdigit()  # e.g. 2023.1, from cp2k --version
    assert Path(settings["binary"]).name.startswith("cp2k")
    assert settings["parameters"]["basis_set"] == "DZVP-MOLOPT-SR-GTH"


@needs_cp2k
def test_si_with_kpoints_writes_its_input_and_no_restart_files(tmp_path: Path):
    """Forces and stress of Si against finite differences: test_contract.py."""
    result = _labeler().calculate(_si(), str(tmp_path))
    assert (tmp_path / "cp2k.inp").exists()
    assert not list(tmp_path.glob("*RESTART*"))  # no MB-sized restart files
    assert result.calc.results["free_energy"] == result.get_potential_energy()
    assert np.abs(result.get_forces()[1]).max() > 0.1  # a real force
    # the real-space grid breaks translation symmetry a little (egg box, 60 Ry)
    assert np.abs(result.get_forces().sum(axis=0)).max() < 0.03


@needs_cp2k
def test_si_stress_sign_follows_ase(tmp_path: Path):
    labeler = _labeler()
    squeezed = labeler.calculate(bulk("Si", "diamond", 5.0), str(tmp_path))
    stretched = labeler.calculate(bulk("Si", "diamond", 6.0), str(tmp_path))
    # ASE: a compressed cell pushes outwards, negative diagonal stress
    assert (squeezed.get_stress()[:3] < -0.1).all()  # eV/Å³ (16 GPa)
    assert (stretched.get_stress()[:3] > 0.02).all()


@needs_cp2k
def test_licl_forces_match_finite_differences(tmp_path: Path):
    labeler = _labeler(GAMMA)  # k-points: the Si tests
    licl = bulk("LiCl", "rocksalt", 4.7)
    licl.positions[1] += [0.15, -0.1, 0.05]
    # no momentum check: Cl's hard pseudopotential on a 60 Ry grid breaks
    # translation symmetry by ~0.2 eV/Å (300 Ry: 0.002), yet forces stay the
    # derivatives of the grid's energy (the stress: the Si contract)
    check_labeller_contract(labeler, licl, tmp_path, force_atol=0.02, stress=False)
    assert "BASIS_SET DZVP-MOLOPT-SR-GTH-q3" in (tmp_path / "cp2k.inp").read_text()
    assert "POTENTIAL GTH-PBE-q7" in (tmp_path / "cp2k.inp").read_text()


@needs_cp2k
def test_scf_not_converged_or_bad_input_is_a_label_error(tmp_path: Path):
    one_step = {
        "basis_set": "SZV-MOLOPT-SR-GTH",
        "input": {"FORCE_EVAL": {"DFT": {"SCF": {"MAX_SCF": 1}}}},
    }
    labeler = _labeler(deep_merge(GAMMA, one_step))
    with pytest.raises(LabelError, match="CP2K SCF did not converge in 1 steps"):
        labeler.calculate(_si(), str(tmp_path))
    typo = {"input": {"FORCE_EVAL": {"DFT": {"SCF": {"BOGUS": 1}}}}}
    bad = _labeler(deep_merge(GAMMA, typo))
    message = r"CP2K stopped: found an unknown keyword BOGUS in section SCF$"
    with pytest.raises(LabelError, match=message):
        bad.calculate(_si(), str(tmp_path))
