"""Wall time of each phase of the README's Si example (the demo) on this machine.

    python benchmarks/demo_time.py --run     # the example afresh, in runs/demo_time
    python benchmarks/demo_time.py runs/si   # the breakdown of a run made before

Phases (fine-tuning, distillation, report) come from the run's ``timings.json``,
which every ``pfd`` command adds its wall time to; the parts of each from what
the run records: per iteration train / explore+select / label (``state.json``),
teacher MD and student training (``student/check.json``), each report section
(``report/report.json``, the time it took when computed). ``--run`` also times
the whole command, imports included. Target: the whole example in 30 minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "si" / "pfd.yaml"
TARGET_MIN = 30.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a finished run")
    parser.add_argument("--run", action="store_true", help="run the example first")
    parser.add_argument("--config", type=Path, default=EXAMPLE)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "demo_time")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.run == (args.run_dir is not None):
        parser.error("give either a run directory or --run")

    wall = None
    run_dir = args.run_dir
    if args.run:
        run_dir = args.out.resolve()
        if run_dir.exists():  # a demo starts from nothing: no reused labels
            shutil.rmtree(run_dir)
        cmd = [sys.executable, "-m", "pfd", "run", str(args.config)]
        cmd += ["--run-dir", str(run_dir), "--quiet"]
        print("running:", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0

    result = breakdown(run_dir)
    result["wall_s"] = wall
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def breakdown(run_dir: Path) -> dict:
    """Seconds per phase and per recorded part of each phase."""
    timings = _load(run_dir / "timings.json")
    state = _load(run_dir / "state.json")
    check = _load(run_dir / "student" / "check.json")
    report = _load(run_dir / "report" / "report.json")

    rows: list[tuple[str, str, float]] = []
    iterations = 0.0
    for it in state.get("iterations", []):
        for part, sec in it["seconds"].items():
            rows.append(("finetune", f"iteration {it['iteration']}: {part}", sec))
            iterations += sec
    if "finetune" in timings:
        rest = timings["finetune"] - iterations
        rows.insert(0, ("finetune", "start: initial labels, zero-shot test", rest))
    for part, sec in check.get("seconds", {}).items():
        name = {"generate": "teacher MD + labels"}.get(part, part)
        rows.append(("distill", name.replace("_", " "), sec))
    for part, sec in report.get("seconds", {}).items():
        rows.append(("report", part, sec))
    # a run made before timings.json existed: the recorded parts at least
    total = sum(timings.values()) if timings else sum(s for _, _, s in rows)
    return {
        "run_dir": str(run_dir),
        "phases_s": timings,
        "parts": [{"phase": p, "part": n, "seconds": s} for p, n, s in rows],
        "total_s": total,
        "target_min": TARGET_MIN,
        "met": total / 60 <= TARGET_MIN,
        "from_parts_only": not timings,
        "teacher_frames": check.get("n_train", 0) + check.get("n_test", 0),
        "student_steps": check.get("steps"),
        "labels": sum(it["n_new"] for it in state.get("iterations", []))
        + (state["iterations"][0]["n_train"] if state.get("iterations") else 0),
    }


def print_table(result: dict) -> None:
    print(f"\n{result['run_dir']}")
    print(f"{'phase':<10}{'part':<42}{'seconds':>9}{'min':>7}")
    phases = result["phases_s"]
    for phase in ("finetune", "distill", "report"):
        for row in (r for r in result["parts"] if r["phase"] == phase):
            sec = row["seconds"]
            print(f"{'':<10}{row['part']:<42}{sec:>9.0f}{sec / 60:>7.1f}")
        if phase in phases:
            sec = phases[phase]
            print(f"{phase:<10}{'(phase wall time)':<42}{sec:>9.0f}{sec / 60:>7.1f}")
    total = result["total_s"]
    name = "total (recorded parts only)" if result["from_parts_only"] else "total"
    print(f"{name:<52}{total:>9.0f}{total / 60:>7.1f}")
    if result.get("wall_s"):
        wall = result["wall_s"]
        print(f"{'wall (pfd run, imports included)':<52}{wall:>9.0f}{wall / 60:>7.1f}")
    verdict = "met" if result["met"] else "not met"
    print(
        f"{result['labels']} DFT labels, {result['teacher_frames']} teacher frames, "
        f"student {result['student_steps']} steps; "
        f"target {result['target_min']:.0f} min: {verdict}"
    )


if __name__ == "__main__":
    main()
