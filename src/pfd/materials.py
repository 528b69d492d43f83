"""Several materials in one run: each structure's own MD conditions, its name,
and the errors of the frames that came from it.

A structure is named by ``structures[].name`` or its file stem
(``info['name']``); ``explore.per_structure`` gives a structure (and its
variants) its own temperatures, pressures, ramps and steps, the rest falls back
to ``explore``'s. A frame names the structure it came from by
``info['structure']`` (its index), or, where the database kept no such key, by
the uid or source pfd gave it (``init-s1-0``; ``s1 300K NVT step 10``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ase import Atoms

from pfd.errors import ConfigError

if TYPE_CHECKING:
    from pfd.config import ExploreConfig, RampConfig, StructureConfig

#: variants that are the input structure itself (see pfd.structures.exploration_cells)
_SELF = ("", "bulk", "input")
_INIT_UID = re.compile(r"^init-s(\d+)-")
_MD_SOURCE = re.compile(r"^s(\d+) ")


@dataclass(frozen=True)
class Conditions:
    """The MD conditions of one structure and its variants."""

    temperatures_K: list[float]
    pressures_bar: list[float | None]
    ramps: list[RampConfig]
    steps: int
    own: bool = False  # from explore.per_structure

    @property
    def npt(self) -> bool:
        return any(p is not None for p in self.pressures_bar)


def conditions(cfg: ExploreConfig, name: str | None) -> Conditions:
    """``name``'s conditions: its ``explore.per_structure`` entry over ``cfg``'s."""
    entry = cfg.per_structure.get(name) if name is not None else None
    if entry is None:
        return Conditions(cfg.temperatures_K, cfg.pressures_bar, cfg.ramps, cfg.steps)
    return Conditions(
        _given(entry.temperatures_K, cfg.temperatures_K),
        _given(entry.pressures_bar, cfg.pressures_bar),
        _given(entry.ramps, cfg.ramps),
        _given(entry.steps, cfg.steps),
        own=True,
    )


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def structure_names(cells: list[Atoms]) -> dict[int, str]:
    """``{structure index: name}`` of the input structures among ``cells``."""
    return {
        int(a.info["structure"]): str(a.info["name"])
        for a in cells
        if "name" in a.info
        and "structure" in a.info
        and str(a.info.get("variant", "")) in _SELF
    }


def check_materials(
    explore: ExploreConfig, inputs: list[tuple[Atoms, StructureConfig]]
) -> None:
    """Refuse duplicate names, ``per_structure`` keys that name no structure, and
    NPT asked of structures without a cell (one-line :class:`ConfigError`)."""
    structures = [atoms for atoms, _ in inputs]
    names = [str(a.info["name"]) for a in structures]
    twice = [n for n, k in Counter(names).items() if k > 1]
    if twice:
        files = sorted({str(c.path.name) for a, c in inputs if a.info["name"] in twice})
        raise ConfigError(
            f"two structures are named '{twice[0]}' ({', '.join(files)}); give each "
            "a distinct structures[].name"
        )
    unknown = sorted(set(explore.per_structure) - set(names))
    if unknown:
        raise ConfigError(
            f"explore.per_structure names '{unknown[0]}', which is no structure; "
            f"the structures are: {', '.join(names)} (file stems, or structures[].name)"
        )
    alone = not any(all(a.pbc) for a in structures)  # no crystal in the run
    for atoms in structures:
        name = str(atoms.info["name"])
        entry = explore.per_structure.get(name)
        own = conditions(explore, name)
        if not own.temperatures_K and not own.ramps:
            raise ConfigError(
                f"explore.per_structure.{name} leaves structure '{name}' no "
                "temperatures_K and no ramps; give one of them"
            )
        if all(atoms.pbc) or not own.npt:
            continue
        if entry is not None and entry.pressures_bar is not None:
            raise ConfigError(_no_cell(name, f"explore.per_structure.{name}"))
        if alone:  # in a mixed run, explore's NPT runs as NVT for a molecule
            raise ConfigError(_no_cell(name, "explore"))


def _no_cell(name: str, where: str) -> str:
    return (
        f"structure '{name}' is not periodic: NPT needs a cell; use "
        f"pressures_bar: [null] in {where}"
    )


def condition_lines(explore: ExploreConfig, structures: list[Atoms]) -> list[str]:
    """What ``pfd run --dry-run`` says of each structure's MD conditions (in a
    run of several structures, or with ``explore.per_structure``)."""
    if len(structures) < 2 and not explore.per_structure:
        return []
    lines = ["MD conditions per structure (explore.per_structure, else explore):"]
    for atoms in structures:
        name = str(atoms.info["name"])
        own = conditions(explore, name)
        periodic = all(atoms.pbc)
        pressures = own.pressures_bar if periodic else [None]
        ens = ", ".join(
            "NVT" if p is None else f"NPT {p:g} bar" for p in dict.fromkeys(pressures)
        )
        note = "" if periodic or not own.npt else " (not periodic: NPT runs as NVT)"
        temps = ", ".join(f"{t:g}" for t in own.temperatures_K) or "no"
        ramps = "".join(
            f", ramp {r.start_K:g}->{r.stop_K:g} K ({r.steps} steps"
            + (f" after {r.hold_steps} at {r.start_K:g} K)" if r.hold_steps else ")")
            for r in own.ramps
        )
        lines.append(
            f"  {name}{' (own)' * own.own}: {temps} K x {ens}{note}, "
            f"{own.steps} steps{ramps}"
        )
    return lines


def structure_index(atoms: Atoms) -> int | None:
    """The input structure a frame came from: ``info['structure']``, else what
    its uid or source says (frames of pfd's database); None if nothing does."""
    info = atoms.info
    if "structure" in info:
        return int(info["structure"])
    for pattern, key in ((_INIT_UID, "uid"), (_MD_SOURCE, "source")):
        found = pattern.match(str(info.get(key, "")))
        if found:
            return int(found.group(1))
    return None


def material_of(atoms: Atoms, names: dict[int, str] | None = None) -> str | None:
    """A frame's material: its structure's name in ``names``, else
    ``info['name']``, else ``s<index>``; None for a frame that names none."""
    index = structure_index(atoms)
    if names and index in names:
        return names[index]
    if "name" in atoms.info:
        return str(atoms.info["name"])
    return None if index is None else f"s{index}"
