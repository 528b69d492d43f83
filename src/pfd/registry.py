"""Names of the built-in backends and labellers, and where they live (lazy imports)."""

from __future__ import annotations

#: force-field backends: name -> "module:Class"
BACKENDS: dict[str, str] = {"sevennet": "pfd.models.sevennet:SevenNetBackend"}

#: labellers: labeler.code -> "module:Class"
LABELERS: dict[str, str] = {
    "gpaw": "pfd.label.gpaw:GPAWLabeler",
    "ase": "pfd.label.ase_calc:ASELabeler",
}
