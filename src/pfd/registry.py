"""Names of the built-in backends and labellers, and where they live (lazy imports)."""

from __future__ import annotations

#: force-field backends: name -> "module:Class"
BACKENDS: dict[str, str] = {
    "sevennet": "pfd.models.sevennet:SevenNetBackend",
    "chgnet": "pfd.models.chgnet:CHGNetBackend",
    "dpa": "pfd.models.dpa:DPABackend",
    "mace": "pfd.models.mace:MACEBackend",
}

#: labellers: labeler.code -> "module:Class"
LABELERS: dict[str, str] = {
    "gpaw": "pfd.label.gpaw:GPAWLabeler",
    "qe": "pfd.label.qe:QELabeler",
    "cp2k": "pfd.label.cp2k:CP2KLabeler",
    "vasp": "pfd.label.vasp:VaspLabeler",
    "abacus": "pfd.label.abacus:AbacusLabeler",
    "ase": "pfd.label.ase_calc:ASELabeler",
}
