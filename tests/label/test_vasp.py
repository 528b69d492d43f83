"""The VASP labeller without VASP: the inputs it writes, and a fake ``vasp_std``.

The fake is a small Python script put on PATH: it reads POSCAR (VASP's atom
order, sorted by ASE) and writes a minimal vasprun.xml and OUTCAR with known
energy, forces (given in the input order, written in VASP's order) and stress
(kBar, VASP's sign), converged or not as the test asks.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.units import GPa

from pfd.config import LabelerConfig
from pfd.errors import LabelError, PFDError
from pfd.label import make_labeler
from pfd.label.vasp import PRESET, VaspLabeler

POTCAR = """  PAW_PBE {symbol} 05Jan2001
 4.00000000000000000
 parameters from PSCTR are:
   VRHFIN ={symbol}: s2p2
   TITEL  = PAW_PBE {symbol} 05Jan2001
   POMASS =   28.085; ZVAL   =    4.000    mass and valenz
   ENMAX  =  245.345; ENMIN  =  184.009 eV
 End of Dataset
"""

FAKE_VASP = r'''#!{python}
"""Fake VASP: known results from $FAKE_VASP_SPEC as vasprun.xml and OUTCAR."""
import json, os
from ase.io import read

print(" vasp.6.4.2 20Jul23 (build Jan 01 2024) complex", flush=True)
spec = json.load(open(os.environ["FAKE_VASP_SPEC"]))
atoms = read("POSCAR", format="vasp")
with open(os.environ["FAKE_VASP_SPEC"] + ".runs", "a") as log:
    log.write(os.getcwd() + "\n")
sort = [int(line.split()[0]) for line in open("ase-sort.dat")]
forces = [spec["forces"][i] for i in sort]  # input order -> VASP's order
nelm = 100
for line in open("INCAR"):
    if line.split("=")[0].strip() == "NELM":
        nelm = int(line.split("=")[1])
nscf = 7 if spec["converged"] else nelm

def vec(rows):
    return "".join(f"<v>{{' '.join(f'{{x:.10f}}' for x in r)}}</v>\n" for r in rows)

def energy(e, f):
    return (f'<energy><i name="e_fr_energy">{{f:.8f}}</i>'
            f'<i name="e_wo_entrp">{{e:.8f}}</i><i name="e_0_energy">{{e:.8f}}</i>'
            '</energy>\n')

e, ef = spec["energy"], spec["free_energy"]
structure = ('<crystal><varray name="basis">' + vec(atoms.cell[:]) + '</varray>'
             '</crystal><varray name="positions">'
             + vec(atoms.get_scaled_positions()) + '</varray>')
symbols = atoms.get_chemical_symbols()
atominfo = "".join(f"<rc><c>{{s}}</c><c>1</c></rc>" for s in symbols)
scsteps = "".join(f"<scstep>{{energy(e + 0.1 / (i + 1), ef + 0.1 / (i + 1))}}</scstep>"
                  for i in range(nscf - 1)) + f"<scstep>{{energy(e, ef)}}</scstep>"
with open("vasprun.xml", "w") as fd:
    fd.write(f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<modeling>
<generator><i name="program" type="string">vasp </i>
<i name="version" type="string">{{spec['version']}} </i></generator>
<kpoints><varray name="kpointlist"><v>0 0 0</v></varray>
<varray name="weights"><v>1.0</v></varray></kpoints>
<parameters><separator name="electronic">
<i type="int" name="NELM">{{nelm}}</i></separator></parameters>
<atominfo><atoms>{{len(atoms)}}</atoms>
<array name="atoms"><set>{{atominfo}}</set></array></atominfo>
<structure name="initialpos">{{structure}}</structure>
<calculation>{{scsteps}}
<structure>{{structure}}</structure>
<varray name="forces">{{vec(forces)}}</varray>
<varray name="stress">{{vec(spec["stress_kbar"])}}</varray>
{{energy(e, ef)}}</calculation>
</modeling>
""")
with open("OUTCAR", "w") as fd:
    fd.write(f" vasp.{{spec['version']}} 20Jul23 (build Jan 01 2024) complex\n")
    fd.write("   EDIFF  = 0.1E-05   stopping-criterion for ELM\n")
    if spec["converged"]:
        fd.write("------- aborting loop because EDIFF is reached -------\n")
    else:
        fd.write("------- aborting loop EDIFF was not reached (unconverged) -------\n")
print("fake VASP done")
'''


def _potcars(root: Path, symbols: list[str]) -> Path:
    for symbol in symbols:
        folder = root / "potpaw_PBE" / symbol
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "POTCAR").write_text(POTCAR.format(symbol=symbol))
    return root


def _incar(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines())
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.fixture
def fake_vasp(tmp_path: Path, monkeypatch) -> Path:
    """A fake ``vasp_std`` on PATH; returns its spec file (write results there)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "vasp_std"
    exe.write_text(FAKE_VASP.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "spec.json"


def _labeler(tmp_path: Path, spec: Path, **parameters) -> VaspLabeler:
    pp = _potcars(tmp_path / "pp", ["Si", "C"])
    cfg = LabelerConfig(
        code="vasp",
        parameters=parameters,
        env={"VASP_PP_PATH": str(pp), "FAKE_VASP_SPEC": str(spec)},
    )
    labeler = make_labeler(cfg)
    assert isinstance(labeler, VaspLabeler)
    return labeler


def test_inputs_match_the_preset_and_the_kpoint_density(tmp_path: Path):
    labeler = _labeler(tmp_path, tmp_path / "unused.json", encut=600)
    assert labeler.command == "vasp_std"
    si = bulk("Si", "diamond", 5.43)
    labeler.write_input(si, str(tmp_path / "job"))
    incar = _incar(tmp_path / "job" / "INCAR")
    assert float(incar.pop("ENCUT")) == 600.0  # overridden
    assert float(incar.pop("EDIFF")) == pytest.approx(1e-6)
    assert float(incar.pop("SIGMA")) == pytest.approx(0.05)
    assert incar == {
        "GGA": "PE",  # PBE
        "PREC": "Accurate",
        "ISMEAR": "0",
        "IBRION": "-1",
        "NSW": "0",
        "ISIF": "2",
        "NELM": "100",
        "LWAVE": ".FALSE.",
        "LCHARG": ".FALSE.",
    }
    kpoints = (tmp_path / "job" / "KPOINTS").read_text().splitlines()
    assert kpoints[1:3] == ["0", "Gamma"]
    grid = [int(n) for n in kpoints[3].split()]
    # 2.0 k-points per Å⁻¹: ceil(2π·2.0·|b|), |b| = √3/a for the fcc primitive cell
    b = np.linalg.norm(np.linalg.inv(si.cell[:]).T, axis=1)
    assert grid == [int(np.ceil(2 * np.pi * 2.0 * x)) for x in b] == [5, 5, 5]
    poscar = (tmp_path / "job" / "POSCAR").read_text().splitlines()
    assert poscar[5].split() == ["Si"]
    assert poscar[6].split() == ["2"]
    np.testing.assert_allclose(
        [[float(x) for x in line.split()] for line in poscar[2:5]], si.cell[:]
    )
    potcar = (tmp_path / "job" / "POTCAR").read_text()
    assert potcar.startswith("  PAW_PBE Si")
    assert labeler.settings() == {
        "code": "vasp",
        "version": "unknown",  # no vasp_std on PATH to ask
        "binary": "vasp_std",
        "parameters": PRESET | {"encut": 600},
    }
    # the other grid type, and a lower density: ceil(2π·1.0·√3/5.43) = 3
    mp = _labeler(tmp_path, tmp_path / "unused.json", kpoints={"density": 1.0})
    assert mp.parameters["kpoints"] == {"density": 1.0, "type": "gamma"}
    mp = _labeler(
        tmp_path,
        tmp_path / "unused.json",
        kpoints={"density": 1.0, "type": "monkhorst-pack"},
    )
    mp.write_input(si, str(tmp_path / "mp"))
    lines = (tmp_path / "mp" / "KPOINTS").read_text().splitlines()
    assert lines[2:4] == ["Monkhorst-Pack", "3 3 3"]


@pytest.mark.parametrize(
    "atoms",
    [
        bulk("Si", "diamond", 5.43),
        # mixed species: ASE sorts the atoms for VASP and must sort forces back
        Atoms(
            "SiCSi", [[0, 0, 0], [1.9, 0, 0.1], [0, 2.0, 0.3]], cell=[5, 5, 5], pbc=True
        ),
    ],
    ids=["Si2", "SiCSi"],
)
def test_results_are_read_back_in_ase_units(tmp_path, fake_vasp, atoms):
    n = len(atoms)
    forces = np.arange(3 * n, dtype=float).reshape(n, 3) / 10 - 0.3
    stress_kbar = [[-12.0, 1.5, -2.0], [1.5, 8.0, 3.0], [-2.0, 3.0, 20.0]]
    spec = {
        "energy": -10.8123,
        "free_energy": -10.8150,
        "forces": forces.tolist(),
        "stress_kbar": stress_kbar,
        "converged": True,
        "version": "6.4.2",
    }
    fake_vasp.write_text(json.dumps(spec))
    labeler = _labeler(tmp_path, fake_vasp)
    labeler.check(set(atoms.get_chemical_symbols()))
    result = labeler.calculate(atoms, str(tmp_path / "job"))
    assert result.get_potential_energy() == pytest.approx(-10.8123, abs=1e-6)
    assert result.calc.results["free_energy"] == pytest.approx(-10.8150, abs=1e-6)
    np.testing.assert_allclose(result.get_forces(), forces, atol=1e-8)
    s = np.array(stress_kbar)
    # VASP: kBar, positive = compressive; ASE: eV/Å³, positive = tensile,
    # Voigt order xx yy zz yz xz xy
    expected = -0.1 * GPa * s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    np.testing.assert_allclose(result.get_stress(), expected, rtol=1e-8)
    assert result.get_stress()[0] == pytest.approx(1.2 * GPa)  # -12 kBar is tensile
    np.testing.assert_allclose(result.positions, atoms.positions)
    assert labeler.settings()["version"] == "6.4.2"  # the fake's banner
    assert len(Path(f"{fake_vasp}.runs").read_text().splitlines()) == 1  # ran once


def test_unconverged_scf_is_a_label_error(tmp_path, fake_vasp):
    spec = {
        "energy": -10.0,
        "free_energy": -10.0,
        "forces": [[0, 0, 0], [0, 0, 0]],
        "stress_kbar": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        "converged": False,
        "version": "6.4.2",
    }
    fake_vasp.write_text(json.dumps(spec))
    labeler = _labeler(tmp_path, fake_vasp, nelm=12)
    with pytest.raises(LabelError, match="SCF did not converge within NELM=12") as err:
        labeler.calculate(bulk("Si", "diamond", 5.43), str(tmp_path / "job"))
    assert "\n" not in str(err.value)
    assert "NELM = 12" in (tmp_path / "job" / "INCAR").read_text()


def test_failing_vasp_is_a_label_error(tmp_path, fake_vasp):
    fake_vasp.write_text("not json")  # the fake crashes with a traceback
    labeler = _labeler(tmp_path, fake_vasp)
    with pytest.raises(LabelError, match=r"VASP .* failed") as err:
        labeler.calculate(bulk("Si", "diamond", 5.43), str(tmp_path / "job"))
    assert "\n" not in str(err.value)


def test_check_names_a_missing_binary_and_missing_potcars(tmp_path, monkeypatch):
    pp = _potcars(tmp_path / "pp", ["Si"])
    env = {"VASP_PP_PATH": str(pp)}
    monkeypatch.delenv("VASP_PP_PATH", raising=False)
    missing = VaspLabeler(command="no_such_vasp_std", env=env)
    with pytest.raises(PFDError, match=r"'no_such_vasp_std' .* is not on PATH"):
        missing.check({"Si"})
    no_mpi = VaspLabeler(command="no_such_mpirun -n 4 vasp_std", env=env)
    with pytest.raises(PFDError, match=r"launcher binary 'no_such_mpirun'"):
        no_mpi.check({"Si"})
    # a binary that exists (any executable will do for the check)
    fake = tmp_path / "bin" / "vasp_std"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    found = VaspLabeler(command=str(fake), env=env)
    found.check({"Si"})
    with pytest.raises(PFDError, match=r"no VASP POTCAR for Fe, O \(PBE\)") as err:
        found.check({"Si", "Fe", "O"})
    assert str(pp) in str(err.value)
    with pytest.raises(PFDError, match="VASP_PP_PATH is not set"):
        VaspLabeler(command=str(fake)).check({"Si"})


def test_vasp_dies_with_its_worker(tmp_path: Path):
    """A killed label worker (timeout, dead driver) takes VASP down with it."""
    import signal
    import subprocess
    import time

    psutil = pytest.importorskip("psutil")
    pp = _potcars(tmp_path / "pp", ["Si"])
    pidfile = tmp_path / "vasp.pid"
    fake = tmp_path / "bin" / "vasp_std"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60\n")
    fake.chmod(0o755)
    code = (
        "from ase.build import bulk\n"
        "from pfd.label.vasp import VaspLabeler\n"
        f"labeler = VaspLabeler(command='{fake}', env={{'VASP_PP_PATH': '{pp}'}})\n"
        f"labeler.calculate(bulk('Si', 'diamond', 5.43), '{tmp_path / 'job'}')\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", code])
    vasp = None
    try:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert worker.poll() is None, "the worker ended before starting VASP"
            assert time.monotonic() < deadline, "VASP never started"
            time.sleep(0.1)
        vasp = psutil.Process(int(pidfile.read_text()))
        assert vasp.ppid() == worker.pid  # the shell handed its place over
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        deadline = time.monotonic() + 10
        alive = True
        while alive and time.monotonic() < deadline:
            try:
                alive = vasp.status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                alive = False
            time.sleep(0.1)
        assert not alive, "VASP outlived its worker"
    finally:
        if worker.poll() is None:
            worker.kill()
        if vasp is not None and vasp.is_running():
            vasp.kill()
