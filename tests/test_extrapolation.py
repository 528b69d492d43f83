"""The report's committee deviation along each analysis (EMT stand-ins)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from pfd.config import ReportConfig
from pfd.report.extrapolation import extrapolation_section, visited
from pfd.report.models import Model
from pfd.students.committee import Committee

CU = bulk("Cu", "fcc", 3.6, cubic=True)


class _Unsure(Calculator):
    """EMT, plus a force on atom 0 that grows with the lattice's volume strain: a
    member that agrees with EMT at the input lattice and not away from it."""

    implemented_properties = ("energy", "forces")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        ref = self.atoms.copy()
        ref.calc = EMT()
        forces = ref.get_forces()
        cubes = round(len(ref) / 4)  # conventional cells (a vacancy: one atom less)
        strain = abs(ref.get_volume() / cubes / CU.get_volume() - 1)
        forces[0, 0] += 10.0 * strain  # eV/Å: 0.8 at ±8 % volume
        self.results = {"energy": ref.get_potential_energy(), "forces": forces}


def test_deviation_flags_the_analyses_that_leave_the_data(tmp_path: Path):
    cu = CU.copy()
    cu.info["name"] = "cu"
    settings = ReportConfig.model_validate(
        {
            "eos": {"points": 5, "volume_range": 0.08},
            "phonons": {"supercell": [1, 1, 1]},
            "vacancy": {"min_atoms": 8, "max_steps": 5},
        }
    )
    student = Model("student", tmp_path / "student.pb", EMT)
    geometries = visited(student, [cu], [], {}, settings, [300.0])
    assert set(geometries) == {
        "EOS: cu",
        "phonons: cu",
        "vacancy: cu (student-relaxed)",
        "diffusion: student MD 300 K",
    }
    committee = Committee([EMT(), _Unsure()], threshold_eV_A=0.1, threshold_from="test")
    found = extrapolation_section(committee, geometries)["analyses"]
    eos = np.array(found["EOS: cu"]["per_geometry_eV_A"])
    assert len(eos) == 5
    # the ends of the E(V) curve are outside the data, its middle is not
    assert eos[0] > 0.1
    assert eos[-1] > 0.1
    assert eos[2] == pytest.approx(0.0, abs=1e-6)
    assert found["EOS: cu"]["n_flagged"] == 4  # ±4 % and ±8 % of the volume
    # a phonon displacement and a relaxed vacancy keep the input's density
    assert found["phonons: cu"]["n_flagged"] == 0
    assert found["vacancy: cu (student-relaxed)"]["max_eV_A"] < 0.1
    assert found["diffusion: student MD 300 K"]["n_frames"] > 5


def test_page_says_when_the_committee_ranks_errors_weakly(tmp_path: Path):
    from types import SimpleNamespace

    from pfd.report.page import render

    weak = {"n_frames": 150, "spearman": 0.31, "top_share": 0.2, "top_n": 30,
            "top_shared": 7, "weak": True}  # fmt: skip
    committee = Committee([EMT(), _Unsure()], 0.1, "test", ranking=weak)
    section = extrapolation_section(committee, {"EOS: cu": [CU.copy()]})
    numbers = {"models": {}, "learning_curve": {"rows": []}, "extrapolation": section,
               "seconds": {}, "reused": []}  # fmt: skip
    page = render(numbers, SimpleNamespace(name="cu"), tmp_path)
    assert "Spearman 0.31" in page
    assert "7/30 are in the top 20 %" in page
    assert "A weak ranking" in page
    section["ranking"] = weak | {"spearman": 0.8, "top_shared": 20, "weak": False}
    assert "A weak ranking" not in render(numbers, SimpleNamespace(name="cu"), tmp_path)
