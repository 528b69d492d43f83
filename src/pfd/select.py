"""Selection of the explored frames worth a DFT label.

Filters first (closest pair, cell shape), then either entropy selection with
QUESTS (greedy: the frame whose atomic environments are least covered by the
labelled set and the frames already picked, as PFD-kit does) or random.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from pfd.config import GuardConfig, SelectConfig
from pfd.materials import structure_index
from pfd.structures import cell_angles_ok, cell_key, min_distance, too_close


def filter_frames(
    frames: list[Atoms],
    structures: list[Atoms],
    cfg: SelectConfig,
    guards: GuardConfig,
) -> list[Atoms]:
    """Drop frames with too-close atoms or cells sheared far from the input's.

    ``structures`` are the explored cells (structures and their variants): a
    frame's cell is compared with the one it was sampled from.
    """
    cells = {cell_key(atoms): atoms for atoms in structures}
    kept = []
    for atoms in frames:
        if cfg.min_distance_A > 0:
            if min_distance(atoms) < cfg.min_distance_A:
                continue
        elif too_close(atoms, guards.min_distance_factor):
            continue
        ref = cells[cell_key(atoms)]
        if not cell_angles_ok(atoms, ref, cfg.max_cell_angle_deviation_deg):
            continue
        kept.append(atoms)
    return kept


def condition_of(atoms: Atoms) -> str:
    """The MD condition (structure, temperature, ensemble) a frame was sampled at."""
    if "condition" in atoms.info:
        return str(atoms.info["condition"])
    return str(atoms.info.get("source", "")).rsplit(" step", 1)[0]


def select_frames(
    candidates: list[Atoms],
    labelled: list[Atoms],
    cfg: SelectConfig,
    rng: np.random.Generator,
) -> list[Atoms]:
    """Pick at most ``cfg.max_per_iteration`` frames from ``candidates``.

    With ``cfg.stratify`` the picks go round the MD conditions (one per
    condition per round, the most novel first), so that every temperature and
    pressure the user asked for is labelled and tested, not only the hottest.
    Above the conditions, they go round the input structures (materials), then
    each structure's variants: each material gets a frame before any gets a
    second, each variant before any gets a second condition.
    """
    if len(candidates) <= cfg.max_per_iteration:
        return list(candidates)
    strata = [_stratum(a) if cfg.stratify else (None, None, "") for a in candidates]
    if cfg.method == "random":
        scores = None
    else:
        scores = _NoveltyScorer(candidates, labelled, cfg)
    chosen: list[int] = []
    remaining = list(range(len(candidates)))
    used: set[tuple] = set()  # strata of this round over the conditions
    visited: list[set[object]] = [set(), set()]  # this round's structures, variants
    structures, variants = [s[0] for s in strata], [s[1] for s in strata]
    while remaining and len(chosen) < cfg.max_per_iteration:
        pool = _round(remaining, structures, visited[0])
        if not any(strata[i] not in used for i in pool):
            used -= {strata[i] for i in pool}  # a new round over their conditions
        pool = [i for i in pool if strata[i] not in used]
        pool = _round(pool, variants, visited[1])
        if scores is None:
            best = int(rng.choice(pool))
        else:
            values = scores(pool)
            best = pool[int(np.argmax(values))]
            scores.add(best)
        chosen.append(best)
        remaining.remove(best)
        used.add(strata[best])
        for level, seen in enumerate(visited):
            seen.add(strata[best][level])
    return [candidates[i] for i in sorted(chosen)]


def _round(pool: list[int], keys: list[object], seen: set[object]) -> list[int]:
    """The frames of ``pool`` whose key this round has not visited (a new round
    when every key of the pool has been)."""
    if not any(keys[i] not in seen for i in pool):
        seen.clear()
    return [i for i in pool if keys[i] not in seen]


def _stratum(atoms: Atoms) -> tuple[object, object, str]:
    """(structure, variant, condition) of a frame; variant None in a run without
    variants."""
    variant = cell_key(atoms) if "variant" in atoms.info else None
    return structure_index(atoms), variant, condition_of(atoms)


class _NoveltyScorer:
    """QUESTS differential entropy of candidate frames against a growing reference.

    A frame's score is the mean dH of its atoms against the labelled frames plus
    those already chosen (greedy maximum novelty, as PFD-kit selects).
    """

    def __init__(
        self, candidates: list[Atoms], labelled: list[Atoms], cfg: SelectConfig
    ):
        from quests.descriptor import get_descriptors

        def describe(atoms: Atoms) -> np.ndarray:
            return get_descriptors([atoms], k=cfg.quests_k, cutoff=cfg.quests_cutoff_A)

        self.h = cfg.quests_bandwidth
        self.descs = [describe(a) for a in candidates]
        self.reference = [describe(a) for a in labelled]

    def add(self, index: int) -> None:
        self.reference.append(self.descs[index])

    def __call__(self, pool: list[int]) -> list[float]:
        from quests.entropy import delta_entropy

        if not self.reference:
            return [0.0] * len(pool)
        ref = np.concatenate(self.reference)
        return [
            float(np.mean(delta_entropy(self.descs[i], ref, h=self.h))) for i in pool
        ]
