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
#: a strain direction (Voigt, engineering shear) touching every component
STRAIN = np.array([1.0, 0.5, 0.25, 0.6, -0.6, 0.3])


def _labeler(parameters=FAST, **kwargs) -> CP2KLabeler:
    labeler = make_labeler(LabelerConfig(code="cp2k", parameters=parameters, **kwargs))
    assert isinstance(labeler, CP2KLabeler)
    return labeler


def _si():
    si = bulk("Si", "diamond", 5.43)
    si.positions[1] += [0.05, -0.03, 0.02]
    return si


def _strained(atoms, voigt):
    xx, yy, zz, yz, xz, xy = voigt
    strain = np.array(
        [[xx, xy / 2, xz / 2], [xy / 2, yy, yz / 2], [xz / 2, yz / 2, zz]]
    )
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return out


def _assert_forces_match_fd(labeler, atoms, result, workdir: Path, atol: float):
    forces = result.get_forces()
    assert abs(forces[1, 0]) > 0.1  # a real force, not zero by symmetry
    h = 0.01
    energies = []
    for sign in (1, -1):
        shifted = atoms.copy()
        shifted.positions[1, 0] += sign * h
        done = labeler.calculate(shifted, str(workdir))
        energies.append(done.get_potential_energy(force_consistent=True))
    fd = -(energies[0] - energies[1]) / (2 * h)
    # a unit error (Hartree/Bohr: x51.4) or a sign error is far outside atol
    assert forces[1, 0] == pytest.approx(fd, abs=atol)


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
def test_si_with_kpoints_forces_and_stress_match_finite_differences(tmp_path: Path):
    labeler = _labeler()
    si = _si()
    result = labeler.calculate(si, str(tmp_path))
    assert (tmp_path / "cp2k.inp").exists()
    assert not list(tmp_path.glob("*RESTART*"))  # no MB-sized restart files
    assert result.calc.results["free_energy"] == result.get_potential_energy()
    # the real-space grid breaks translation symmetry a little (egg box, 60 Ry)
    assert np.abs(result.get_forces().sum(axis=0)).max() < 0.03
    _assert_forces_match_fd(labeler, si, result, tmp_path, atol=0.01)
    # stress against d(energy)/d(strain) / volume along a strain touching all six
    # components: sign, unit (GPa) and Voigt order of CP2K's tensor with k-points
    t = 0.004
    plus, minus = (
        labeler.calculate(_strained(si, s * t * STRAIN), str(tmp_path)) for s in (1, -1)
    )
    fd = (plus.get_potential_energy() - minus.get_potential_energy()) / (2 * t)
    fd /= si.get_volume()
    analytic = result.get_stress() @ STRAIN  # about -0.07 eV/Å³
    assert analytic == pytest.approx(fd, abs=2e-3)


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
    result = labeler.calculate(licl, str(tmp_path))
    assert "BASIS_SET DZVP-MOLOPT-SR-GTH-q3" in (tmp_path / "cp2k.inp").read_text()
    assert "POTENTIAL GTH-PBE-q7" in (tmp_path / "cp2k.inp").read_text()
    # no momentum check: Cl's hard pseudopotential on a 60 Ry grid breaks
    # translation symmetry by ~0.2 eV/Å (300 Ry: 0.002), yet forces stay the
    # derivatives of the grid's energy
    _assert_forces_match_fd(labeler, licl, result, tmp_path, atol=0.02)


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
