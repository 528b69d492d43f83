"""Which foundation model to fine-tune: the Si example's loop run from each of them.

    python benchmarks/foundation_models.py                  # SevenNet-0 and CHGNet
    python benchmarks/foundation_models.py --reuse 7net-0=runs/demo_time
    python benchmarks/foundation_models.py --model 7net-l3i5 sevennet 7net-l3i5
    python benchmarks/foundation_models.py --replay runs/si  # same labels for all

``--replay RUN_DIR`` costs no MD and no DFT: each model is fine-tuned on the DFT
labels that RUN_DIR's loop chose, iteration by iteration (the same frames, the
same train/validation split, the run's fine-tuning settings), and scored on the
run's held-out frames. It answers "with these labels, how good is model X, and
how long does its fine-tuning take", for models whose own loop is too slow to
run here (SevenNet-l3i5 on a CPU). The row of the model RUN_DIR used reproduces
that run's own iterations. A rerun reuses the fine-tunes already done.

SevenNet-l3i5 is not in the default set: on a 2-core CPU one of its training
epochs takes ~40 s (SevenNet-0 ~2 s), so its loop takes hours; run it on a GPU.

Each model gets the example's own settings (same DFT preset, exploration,
selection and convergence target; distillation off), run as ``pfd run`` in
``OUT/<name>`` so that a rerun resumes without repeating a DFT label. The table
gives, per model: DFT labels spent until the loop stopped, iterations, whether
it converged, the force/energy/stress errors on the example's held-out DFT
frames before and after fine-tuning, and the time of the fine-tuning phase and
of its parts (training, MD + selection, per iteration). The model that converges
with the fewest labels within ``--budget-min`` is printed as the choice.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pfd.config import deep_merge

REPLAY_MODELS = [
    ("7net-0", "sevennet", "7net-0"),
    ("7net-mf-0", "sevennet", "7net-mf-0"),  # at its default modality, PBE
    ("chgnet-0.3.0", "chgnet", "chgnet-0.3.0"),
    ("7net-l3i5", "sevennet", "7net-l3i5"),
]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "si" / "pfd.yaml"
MODELS = [
    ("7net-0", "sevennet", "7net-0"),
    ("chgnet-0.3.0", "chgnet", "chgnet-0.3.0"),
]
ONLY_ERRORS = {
    "enabled": True,
    **{s: {"enabled": False} for s in ("eos", "phonons", "vacancy", "diffusion")},
    "speed": {"enabled": False},
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=EXAMPLE)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_models")
    parser.add_argument(
        "--model",
        nargs=3,
        action="append",
        metavar=("NAME", "BACKEND", "CHECKPOINT"),
        help="a model to compare (repeatable); default: SevenNet-0 and CHGNet",
    )
    parser.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="NAME=RUN_DIR",
        help="take a finished run of the same config instead of running NAME",
    )
    parser.add_argument("--budget-min", type=float, default=15.0)
    parser.add_argument(
        "--replay",
        type=Path,
        metavar="RUN_DIR",
        help="fine-tune each model on RUN_DIR's DFT labels instead of its own loop",
    )
    parser.add_argument(
        "--test-data",
        type=Path,
        help="held-out DFT frames for --replay (default: the run's report.test_data)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    if args.replay is not None:
        models = args.model or REPLAY_MODELS
        return replay(args.replay, models, args.out, args.threads, args.test_data)

    models = args.model or MODELS
    reuse = dict(item.split("=", 1) for item in args.reuse)
    results: dict[str, Any] = {"config": str(args.config), "models": []}
    args.out.mkdir(parents=True, exist_ok=True)
    for name, backend, checkpoint in models:
        run_dir = Path(reuse[name]) if name in reuse else None
        if run_dir is None:
            run_dir = _run(args.config, args.out / name, backend, checkpoint)
        results["models"].append({"name": name, **summary(run_dir)})
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
    results["choice"] = choose(results["models"], args.budget_min)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print_table(results, args.budget_min)
    return results


def _run(config: Path, out: Path, backend: str, checkpoint: str) -> Path:
    """``pfd run`` of the example's config with another foundation model."""
    base = config.resolve().parent
    raw = yaml.safe_load(config.read_text()) or {}
    for item in raw.get("structures", []):
        item["path"] = str((base / item["path"]).resolve())
    report = dict(raw.get("report") or {})
    if report.get("test_data"):
        paths = report["test_data"]
        paths = [paths] if isinstance(paths, str) else paths
        report = {"test_data": [str((base / p).resolve()) for p in paths]}
    else:
        report = {"enabled": False}
    if (base / checkpoint).is_file():
        checkpoint = str((base / checkpoint).resolve())
    spec = deep_merge(
        raw,
        {
            "run_dir": str((out / "run").resolve()),
            "model": {"backend": backend, "checkpoint": checkpoint},
            "distill": {"enabled": False},
            "report": deep_merge(ONLY_ERRORS, report),
        },
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "pfd.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    cmd = [sys.executable, "-m", "pfd", "run", str(path), "--quiet"]
    print("running:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return out / "run"


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def summary(run_dir: Path) -> dict:
    """Labels, iterations, held-out errors and fine-tuning times of one run."""
    state = _load(run_dir / "state.json")
    its = state.get("iterations", [])
    errors = _load(run_dir / "report" / "report.json").get("errors", {})
    test = errors.get("dft_test", {})

    def pick(model: str) -> dict | None:
        e = test.get(model)
        if not e:
            return None
        return {
            "force_rmse_eV_A": e["force_rmse_eV_A"],
            "energy_rmse_meV_atom": 1000 * e["energy_rmse_eV_atom"],
            "stress_rmse_GPa": e["stress_rmse_GPa"],
        }

    seconds = [it["seconds"] for it in its]
    return {
        "run_dir": str(run_dir),
        "labels": (its[0]["n_train"] if its else 0) + sum(i["n_new"] for i in its),
        "iterations": len(its),
        "converged": bool(state.get("converged")),
        "new_frame_force_rmse": [it["force_rmse_eV_A"] for it in its],
        "zero_shot": pick("foundation"),
        "fine_tuned": pick("teacher"),
        "finetune_s": _load(run_dir / "timings.json").get("finetune"),
        "train_s": [s.get("train") for s in seconds],
        "explore_s": [s.get("explore_select") for s in seconds],
    }


def choose(rows: list[dict], budget_min: float) -> str | None:
    """Fewest labels among converged runs within the budget; then the lowest error."""
    ok = [
        r for r in rows if r["converged"] and (r["finetune_s"] or 0) / 60 <= budget_min
    ]
    if not ok:
        return None

    def key(r: dict) -> tuple:
        err = (r["fine_tuned"] or {}).get("force_rmse_eV_A", float("inf"))
        return (r["labels"], err)

    return min(ok, key=key)["name"]


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def print_table(results: dict, budget_min: float) -> None:
    head = (
        f"{'model':<14}{'labels':>7}{'iters':>6}{'conv':>5}"
        f"{'F0':>8}{'F':>8}{'E meV':>7}{'S GPa':>7}"
        f"{'ft min':>8}{'train s/it':>11}{'MD s/it':>9}"
    )
    print(f"\nheld-out DFT frames of {results['config']}")
    print("F0: force RMSE eV/Å zero-shot; F, E, S: after fine-tuning")
    print(head)
    for r in results["models"]:
        zero, tuned = r["zero_shot"] or {}, r["fine_tuned"] or {}
        train = [s for s in r["train_s"] if s is not None]
        md = [s for s in r["explore_s"] if s is not None]
        minutes = r["finetune_s"] / 60 if r["finetune_s"] else None
        print(
            f"{r['name']:<14}{r['labels']:>7}{r['iterations']:>6}"
            f"{'yes' if r['converged'] else 'no':>5}"
            f"{_f(zero.get('force_rmse_eV_A'), '.3f'):>8}"
            f"{_f(tuned.get('force_rmse_eV_A'), '.3f'):>8}"
            f"{_f(tuned.get('energy_rmse_meV_atom'), '.1f'):>7}"
            f"{_f(tuned.get('stress_rmse_GPa'), '.2f'):>7}"
            f"{_f(minutes, '.1f'):>8}"
            f"{_f(sum(train) / len(train) if train else None, '.0f'):>11}"
            f"{_f(sum(md) / len(md) if md else None, '.0f'):>9}"
        )
    choice = results["choice"] or "none (no run converged within the budget)"
    print(f"fewest labels to converge within {budget_min:g} min: {choice}")


def replay(
    run_dir: Path, models: list, out: Path, threads: int, test_data: Path | None = None
) -> dict:
    """Each model fine-tuned on ``run_dir``'s labels, per iteration; see the top."""
    import time

    from ase.io import read

    from pfd.analysis.errors import evaluate
    from pfd.db import RunDB
    from pfd.models import TrainingJob, backend_by_name
    from pfd.state import DB, recorded_config
    from pfd.training import split_frames

    config = recorded_config(run_dir)
    cfg = config.finetune
    test_data = test_data or next(iter(config.report.test_data), None)
    if test_data is None:
        raise SystemExit(f"{run_dir} has no report.test_data; give --test-data")
    test = read(test_data, ":")
    db = RunDB(run_dir / DB)
    iterations = len(_load(run_dir / "state.json").get("iterations", []))
    out = out / "replay"
    cache = out / "results.json"
    results = _load(cache) or {"run_dir": str(run_dir), "rows": {}}
    for name, backend_name, checkpoint in models:
        backend = backend_by_name(backend_name, "cpu", threads)
        foundation = backend.resolve(checkpoint)
        key = f"{name}/zero-shot"
        if key not in results["rows"]:
            errors = evaluate(test, backend.calculator(foundation))
            results["rows"][key] = {"labels": 0, **errors.as_dict(), "seconds": 0.0}
        start = foundation
        for iteration in range(1, iterations + 1):
            frames = db.labelled(max_iteration=iteration - 1)
            workdir = out / name / f"iter_{iteration:03d}"
            key = f"{name}/{iteration}"
            if key in results["rows"]:
                start = Path(results["rows"][key]["model"])
                continue
            train, valid = split_frames(frames, config.seed, iteration)
            if cfg.from_foundation:
                start = foundation
            clock = time.perf_counter()
            if cfg.refit_e0:
                start = backend.refit_e0(start, frames, workdir / "e0_refit.pth")
            job = TrainingJob(
                start, train, valid, workdir, cfg, config.seed + iteration
            )
            model = backend.fine_tune(job)
            seconds = time.perf_counter() - clock
            errors = evaluate(test, backend.calculator(model))
            results["rows"][key] = {
                "labels": len(frames),
                **errors.as_dict(),
                "seconds": seconds,
                "model": str(model),
            }
            start = model
            print(f"{key}: {results['rows'][key]}", flush=True)
            out.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(results, indent=1))
    out.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(results, indent=1))
    print_replay(results, [m[0] for m in models], config.convergence.force_rmse_eV_A)
    return results


def print_replay(results: dict, names: list[str], target: float | None) -> None:
    print(f"\nfine-tuned on the DFT labels of {results['run_dir']}, scored on its")
    print("held-out DFT frames (labels 0: zero-shot; s: E0 refit + fine-tuning)")
    print(f"{'model':<14}{'labels':>7}{'F eV/Å':>9}{'E meV':>8}{'S GPa':>7}{'s':>7}")
    for name in names:
        rows = [(k, r) for k, r in results["rows"].items() if k.split("/")[0] == name]
        for _, r in rows:
            print(
                f"{name:<14}{r['labels']:>7}{r['force_rmse_eV_A']:>9.3f}"
                f"{1000 * r['energy_rmse_eV_atom']:>8.1f}"
                f"{_f(r['stress_rmse_GPa'], '.2f'):>7}{r['seconds']:>7.0f}"
            )
        if target is not None:
            hits = [r["labels"] for _, r in rows[1:] if r["force_rmse_eV_A"] <= target]
            first = min(hits) if hits else "not reached"
            print(f"{'':<14}labels to reach {target:g} eV/Å: {first}")


if __name__ == "__main__":
    main()
