"""Every registered labeller passes one contract (pfd.testing.check_labeller_contract).

Parametrised over :data:`pfd.registry.LABELERS`: a new labeller is picked up
by its registry line and runs with its defaults on a 2-atom Cu cell (EMT's
elements). A case below gives a real code settings that make it fast, what it
needs installed, or a stand-in binary; a code that is missing is skipped with
the reason. Forces and stress are checked against finite differences of the
labeller's own energy, so unit, sign and order errors cannot pass.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ase import Atoms
from ase.build import bulk

from pfd.config import LabelerConfig
from pfd.errors import PFDError
from pfd.label import make_labeler
from pfd.registry import LABELERS
from pfd.testing import EMTLabeler, check_labeller_contract
from tests.label.conftest import pseudos

QE_SI = Path("/usr/share/espresso/pseudo/Si.pbe-rrkj.UPF")
CP2K_DATA = Path("/usr/share/cp2k/BASIS_MOLOPT")
CP2K_FAST = {
    "mgrid": {"cutoff": 60, "rel_cutoff": 15},
    "qs": {"eps_default": 1e-8},
    "scf": {"eps_scf": 1e-6},
}


def cu2() -> Atoms:
    """Two fcc Cu cells, squeezed 5 %, the second atom moved off its site."""
    cu = bulk("Cu", "fcc", 3.42).repeat((2, 1, 1))
    cu.positions[1] += [0.08, -0.05, 0.04]
    return cu


def si2() -> Atoms:
    """Diamond Si squeezed 2.4 %, away from a k-point density's grid-size step."""
    si = bulk("Si", "diamond", 5.3)
    si.positions[1] += [0.05, -0.03, 0.02]
    return si


@dataclass(frozen=True)
class Case:
    """What a labeller's contract run needs beyond its registry line."""

    atoms: Callable[[], Atoms] = cu2
    parameters: dict[str, Any] = field(default_factory=dict)
    calculator: str | None = None  # for code 'ase'
    packages: tuple[str, ...] = ()
    binaries: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()
    env: tuple[str, ...] = ()  # environment variables it needs
    stand_in: str | None = None  # a fixture that puts a fake binary on PATH
    tolerances: dict[str, float] = field(default_factory=dict)
    slow: bool = False  # over ~20 s: run with pytest -m slow


CASES: dict[str, Case] = {
    "ase": Case(calculator="ase.calculators.emt:EMT"),
    "gpaw": Case(
        si2,
        {
            "mode": {"ecut": 200.0},
            "kpts": {"density": 1.0},
            "convergence": {"energy": 1e-7},
        },
        packages=("gpaw",),
        # the Pulay stress of a fixed 200 eV cutoff is ~2 % of -0.12 eV/Å³ here;
        # a GPa/kBar or sign error is still far outside
        tolerances={"stress_atol": 4e-3},
        slow=True,  # five SCFs of ~10 s
    ),
    # 30 Ry: the Pulay stress of a fixed cutoff is < 0.5 % here (15 Ry: 8 %)
    "qe": Case(
        si2,
        {
            "pseudopotentials": {"Si": QE_SI.name},
            "ecutwfc": 30.0,
            "ecutrho": 120.0,
            "kpoints": {"density": 1.0},
        },
        binaries=("pw.x",),
        files=(QE_SI,),
    ),
    # GPW forces and stress are derivatives of the GPW energy at any cutoff
    "cp2k": Case(
        si2,
        {"kpoints": {"density": 0.6}, "input": {"force_eval": {"dft": CP2K_FAST}}},
        binaries=("cp2k.psmp",),
        files=(CP2K_DATA,),
        # the real-space grid breaks translation symmetry a little (egg box, 60 Ry)
        tolerances={"force_atol": 0.02},
    ),
    "vasp": Case(si2, binaries=("vasp_std",), env=("VASP_PP_PATH",)),
    "abacus": Case(packages=("abacuslite", "dpdata"), stand_in="fake_abacus"),
}


def _missing(case: Case) -> str | None:
    for package in case.packages:
        if importlib.util.find_spec(package) is None:
            return f"package {package} not installed"
    for binary in case.binaries:
        if shutil.which(binary) is None:
            return f"{binary} not on PATH"
    for path in case.files:
        if not path.exists():
            return f"{path} not found"
    for name in case.env:
        if name not in os.environ:
            return f"{name} not set"
    return None


def _param(code: str):
    slow = CASES.get(code, Case()).slow
    return pytest.param(code, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("code", [_param(code) for code in sorted(LABELERS)])
def test_registered_labeller_passes_the_contract(code, request, tmp_path: Path):
    case = CASES.get(code, Case())
    parameters = dict(case.parameters)
    if case.stand_in:
        request.getfixturevalue(case.stand_in)
        folder = pseudos(tmp_path / "pp", ["Cu_ONCV_PBE-1.0.upf"])
        parameters["pseudo_dir"] = str(folder)
    elif reason := _missing(case):
        pytest.skip(f"labeller '{code}': {reason}")
    cfg = LabelerConfig(code=code, calculator=case.calculator, parameters=parameters)
    labeller = make_labeler(cfg)
    checked = check_labeller_contract(
        labeller, case.atoms(), tmp_path / "job", **case.tolerances
    )
    assert set(checked) == {"result", "force", "stress"}


def test_a_labeller_given_as_module_class(tmp_path: Path):
    """labeler.code 'module:Class': the README's EMT labeller, no registry line."""
    cfg = LabelerConfig(code="pfd.testing:EMTLabeler", parameters={"asap_cutoff": True})
    labeller = make_labeler(cfg)
    assert isinstance(labeller, EMTLabeler)
    assert labeller.asap_cutoff
    checked = check_labeller_contract(labeller, cu2(), tmp_path)
    assert abs(checked["force"][0]) > 0.05  # eV/Å: a real force was compared
    with pytest.raises(PFDError, match=r"labeler\.parameters do not fit"):
        make_labeler(LabelerConfig(code="pfd.testing:EMTLabeler", parameters={"x": 1}))
    with pytest.raises(PFDError, match=r"cannot load labeler code 'pfd\.testing:Nope'"):
        make_labeler(LabelerConfig(code="pfd.testing:Nope"))


def test_a_labeller_with_wrong_forces_fails_the_contract(tmp_path: Path):
    """The contract can fail: forces in Ry/Bohr where eV/Å are due."""

    class RyBohrForces(EMTLabeler):
        def calculate(self, atoms, workdir):
            result = super().calculate(atoms, workdir)
            result.calc.results["forces"] /= 25.71
            return result

    with pytest.raises(AssertionError, match="force along the shift"):
        check_labeller_contract(RyBohrForces(), cu2(), tmp_path)
