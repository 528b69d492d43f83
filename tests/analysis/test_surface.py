"""Surface energy of EMT Cu slabs: sign, size, facet order, units; bad Miller input."""

from __future__ import annotations

import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT

from pfd.analysis.surface import J_M2_PER_EV_A2, surface_area, surface_energies
from pfd.config import load_config
from pfd.config.report import SurfaceReportConfig
from pfd.errors import ConfigError
from tests.conftest import BASE_CONFIG, merge

CU = bulk("Cu", "fcc", 3.6, cubic=True)
SMALL = SurfaceReportConfig(min_atoms=8, max_steps=30)


def test_emt_copper_close_packed_face_is_cheapest_and_about_one_joule():
    (g111,) = surface_energies(EMT(), CU, [(1, 1, 1)], SMALL)
    (g100,) = surface_energies(EMT(), CU, [(1, 0, 0)], SMALL)
    # EMT Cu: ~1.0 J/m² for (111), ~1.1 for (100); DFT/experiment 1.3-1.8
    assert 0.8 < g111.relaxed_eV_A2 * J_M2_PER_EV_A2 < 1.3
    assert g111.relaxed_eV_A2 < g100.relaxed_eV_A2
    for g in (g111, g100):
        assert 0 < g.relaxed_eV_A2 <= g.unrelaxed_eV_A2
        assert g.converged
    numbers = g111.to_dict()
    assert numbers["miller"] == [1, 1, 1]
    assert numbers["relaxed_J_m2"] == pytest.approx(
        16.0218 * g111.relaxed_eV_A2, rel=1e-5
    )


def test_surface_energy_counts_both_faces_of_the_slab():
    (g,) = surface_energies(
        EMT(), CU, [(1, 0, 0)], SMALL.model_copy(update={"max_steps": 0})
    )
    e_slab = EMT().get_potential_energy(g.relaxed)
    e_bulk = EMT().get_potential_energy(CU) / len(CU)
    area = surface_area(g.relaxed)
    assert area == pytest.approx(g.area_A2)
    assert g.unrelaxed_eV_A2 == pytest.approx((e_slab - g.natoms * e_bulk) / (2 * area))
    assert g.relaxed_eV_A2 == g.unrelaxed_eV_A2  # 0 steps: as cut


def test_crystals_only():
    molecule = CU.copy()
    molecule.pbc = False
    assert surface_energies(EMT(), molecule, [(1, 0, 0)], SMALL) == []


@pytest.mark.parametrize("miller", ["100", [[1, 0]], [[0, 0, 0]], [["a", 0, 0]]])
def test_bad_miller_index_is_a_one_line_config_error(tmp_path, miller):
    cfg = merge(BASE_CONFIG, {"report": {"surfaces": {"miller": miller}}})
    (tmp_path / "pfd.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "pfd.yaml")
    message = str(err.value)
    assert "\n" not in message
    assert "report.surfaces.miller" in message
    assert "[1, " in message  # an example of the right form
