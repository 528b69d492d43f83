"""Make held-out DFT test frames for the a-Si example from an independent quench.

One melt-quench-anneal trajectory of the example's 32-atom cell
(``pfd.analysis.amorphous.melt_quench``, the protocol of ``report.rdf`` in
``pfd.yaml``: 0.8 ps at 3500 K, cool at 4000 K/ps, 0.6 ps at 300 K) with the
foundation model (or ``--model``, e.g. a run's ``final_model.pth``) and a seed
no run uses. Frames are picked from it per subset, each labelled with the
example's GPAW preset (``labeler`` in ``pfd.yaml``), and written with
``info['subset']`` so that ``pfd test`` and the report give errors and g(r) per
subset:

- ``liquid-3500K``: the last frames of the melt (the quench must have melted:
  :func:`pfd.analysis.amorphous.melted`, else it stops);
- ``quench-1500K``, ``quench-900K`` (``--quench-K``): the quench frames closest
  to those temperatures;
- ``amorphous-300K``: frames evenly spread over the anneal.

    # MD and frame picking only, no DFT (writes testset_work/frames.extxyz)
    OMP_NUM_THREADS=1 python examples/a-si/make_test_set.py --md-only
    # the whole set: writes examples/a-si/test_dft.extxyz (report.test_data)
    OMP_NUM_THREADS=1 python examples/a-si/make_test_set.py

Cost on 2 cores: the MD is ``report.rdf``'s (1100 steps of 32 atoms, ~3 min quiet), then
one GPAW job per frame (10 by default), ``--workers`` side by side with one
thread each; ``pfd run examples/a-si/pfd.yaml --dry-run`` times one such job.
A job directory per frame stays under ``testset_work/`` (not in git).
"""

from __future__ import annotations

import argparse
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

HERE = Path(__file__).parent


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--config", type=Path, default=HERE / "pfd.yaml", help="the example's YAML")
    add("--out", type=Path, default=HERE / "test_dft.extxyz")
    add("--model", default=None, help="checkpoint or model file; default: the YAML's")
    add("--seed", type=int, default=4242, help="of the quench (no run uses it)")
    add("--liquid", type=int, default=2, help="frames from the melt")
    add("--quench-K", type=float, nargs="*", default=[1500.0, 900.0])
    add("--per-quench-K", type=int, default=2, help="frames per --quench-K")
    add("--amorphous", type=int, default=4, help="frames from the anneal")
    add("--workers", type=int, default=2, help="GPAW jobs side by side")
    add("--threads", type=int, default=2, help="torch threads of the MD")
    add("--md-only", action="store_true", help="no DFT: pick and print the frames")
    return parser.parse_args()


def pick(frames: list[Atoms], args: argparse.Namespace) -> list[Atoms]:
    """The test frames, each with ``info['subset']``."""
    stage: dict[str, list[Atoms]] = {"melt": [], "quench": [], "anneal": []}
    for a in frames:
        stage[a.info["stage"]].append(a)
    melt = stage["melt"]
    liquid = f"liquid-{melt[-1].info['target_K']:.0f}K"
    chosen = [(liquid, a) for a in melt[-args.liquid :]] if args.liquid else []
    for temp in args.quench_K:
        near = sorted(stage["quench"], key=lambda a: abs(a.info["target_K"] - temp))
        near = [a for a in near if all(a is not b for _, b in chosen)]  # once each
        chosen += [(f"quench-{temp:.0f}K", a) for a in near[: args.per_quench_K]]
    anneal = stage["anneal"]
    if anneal and args.amorphous:
        idx = np.linspace(0, len(anneal) - 1, args.amorphous).round().astype(int)
        final = anneal[-1].info["target_K"]
        chosen += [(f"amorphous-{final:.0f}K", anneal[i]) for i in dict.fromkeys(idx)]
    out = []
    for subset, atoms in chosen:
        frame = atoms.copy()
        frame.info = {
            "subset": subset,
            "source": f"independent quench seed {args.seed} step {atoms.info['step']}",
            "target_K": atoms.info["target_K"],
            "temperature_K": atoms.info["temperature_K"],
        }
        out.append(frame)
    return out


def quench(args: argparse.Namespace) -> list[Atoms]:
    """The independent melt-quench with the YAML's model (or ``--model``)."""
    from pfd.analysis.amorphous import melt_quench, melted
    from pfd.config import load_config
    from pfd.models import make_backend
    from pfd.report.amorphous import protocol, quench_ramps
    from pfd.structures import read_inputs

    config = load_config(args.config)
    inputs = read_inputs(config.structures)
    atoms = inputs[0][0]
    proto = protocol(config.report.rdf, quench_ramps(config, inputs), atoms)
    backend = make_backend(config.model.model_copy(update={"threads": args.threads}))
    model = backend.calculator(backend.resolve(args.model or config.model.checkpoint))
    print(f"{len(atoms)} atoms, {proto}, {proto.total_steps} steps, seed {args.seed}")
    run = melt_quench(atoms, model, proto, args.seed)
    print(f"MD: {run.steps_done} steps in {run.seconds:.0f} s")
    if run.stopped:
        raise SystemExit(f"the quench stopped early: {run.stopped}")
    check = melted(run, atoms)
    print(f"melt: {check.reason}")
    if not check.melted:
        raise SystemExit("no liquid to make a glass of: melt longer or hotter")
    return run.frames


def label(frames: list[Atoms], args: argparse.Namespace) -> list[Atoms]:
    """GPAW labels with the YAML's labeller, ``--workers`` jobs side by side."""
    from pfd.config import load_config
    from pfd.label import make_labeler

    labeler = make_labeler(load_config(args.config).labeler)
    jobs = [args.out.parent / "testset_work" / f"{i:03d}" for i in range(len(frames))]
    for job in jobs:
        job.mkdir(parents=True, exist_ok=True)
    # one BLAS thread per job (OMP_NUM_THREADS=1), --workers side by side
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
        results = list(pool.map(labeler.calculate, frames, [str(j) for j in jobs]))
    for frame, result in zip(frames, results, strict=True):
        result.info = dict(frame.info)
    return results


def main() -> None:
    args = parse()
    frames = pick(quench(args), args)
    for a in frames:
        info = a.info
        print(f"{info['subset']:>16}  {info['source']}  {info['temperature_K']:.0f} K")
    if args.md_only:
        work = args.out.parent / "testset_work"
        work.mkdir(parents=True, exist_ok=True)
        write(work / "frames.extxyz", frames)
        print(f"wrote {len(frames)} unlabelled frames to {work / 'frames.extxyz'}")
        return
    labelled = label(frames, args)
    write(args.out, labelled)
    print(f"wrote {len(labelled)} frames to {args.out}")


if __name__ == "__main__":
    main()
