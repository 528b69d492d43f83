"""Phonon bands: phonopy finite displacements along ASE's band path."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms
from ase.cell import Cell

from pfd.analysis._common import CalculatorSource, as_calculator, forces
from pfd.config import PhononReportConfig


@dataclass(frozen=True)
class PhononBands:
    """Frequencies (THz) along the band path of the primitive cell phonopy found."""

    x: list[float]
    xspecial: list[float]
    labels: list[str]
    frequencies_THz: list[list[float]]
    gamma_THz: list[float]
    n_displacements: int

    def to_dict(self) -> dict:
        return asdict(self)


def phonon_bands(
    model: CalculatorSource,
    atoms: Atoms,
    settings: PhononReportConfig | None = None,
) -> PhononBands:
    """Bands of ``atoms`` from ``model``'s forces on displaced supercells."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    settings = settings or PhononReportConfig()
    calc = as_calculator(model)
    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell[:],
        scaled_positions=atoms.get_scaled_positions(),
    )
    with warnings.catch_warnings():  # "auto" is what we ask for
        warnings.simplefilter("ignore")
        phonon = Phonopy(
            unit, supercell_matrix=np.diag(settings.supercell), primitive_matrix="auto"
        )
    phonon.generate_displacements(distance=settings.displacement_A)
    displaced = phonon.supercells_with_displacements
    phonon.forces = np.array([forces(_ase(sc), calc) for sc in displaced])
    phonon.produce_force_constants()
    # the standard path of the primitive cell phonopy found (e.g. FCC for diamond)
    path = Cell(phonon.primitive.cell).bandpath(npoints=settings.npoints)
    phonon.run_qpoints([[0.0, 0.0, 0.0]])
    gamma = np.asarray(phonon.qpoints.frequencies[0])
    phonon.run_qpoints(path.kpts)
    freqs = np.asarray(phonon.qpoints.frequencies)
    x, xspecial, labels = path.get_linear_kpoint_axis()
    return PhononBands(
        x=x.tolist(),
        xspecial=list(map(float, xspecial)),
        labels=list(labels),
        frequencies_THz=freqs.tolist(),
        gamma_THz=gamma.tolist(),
        n_displacements=len(displaced),
    )


def _ase(cell) -> Atoms:
    """A phonopy supercell as periodic ASE atoms."""
    return Atoms(
        cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True
    )
