"""A rough estimate of the loop's model time (MD, training) for ``pfd run --dry-run``.

One force call of the foundation model on the first structure is timed; MD
costs one call per step, training about :data:`pfd.plan.TRAIN_CALLS_PER_FRAME`
calls per frame and epoch (calibrated on the Si example). Model
loading, selection and I/O are not counted, and the threads of a real run
(``model.threads`` shared by the trajectories side by side) differ from the
timing's; the line printed says so.
"""

from __future__ import annotations

import os
import time

import numpy as np
from ase import Atoms

from pfd.config import RunConfig
from pfd.plan import TRAIN_CALLS_PER_FRAME, makespan, minutes


def force_call_seconds(
    calc, atoms: Atoms, calls: int = 3, in_process: bool = True
) -> float:
    """Median time of ``calc``'s energy, forces (and stress) on ``atoms``: the
    CPU time when less than the wall time (a busy machine) and the model runs
    in this process, else the wall time."""
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(0)
    times = []
    for k in range(calls + 1):  # the first call warms up (compilation, caches)
        atoms.positions += rng.normal(0.0, 0.01, atoms.positions.shape)
        t0, c0 = time.perf_counter(), time.process_time()
        atoms.get_forces()
        if all(atoms.pbc):
            atoms.get_stress()
        if k:  # CPU time when the machine is busy (less than the wall time)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            times.append(min(wall, cpu) if in_process and cpu > 0 else wall)
    return float(np.median(times))


def model_estimate(config: RunConfig, foundation, structures: list[Atoms]) -> str:
    """One paragraph: the timed force call, MD and training time per iteration."""
    from pfd.explore import plan_md
    from pfd.models import CalculatorFactory
    from pfd.structures import cell_key

    cores = os.cpu_count() or 1
    md_workers = min(config.explore.workers or cores, cores)
    threads = max(1, config.model.threads // md_workers)  # as an MD worker's
    mc = config.model
    factory = CalculatorFactory(
        mc.backend, str(foundation), mc.device, threads, mc.head, mc.python
    )
    first = structures[0]
    t1 = force_call_seconds(factory(), first, in_process=mc.python is None)
    per_atom = t1 / len(first)
    tasks = plan_md(structures, config.explore, config.seed)
    sizes = {cell_key(s): len(s) for s in structures}  # structures and variants
    steps = [t.steps * sizes[t.structure, t.variant] for t in tasks]
    md = makespan([n * per_atom for n in steps], md_workers)
    n_init = config.initial.frames_per_structure * len(structures)
    n_sel = config.select.max_per_iteration
    mean_atoms = float(np.mean([len(s) for s in structures]))

    def train(iteration: int) -> float:
        frames = n_init + (iteration - 1) * n_sel
        calls = config.finetune.epochs * frames * TRAIN_CALLS_PER_FRAME
        return calls * per_atom * mean_atoms

    last = config.convergence.max_iterations
    return (
        f"Rough model time (not DFT; one force call of {config.model.backend} on "
        f"{len(first)} atoms took {t1:.3f} s with {threads} thread(s), as in MD): "
        f"per iteration MD ~{minutes(md)} ({len(tasks)} trajectories, "
        f"{md_workers} side by side, one call per step), training ~{minutes(train(1))} "
        f"at iteration 1 to ~{minutes(train(last))} at iteration {last} "
        f"(epochs x frames x {TRAIN_CALLS_PER_FRAME:g} calls, calibrated on Si); "
        "model loading and selection not counted"
    )
