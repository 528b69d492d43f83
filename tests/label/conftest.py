"""Stand-in binaries for labellers whose codes are not installable here.

``fake_abacus`` puts an ``abacus`` on PATH that reads the STRU abacuslite wrote
(atoms grouped by species, as ABACUS wants them), computes EMT energy, forces
and stress for that structure, and writes them as ABACUS 3.10 LTS does in
``OUT.<suffix>/running_scf.log``: eV, eV/Å, and kBar with positive =
compressive. Tests then check atom order, units and sign against EMT.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

FAKE_ABACUS = r'''#!{python}
"""Fake ABACUS 3.10.1: EMT results for the STRU in this folder, as running_scf.log."""
import os, sys
import numpy as np
from ase import Atoms
from ase.calculators.emt import EMT
from ase.units import GPa
from dpdata.formats.abacus.stru import get_frame_from_stru

if "--version" in sys.argv:
    print("ABACUS version v3.10.1")
    sys.exit(0)
with open(os.environ["FAKE_ABACUS_LOG"], "a") as log:
    log.write(os.getcwd() + "\n")
if os.environ.get("FAKE_ABACUS_EXIT"):
    print(" NOTICE: pseudopotential file cannot be read")
    sys.exit(int(os.environ["FAKE_ABACUS_EXIT"]))
lines = open("INPUT").read().splitlines()[1:]
inp = dict(line.split(None, 1) for line in lines if line)
frame = get_frame_from_stru("STRU")
names, counts = frame["atom_names"], frame["atom_numbs"]
symbols = [name for name, count in zip(names, counts) for _ in range(count)]
atoms = Atoms(symbols, positions=frame["coords"][0], cell=frame["cells"][0], pbc=True)
atoms.calc = EMT()
energy, forces = atoms.get_potential_energy(), atoms.get_forces()
stress = atoms.get_stress(voigt=False) / (-0.1 * GPa)  # kBar, positive = compressive
out = f"OUT.{{inp['suffix'].strip()}}"
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "running_scf.log"), "w") as fd:
    fd.write(" The esolver type has been set to : ksdft_pw\n")
    for step in range(1, 4):
        fd.write(f" PW ALGORITHM --------------- ION=   1  ELEC=   {{step}}----\n")
    if os.environ.get("FAKE_ABACUS_CONVERGED", "1") != "1":
        fd.write(" !! convergence has not been achieved @_@\n")
        sys.exit(0)
    fd.write(" charge density convergence is achieved\n")
    fd.write(f" final etot is {{energy:.10f}} eV\n\n")
    fd.write(" ------------------------------------------------------------\n")
    fd.write(" TOTAL-FORCE (eV/Angstrom)\n")
    fd.write(" ------------------------------------------------------------\n")
    counts = {{}}
    for symbol, force in zip(symbols, forces):
        counts[symbol] = counts.get(symbol, 0) + 1
        label = f"{{symbol}}{{counts[symbol]}}"
        fd.write(f"  {{label:<8}}" + "".join(f"{{x:16.10f}}" for x in force) + "\n")
    fd.write(" ------------------------------------------------------------\n\n")
    fd.write(" ------------------------------------------------------------\n")
    fd.write(" TOTAL-STRESS (KBAR)\n")
    fd.write(" ------------------------------------------------------------\n")
    for row in stress:
        fd.write("".join(f"{{x:18.10f}}" for x in row) + "\n")
    fd.write(" ------------------------------------------------------------\n")
print("fake ABACUS done")
'''


@pytest.fixture
def fake_abacus(tmp_path: Path, monkeypatch) -> Path:
    """A fake ``abacus`` on PATH; returns the file it logs each run's folder to."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "abacus"
    exe.write_text(FAKE_ABACUS.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    runs = tmp_path / "runs.log"
    monkeypatch.setenv("FAKE_ABACUS_LOG", str(runs))
    return runs


def pseudos(root: Path, names: list[str]) -> Path:
    """Empty UPF files named ``names`` in ``root`` (what the fake ABACUS needs)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).write_text("<UPF version='2.0.1'>\n</UPF>\n")
    return root
