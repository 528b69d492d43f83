"""Selection of the explored frames worth a DFT label.

Filters first (closest pair, cell shape), then either entropy selection with
QUESTS (greedy: the frame whose atomic environments are least covered by the
labelled set and the frames already picked, as PFD-kit does) or random.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from pfd.config import GuardConfig, SelectConfig
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
    Frames of a run with structure variants go round the variants first: each
    variant gets a frame before any gets a second condition.
    """
    if len(candidates) <= cfg.max_per_iteration:
        return list(candidates)
    strata = [_stratum(a) if cfg.stratify else (None, "") for a in candidates]
    if cfg.method == "random":
        scores = None
    else:
        scores = _NoveltyScorer(candidates, labelled, cfg)
    chosen: list[int] = []
    remaining = list(range(len(candidates)))
    used: set[tuple] = set()  # strata of this round over the conditions
    visited: set[object] = set()  # variants of this round over the variants
    while remaining and len(chosen) < cfg.max_per_iteration:
        if not any(strata[i] not in used for i in remaining):
            used.clear()  # a new round over the conditions
        pool = [i for i in remaining if strata[i] not in used]
        if not any(strata[i][0] not in visited for i in pool):
            visited.clear()  # a new round over the variants
        pool = [i for i in pool if strata[i][0] not in visited]
        if scores is None:
            best = int(rng.choice(pool))
        else:
            values = scores(pool)
            best = pool[int(np.argmax(values))]
            scores.add(best)
        chosen.append(best)
        remaining.remove(best)
        used.add(strata[best])
        visited.add(strata[best][0])
    return [candidates[i] for i in sorted(chosen)]


def _stratum(atoms: Atoms) -> tuple[object, str]:
    """(variant, condition) of a frame; variant None in a run without variants."""
    variant = cell_key(atoms) if "variant" in atoms.info else None
    return variant, condition_of(atoms)


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
