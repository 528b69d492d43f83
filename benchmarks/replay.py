"""Fine-tuning that does not forget: a run's teacher retrained without and with replay.

The teacher of a finished run is retrained from the untouched foundation on the
DFT frames it was trained on (``--labels-upto``, default: the iterations before
the run's final model), with the run's own ``finetune`` settings, once without
pseudo-label replay and once per ``--arm`` (replay loss weights) with it
(``pfd.replay``: short MD of each crystal's vacancies, slabs and melt with the
untouched foundation, labelled by it, E0-shifted). Each model, and the
foundation with its per-element energies refitted to the same frames, is
measured per ``info['subset']`` of the Si example's held-out and broad DFT test
sets, as ``benchmarks/transfer.py`` does. Wall and CPU seconds of the replay
generation and of each training are printed too (CPU seconds are robust to a
shared machine). Results are kept in ``--out`` and reused by a rerun.

    python benchmarks/replay.py runs/si
    python benchmarks/replay.py runs/si --arm 0,0.1,0 --arm 0.2,0.2,0.2 --frames 24
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from ase.io import read

from pfd.analysis.errors import evaluate_by_subset
from pfd.config.loop import ReplayConfig
from pfd.models import make_backend
from pfd.replay import ReplaySet, cached_replay, generate_replay, replay_key
from pfd.state import RunState, recorded_config
from pfd.structures import read_structures
from pfd.training import training_job

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import SETS, _cell


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (trainers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Clock:
    """Wall and CPU seconds of a ``with`` block, written to ``path`` (JSON) so
    that a rerun that reuses the result still prints them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()

    def __exit__(self, *_: object) -> None:
        wall, cpu = time.perf_counter() - self.wall, cpu_seconds() - self.cpu
        self.path.write_text(json.dumps({"wall": wall, "cpu": cpu}))


def recorded_seconds(path: Path) -> tuple[float, float] | None:
    """(wall, CPU) seconds a :class:`Clock` wrote, if any."""
    if not path.is_file():
        return None
    got = json.loads(path.read_text())
    return got["wall"], got["cpu"]


def arm(text: str) -> dict[str, float]:
    """``--arm E,F,S``: the replay loss weights of energy, forces, stress."""
    energy, force, stress = (float(x) for x in text.split(","))
    return {"energy": energy, "force": force, "stress": stress}


def arm_name(weights: dict[str, float]) -> str:
    return "replay " + " ".join(f"{k[0].upper()}{v:g}" for k, v in weights.items())


def teacher_labels(run_dir: Path, upto: int | None) -> list:
    """The DFT frames of iterations <= ``upto`` (default: those the run's final
    model was trained on, iterations before its own)."""
    if upto is None:
        final = RunState.load(run_dir).final_model or ""
        name = Path(final).parent.name  # iter_002 (or final_0018)
        upto = int(name.split("_")[1]) - 1 if name.startswith("iter_") else 10**6
    frames = read(run_dir / "dft.extxyz", ":")
    return [f for f in frames if int(f.info.get("iteration", 0)) <= upto]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument(
        "--arm", type=arm, action="append",
        help="replay loss weights E,F,S (energy, force, stress); repeatable; "
        "default: the run's finetune.replay weights",
    )  # fmt: skip
    parser.add_argument("--frames", type=int, default=24, help="replayed frames")
    parser.add_argument("--steps", type=int, help="MD steps per replay trajectory")
    parser.add_argument("--min-atoms", type=int, help="smallest replayed cell")
    parser.add_argument(
        "--without", action="append", default=[],
        help="leave out replayed frames of this variant (e.g. melt); repeatable",
    )  # fmt: skip
    parser.add_argument("--labels-upto", type=int, help="last DFT iteration used")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="work dir (RUN_DIR/replay_bench)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    out = args.out or run_dir / "replay_bench"
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    config = recorded_config(run_dir)
    backend = make_backend(config.model.model_copy(update={"threads": args.threads}))
    foundation = backend.resolve(config.model.checkpoint)
    dft = teacher_labels(run_dir, args.labels_upto)
    update = {"frames": args.frames, "steps": args.steps, "min_atoms": args.min_atoms}
    update = {k: v for k, v in update.items() if v is not None}
    replay_cfg = ReplayConfig.model_validate(
        config.finetune.replay.model_dump() | update
    )
    frames = make_replay(out, config, replay_cfg, backend, foundation)
    frames = [f for f in frames if f.info["variant"] not in args.without]
    print(f"{len(dft)} DFT frames; {len(frames)} replay frames", flush=True)

    models = {"foundation (E0 refit)": out / "no_replay" / "e0_refit.pth"}
    for weights in [{}, *(args.arm or [replay_cfg.weights])]:
        name = arm_name(weights) if weights else "no replay"
        if weights and args.without:
            name += " without " + " ".join(args.without)
        replay = ReplaySet(frames, foundation, weights) if weights else None
        workdir = out / name.replace(" ", "_")
        model = workdir / "model.pth"
        if not model.exists():
            job = training_job(
                backend, foundation, dft, workdir, config.finetune, config.seed, 2,
                replay=replay,
            )  # fmt: skip
            with Clock(workdir / "seconds.json"):
                result = backend.fine_tune(job)
            model.write_bytes(result.read_bytes())
        models[name] = model
        print(f"trained: {name}", flush=True)
    times = {"replay generation": recorded_seconds(out / "replay_seconds.json")}
    for name, model in list(models.items())[1:]:  # the foundation is not trained
        times[f"train {name}"] = recorded_seconds(model.parent / "seconds.json")
    return report(models, backend, times, args.json)


def make_replay(out: Path, config, replay_cfg, backend, foundation: Path) -> list:
    """The replay frames of the run's structures, cached in ``out``."""
    structures = read_structures(config.structures)
    n_frames = replay_cfg.frames

    def make() -> list:
        with Clock(out / "replay_seconds.json"):
            calc = backend.calculator(foundation)
            return generate_replay(
                structures, calc, replay_cfg, config.explore, n_frames,
                config.seed, lambda what, n: print(f"  replay MD {what}: {n}"),
            )  # fmt: skip

    key = replay_key(
        structures, foundation, replay_cfg, config.explore, config.seed, n_frames
    )
    return cached_replay(out / "replay.extxyz", key, make)


def report(
    models: dict[str, Path], backend, times: dict, json_out: Path | None
) -> dict:
    """Print and return the per-subset table and the times."""
    table: dict[str, dict[str, dict]] = {}
    for path in SETS:
        test = read(path, ":")
        for name, model in models.items():
            calc = backend.calculator(model)
            for subset, errs in evaluate_by_subset(test, calc).items():
                table.setdefault(f"{path.stem}/{subset}", {})[name] = errs.as_dict()
    names = list(models)
    print("F RMSE eV/Å / E RMSE meV/atom per subset: " + " | ".join(names))
    for key, row in table.items():
        n = next(iter(row.values()))["n_frames"]
        print(f"{key:34s} ({n:2d}) " + " | ".join(_cell(row[m]) for m in names))
    for name, seconds in times.items():
        if seconds:
            print(f"{name:34s} {seconds[0]:7.1f} s wall {seconds[1]:7.1f} s CPU")
    result = {"table": table, "seconds": times}
    if json_out:
        json_out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
