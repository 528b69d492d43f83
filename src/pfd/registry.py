"""Names of the built-in backends and labellers, and where they live (lazy imports).

Adding a backend or a labeller is its module plus one line here; a user's own
class works without a line, given as ``module:Class`` in the YAML.
"""

from __future__ import annotations

from importlib import import_module

from pfd.errors import PFDError

#: force-field backends: model.backend -> "module:Class"
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


def check_name(name: str, table: dict[str, str], key: str) -> None:
    """Raise ``ValueError`` unless ``name`` is registered or a ``module:Class``.

    For config validation: nothing is imported.
    """
    if name not in table and ":" not in name:
        raise ValueError(
            f"unknown {key} '{name}'; choose one of {sorted(table)} "
            "or give 'module:Class'"
        )


def load_class(name: str, table: dict[str, str], key: str) -> type:
    """The class registered as ``name`` in ``table``, or imported from ``module:Class``.

    ``key`` names the YAML key (``model.backend``) in the one-line error.
    """
    module, _, attr = table.get(name, name).partition(":")
    if not module or not attr:
        raise PFDError(
            f"unknown {key} '{name}'; choose one of {sorted(table)} "
            "or give 'module:Class'"
        )
    try:
        return getattr(import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise PFDError(f"cannot load {key} '{name}': {err}") from err
