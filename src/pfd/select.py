"""Selection of the explored frames worth a DFT label.

Filters first (closest pair, cell shape), then either entropy selection with
QUESTS (greedy: the frame whose atomic environments are least covered by the
labelled set and the frames already picked, as PFD-kit does) or random.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from pfd.config import GuardConfig, SelectConfig
from pfd.structures import cell_angles_ok, min_distance, too_close


def filter_frames(
    frames: list[Atoms],
    structures: list[Atoms],
    cfg: SelectConfig,
    guards: GuardConfig,
) -> list[Atoms]:
    """Drop frames with too-close atoms or cells sheared far from the input's."""
    kept = []
    for atoms in frames:
        if cfg.min_distance_A > 0:
            if min_distance(atoms) < cfg.min_distance_A:
                continue
        elif too_close(atoms, guards.min_distance_factor):
            continue
        ref = structures[atoms.info["structure"]]
        if not cell_angles_ok(atoms, ref, cfg.max_cell_angle_deviation_deg):
            continue
        kept.append(atoms)
    return kept


def select_frames(
    candidates: list[Atoms],
    labelled: list[Atoms],
    cfg: SelectConfig,
    rng: np.random.Generator,
) -> list[Atoms]:
    """Pick at most ``cfg.max_per_iteration`` frames from ``candidates``."""
    if len(candidates) <= cfg.max_per_iteration:
        return list(candidates)
    if cfg.method == "random":
        idx = rng.choice(len(candidates), cfg.max_per_iteration, replace=False)
        return [candidates[i] for i in sorted(idx)]
    return entropy_select(candidates, labelled, cfg)


def entropy_select(
    candidates: list[Atoms], labelled: list[Atoms], cfg: SelectConfig
) -> list[Atoms]:
    """Greedy maximum-novelty selection with QUESTS differential entropy.

    A frame's score is the mean dH of its atoms against the reference set (the
    labelled frames plus those already chosen); the best is chosen, added to the
    reference, and the scores recomputed.
    """
    from quests.descriptor import get_descriptors
    from quests.entropy import delta_entropy

    def describe(atoms: Atoms) -> np.ndarray:
        return get_descriptors([atoms], k=cfg.quests_k, cutoff=cfg.quests_cutoff_A)

    descs = [describe(a) for a in candidates]
    reference = [describe(a) for a in labelled]
    chosen: list[int] = []
    remaining = list(range(len(candidates)))
    while remaining and len(chosen) < cfg.max_per_iteration:
        if reference:
            ref = np.concatenate(reference)
            scores = [
                float(np.mean(delta_entropy(descs[i], ref, h=cfg.quests_bandwidth)))
                for i in remaining
            ]
            best = remaining[int(np.argmax(scores))]
        else:
            best = remaining[0]
        chosen.append(best)
        remaining.remove(best)
        reference.append(descs[best])
    return [candidates[i] for i in sorted(chosen)]
