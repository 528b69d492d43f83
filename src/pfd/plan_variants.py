"""``pfd run --dry-run`` with structure variants: the cells a run would explore
and the DFT jobs, atoms and k-points each one adds (see :mod:`pfd.plan`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ase import Atoms

from pfd.config import RunConfig, StructureConfig
from pfd.layout import RunLayout
from pfd.plan import job_seconds, kpoint_count, minutes
from pfd.structures import BULK, INPUT

if TYPE_CHECKING:
    from pfd.plan import Plan


def planned_variants(
    config: RunConfig, inputs: list[tuple[Atoms, StructureConfig]]
) -> list[Atoms]:
    """The variants a run would explore: those its run directory holds, else
    made now (nothing written), each random phase stood in for by a supercell
    of the input of about ``phase_max_atoms`` (phases are made at run start)."""
    from pfd.variants import generate, host_cell, run_variants

    held = RunLayout(config.run_dir).variants
    if held.exists():
        return run_variants(inputs, held)
    out = []
    for atoms, entry in inputs:
        cfg = entry.variants
        if cfg is None or not cfg.asked:
            continue
        out += generate(atoms, cfg.model_copy(update={"phases": 0}))
        for k in range(cfg.phases):
            cell = host_cell(atoms, cfg.phase_max_atoms)[1]
            cell.info = {
                "structure": atoms.info["structure"],
                "variant": f"phase-{k}",
                "stand_in": True,
            }
            out.append(cell)
    return out


def cell_lines(plan: Plan, config: RunConfig) -> list[str]:
    """With variants: the DFT jobs each explored cell adds, its size and k-points."""
    if not plan.cells:
        return []
    lines = ["DFT jobs per structure and variant (atoms, k-points per job):"]
    each = plan.phases[1].jobs
    for cell in plan.cells:
        variant = cell.info["variant"]
        initial = (
            config.initial.frames_per_structure
            if variant in (BULK, INPUT)
            else config.initial.frames_per_variant
        )
        share = len(each) / len(plan.cells)  # selection goes round the cells
        seconds = (
            f", ~{minutes(job_seconds(config, plan.timing, cell))} per job"
            if plan.timing
            else ""
        )
        size = " (about: made at run start)" if cell.info.get("stand_in") else ""
        lines.append(
            f"  s{cell.info['structure']} {variant:<18} {len(cell):>4} atoms{size}, "
            f"{kpoint_count(config, cell):>3} k-points: {initial} initial, "
            f"~{share:.2g} per iteration{seconds}"
        )
    return lines
