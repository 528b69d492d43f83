"""Data efficiency: DFT labels of the PFD loop vs training the student from scratch.

Two arms, measured on the same held-out test set (frames no training set holds):

(a) **PFD**: the fine-tuning loop from the foundation model (``pfd run``); for
    the foundation model and each iteration's model, the labels it was trained
    on, the labels spent so far (training + the new frames each iteration tests
    on) and its errors on the test set.
(b) **From scratch**: the distillation student's architecture (DeePMD-kit
    ``se_e2_a``, the same defaults) trained only on reference labels, drawn at
    random from the PFD run's own exploration (its MD candidates, all
    iterations), at growing sizes, until it is as accurate as the PFD model or
    the label budget ends.

It prints a table and the ratio of labels needed to reach the PFD model's force
RMSE, and writes ``OUT/results.json`` after every step. Labels and trained
models are kept in ``OUT``: a rerun reuses them.

    # Si with GPAW, reusing the Si example's run and held-out set (hours of DFT
    # for the from-scratch arm; --sizes and --steps trade time for resolution)
    python benchmarks/data_efficiency.py gpaw --pfd-run runs/si
    # fast variant: EMT Cu as the reference, SevenNet-0 fine-tuned on it (no DFT)
    python benchmarks/data_efficiency.py emt

``--pool-run RUN`` draws the from-scratch labels from another run's exploration
(an earlier run of the same YAML, whose labels are made already): the loop and
the pool then come from two runs of one recipe, which the results record.

Without ``--pfd-run`` the loop is run first (``gpaw``: the Si example's
``pfd.yaml``, distillation and report off; ``emt``: an 8-atom Cu cell).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ase.build import bulk
from ase.io import read, write

from pfd.analysis.errors import evaluate_by_subset
from pfd.calculators import load_calculator
from pfd.config import StudentConfig, deep_merge
from pfd.explore import MDTask, run_md
from pfd.label import make_labeler
from pfd.label.runner import label_one
from pfd.layout import RunLayout
from pfd.models import make_backend
from pfd.structures import perturb
from pfd.students import make_student

ROOT = Path(__file__).resolve().parent.parent
SI = ROOT / "examples" / "si"

#: The fast variant's loop: EMT Cu, SevenNet-0 fine-tuned on it.
EMT_CONFIG: dict[str, Any] = {
    "name": "cu-emt",
    "seed": 0,
    "structures": [{"path": "cu.extxyz"}],
    "model": {"checkpoint": "7net-0", "threads": 2},
    "labeler": {"code": "ase", "calculator": "ase.calculators.emt:EMT", "workers": 2},
    "initial": {"frames_per_structure": 6, "displacement_A": 0.08, "strain": 0.03},
    "finetune": {"epochs": 40, "batch_size": 4},
    "explore": {
        "temperatures_K": [300, 700, 1100],
        "pressures_bar": [None, 10000],
        "steps": 300,
        "timestep_fs": 2.0,
        "sample_every": 5,
    },
    "select": {"max_per_iteration": 6},
    "convergence": {
        "force_rmse_eV_A": 0.05,
        "energy_rmse_eV_atom": 0.005,
        "max_iterations": 5,
    },
    "distill": {"enabled": False},
    "report": {"enabled": False},
}


#: From-scratch training steps (the default's models live in scratch/LABELS)
DEFAULT_STEPS = 10000

#: From-scratch network sizes: the distillation student's defaults, or the size
#: DeePMD-kit's examples use (slower, more capacity).
SIZES: dict[str, dict[str, Any]] = {
    "student": {},
    "standard": {"embedding": [25, 50, 100], "axis_neuron": 16, "fitting": [240] * 3},
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", choices=["gpaw", "emt"])
    parser.add_argument("--out", type=Path, help="default: runs/bench_data_<ref>")
    parser.add_argument("--pfd-run", type=Path, help="an existing run of the loop")
    parser.add_argument("--config", type=Path, help="the loop's YAML (overrides)")
    parser.add_argument("--test", type=Path, help="labelled held-out frames")
    parser.add_argument(
        "--pool-run",
        type=Path,
        help="draw the from-scratch labels from this run's exploration instead "
        "(an earlier run of the same YAML, whose pool is labelled already)",
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        help="numbers of labels to train on from scratch",
    )
    parser.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help="se_e2_a training steps"
    )
    parser.add_argument(
        "--net",
        choices=sorted(SIZES),
        default="student",
        help="from-scratch net: the distilled student's, or DeePMD's usual size",
    )
    parser.add_argument("--workers", type=int, default=2, help="labels side by side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--label-only", action="store_true", help="label the pool, train nothing"
    )
    parser.add_argument(
        "--past-target",
        action="store_true",
        help="train every size, also once forces reach the target (energy, stress)",
    )
    args = parser.parse_args(argv)
    out = (args.out or ROOT / "runs" / f"bench_data_{args.reference}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    sizes = args.sizes or (
        [24, 48, 96, 192] if args.reference == "gpaw" else [25, 50, 100, 200, 400, 800]
    )
    results: dict[str, Any] = {
        "reference": args.reference,
        "steps": args.steps,
        "net": args.net,
    }
    save = _saver(out / "results.json", results)

    run_dir = args.pfd_run or _run_loop(args, out)
    config = load_config_of(run_dir)
    labeler = make_labeler(config.labeler)
    test = _test_set(args, out, labeler)
    results["test"] = {"frames": len(test), "subsets": _subsets(test)}

    pool_run = args.pool_run or run_dir
    results["pool_run"] = str(pool_run)
    pool = _pool(pool_run, args.seed)
    needed = [n for n in sizes if n <= len(pool)]
    if len(needed) < len(sizes):
        print(f"the run's exploration has {len(pool)} frames: sizes above it skipped")
    if args.label_only:
        _label(pool[: max(needed)], labeler, out / "labels", args.workers)
        return results

    results["pfd"] = _pfd_curve(run_dir, config, test, args.threads)
    save()
    target = results["pfd"][-1]
    results["target_force_rmse_eV_A"] = target["force_rmse_eV_A"]
    results["scratch"] = []
    type_map = sorted({s for a in test for s in a.get_chemical_symbols()})
    for n in needed:
        labelled = _label(pool[:n], labeler, out / "labels", args.workers)
        t0 = time.perf_counter()
        work = out / "scratch" / _scratch_name(n, args)
        model = _train_scratch(labelled, test, type_map, args, work)
        errors, by_subset = _scored(test, load_calculator(model))
        results["scratch"].append(
            {
                "labels": n,
                "train_s": time.perf_counter() - t0,
                **errors,
                "by_subset": by_subset,
            }
        )
        save()
        force = errors["force_rmse_eV_A"]
        print(f"from scratch, {n} labels: force RMSE {force:.4f} eV/Å")
        if force <= target["force_rmse_eV_A"] and not args.past_target:
            break
    results["summary"] = _summary(results)
    save()
    _print_table(results)
    return results


def load_config_of(run_dir: Path):
    """The loop's config as recorded in its run directory."""
    from pfd.state import recorded_config

    return recorded_config(run_dir)


def _saver(path: Path, results: dict):
    def save() -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(path)

    return save


def _run_loop(args, out: Path) -> Path:
    """Run the fine-tuning loop (``pfd run``) into OUT/pfd; its run directory."""
    run_dir = out / "pfd"
    if args.reference == "gpaw":
        spec = yaml.safe_load((args.config or SI / "pfd.yaml").read_text())
        base = (args.config or SI / "pfd.yaml").parent
        for s in spec["structures"]:
            s["path"] = str((base / s["path"]).resolve())
        spec = deep_merge(spec, {"distill": {"enabled": False}})
        spec = deep_merge(spec, {"report": {"enabled": False}})
    else:
        write(out / "cu.extxyz", bulk("Cu", "fcc", 3.61, cubic=True).repeat((2, 1, 1)))
        spec = deep_merge(
            EMT_CONFIG, {"structures": [{"path": str(out / "cu.extxyz")}]}
        )
        if args.config:
            spec = deep_merge(spec, yaml.safe_load(args.config.read_text()))
    spec["run_dir"] = str(run_dir)
    path = out / "pfd.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    cmd = [sys.executable, "-m", "pfd", "run", str(path)]
    print("running the loop:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return run_dir


def _test_set(args, out: Path, labeler) -> list:
    """Held-out labelled frames: given, the Si example's, or made here (EMT)."""
    if args.test:
        return read(args.test, ":")
    if args.reference == "gpaw":
        path = SI / "test_dft.extxyz"
        if not path.exists():
            subprocess.run([sys.executable, str(SI / "make_test_set.py")], check=True)
        return read(path, ":")
    path = out / "test.extxyz"
    if not path.exists():
        write(path, _emt_test_set(labeler))
    return read(path, ":")


def _emt_test_set(labeler) -> list:
    """MD of the reference itself at 300-1100 K (NVT, 1 GPa) and ±4 % strains."""
    from ase.calculators.emt import EMT

    from pfd.config import ExploreConfig

    cu = bulk("Cu", "fcc", 3.61, cubic=True).repeat((2, 1, 1))
    cu.info = {"structure": 0}
    cfg = ExploreConfig(steps=300, sample_every=100, displacement_A=0.05, strain=0.02)
    frames = []
    conditions = [(300, None), (700, 10000.0), (1100, None), (900, 5000.0)]
    for k, (temp, pressure) in enumerate(conditions):
        traj = run_md(cu, EMT(), MDTask(0, temp, temp, pressure, 300, 1000 + k), cfg)
        for frame in traj.frames:
            frame.info = {"subset": f"md-{temp}K"}
            frames.append(frame)
    rng = np.random.default_rng(2024)
    for strain in (-0.04, -0.02, 0.02, 0.04):
        frame = perturb(cu, rng, 0.04, 0.0)
        frame.set_cell(frame.cell * (1 + strain), scale_atoms=True)
        frame.info = {"subset": "strained"}
        frames.append(frame)
    labelled = []
    for frame in frames:
        result = labeler.calculate(frame, "")
        result.info = dict(frame.info)
        labelled.append(result)
    return labelled


def _subsets(frames: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for atoms in frames:
        key = atoms.info.get("subset", "all")
        counts[key] = counts.get(key, 0) + 1
    return counts


def _pool(run_dir: Path, seed: int) -> list:
    """Every MD candidate of the loop's exploration, in a fixed random order."""
    frames = []
    for path in sorted(run_dir.glob("iter_*/candidates.extxyz")):
        frames.extend(read(path, ":"))
    for atoms in frames:
        atoms.calc = None
    order = np.random.default_rng(seed).permutation(len(frames))
    return [frames[i] for i in order]


def _label(frames: list, labeler, root: Path, workers: int) -> list:
    """Reference labels of ``frames`` (each a job directory: reused on rerun)."""
    todo = [
        not (root / f"{i:04d}" / "output.extxyz").exists() for i in range(len(frames))
    ]
    if any(todo):
        print(f"labelling {sum(todo)} frames ({workers} side by side)", flush=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = [
            pool.submit(label_one, labeler, atoms, root / f"{i:04d}")
            for i, atoms in enumerate(frames)
        ]
        return [job.result() for job in jobs]


def _pfd_curve(run_dir: Path, config, test: list, threads: int) -> list[dict]:
    """Errors on ``test`` of the foundation model and of each iteration's model."""
    layout = RunLayout(run_dir)
    state = json.loads(layout.state.read_text())  # model paths relative to the run
    backend = make_backend(config.model.model_copy(update={"threads": threads}))
    foundation = backend.resolve(config.model.checkpoint)
    points = [("foundation", foundation, 0, 0)]
    initial = state["iterations"][0]["n_train"] if state["iterations"] else 0
    spent = initial
    for it in state["iterations"]:
        spent += it["n_new"] + it["n_failed"]
        model = layout.resolve(it["model"])
        points.append((f"iteration {it['iteration']}", model, it["n_train"], spent))
        if it["converged"]:
            break
    curve = []
    for name, model, trained, spent in points:
        errors, by_subset = _scored(test, backend.calculator(Path(model)))
        curve.append(
            {
                "model": name,
                "labels": trained,
                "labels_spent": spent,
                **errors,
                "by_subset": by_subset,
            }
        )
        print(f"PFD {name}: {errors['force_rmse_eV_A']:.4f} eV/Å", flush=True)
    return curve


def _scored(test: list, calc) -> tuple[dict, dict]:
    """Errors on ``test`` overall, and per ``info['subset']`` (e.g. md-1500K)."""
    by = {name: e.as_dict() for name, e in evaluate_by_subset(test, calc).items()}
    return by.pop("all"), by


def _scratch_name(labels: int, args) -> str:
    """Directory of one from-scratch model: its net, labels and steps."""
    net = "" if args.net == "student" else f"{args.net}_"
    steps = "" if args.steps == DEFAULT_STEPS else f"_{args.steps}steps"
    return f"{net}{labels}{steps}"


def _train_scratch(train: list, test: list, type_map, args, work: Path) -> Path:
    """The distillation student (pfd's own training), trained on ``train`` alone.

    Frozen without the energy-bias refit, as the published numbers were made.
    """
    cfg = StudentConfig(
        steps=args.steps, compress=False, refit_bias=False, **SIZES[args.net]
    )
    student = make_student("deepmd", cfg, type_map=type_map, threads=args.threads)
    return student.train(train, test, work, seed=args.seed)


#: What "as accurate as the PFD model" means, per quantity (the RMSE keys).
QUANTITIES = {
    "force": ("force_rmse_eV_A",),
    "energy": ("energy_rmse_eV_atom",),
    "stress": ("stress_rmse_GPa",),
    "all": ("force_rmse_eV_A", "energy_rmse_eV_atom", "stress_rmse_GPa"),
}


def _summary(results: dict) -> dict:
    """Labels to reach the PFD model's errors: forces (the headline), then energy,
    stress and all three at once, each as labels and the ratio to PFD's; also
    for each earlier iteration's model (``by_iteration``)."""
    pfd, scratch = results["pfd"], results["scratch"]

    def reach(model: dict, keys: tuple[str, ...]) -> dict[str, Any]:
        spent = model["labels_spent"]
        if any(model.get(k) is None for k in keys):
            return {"reached": False, "scratch_labels": "n/a", "ratio": "n/a"}
        hits = [s for s in scratch if all(s[k] <= model[k] for k in keys)]
        if hits:
            n = hits[0]["labels"]
            return {"reached": True, "scratch_labels": n, "ratio": n / spent}
        largest = scratch[-1]["labels"] if scratch else 0
        ratio = f">{largest / spent:.1f}" if spent else "n/a"
        return {"reached": False, "scratch_labels": f">{largest}", "ratio": ratio}

    def by_quantity(model: dict) -> dict[str, Any]:
        return {name: reach(model, keys) for name, keys in QUANTITIES.items()}

    final = pfd[-1]
    return {
        "target_force_rmse_eV_A": results["target_force_rmse_eV_A"],
        "pfd_labels_spent": final["labels_spent"],
        "pfd_labels_trained": final["labels"],
        **reach(final, QUANTITIES["force"]),
        "by_quantity": by_quantity(final),
        "by_iteration": {
            p["model"]: {"labels_spent": p["labels_spent"], **by_quantity(p)}
            for p in pfd
            if p["labels_spent"] > 0
        },
    }


def _print_table(results: dict) -> None:
    print()
    print(f"held-out test set: {results['test']['frames']} frames")
    head = f"{'arm':<12}{'model':<14}{'labels':>8}{'spent':>8}"
    print(head + f"{'F RMSE':>10}{'E RMSE':>10}{'S RMSE':>9}")
    print(f"{'':<12}{'':<14}{'':>8}{'':>8}{'eV/Å':>10}{'meV/at':>10}{'GPa':>9}")
    rows = [
        ("PFD", p["model"], p["labels"], p["labels_spent"], p) for p in results["pfd"]
    ]
    rows += [
        ("scratch", "se_e2_a", s["labels"], s["labels"], s) for s in results["scratch"]
    ]
    for arm, name, labels, spent, e in rows:
        stress = e["stress_rmse_GPa"]
        print(
            f"{arm:<12}{name:<14}{labels:>8}{spent:>8}{e['force_rmse_eV_A']:>10.4f}"
            f"{1000 * e['energy_rmse_eV_atom']:>10.2f}"
            f"{'' if stress is None else f'{stress:.3f}':>9}"
        )
    s = results["summary"]
    ratio = s["ratio"] if isinstance(s["ratio"], str) else f"{s['ratio']:.1f}"
    print(
        f"\nlabels to reach {s['target_force_rmse_eV_A']:.4f} eV/Å: "
        f"PFD {s['pfd_labels_spent']} (trained on {s['pfd_labels_trained']}), "
        f"from scratch {s['scratch_labels']}; ratio {ratio}x"
    )
    print("\nfrom-scratch labels / PFD labels to reach each PFD model's errors:")
    print(f"{'PFD model':<14}{'spent':>6}" + "".join(f"{q:>10}" for q in QUANTITIES))
    for name, row in s["by_iteration"].items():
        cells = []
        for quantity in QUANTITIES:
            ratio = row[quantity]["ratio"]
            cells.append(ratio if isinstance(ratio, str) else f"{ratio:.1f}")
        print(
            f"{name:<14}{row['labels_spent']:>6}" + "".join(f"{c:>10}" for c in cells)
        )

    _print_subsets(results)


def _print_subsets(results: dict) -> None:
    """Force and energy RMSE per test subset: where each arm is better."""
    rows = [("PFD " + results["pfd"][-1]["model"], results["pfd"][-1])]
    rows += [(f"scratch {s['labels']}", s) for s in results["scratch"]]
    subsets = sorted({k for _, row in rows for k in row.get("by_subset", {})})
    if not subsets:
        return
    print("\nper test subset, F RMSE eV/Å / E RMSE meV/atom:")
    print(f"{'model':<16}" + "".join(f"{name:>15}" for name in subsets))
    for name, row in rows:
        cells = []
        for subset in subsets:
            e = row.get("by_subset", {}).get(subset)
            if e is None:
                cells.append("-")
                continue
            force, energy = e["force_rmse_eV_A"], 1000 * e["energy_rmse_eV_atom"]
            cells.append(f"{force:.3f} / {energy:.1f}")
        print(f"{name:<16}" + "".join(f"{c:>15}" for c in cells))


if __name__ == "__main__":
    main()
