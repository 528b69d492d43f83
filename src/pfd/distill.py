"""Phase 2, distillation: the fine-tuned teacher labels many frames, a small
DeePMD-kit ``se_e2_a`` student is trained on them from scratch.

Each step writes its result before the next starts and looks for it first, so
a killed distillation resumes where it stopped:

``distill/settings.json``         what the teacher data was generated with
``distill/md/NNN.extxyz``         teacher MD frames (+ rattled copies), labelled
``distill/md/NNN.json``           that trajectory's record (written last)
``distill/train.extxyz``          the student's training frames (teacher labels)
``distill/test.extxyz``           held-out teacher frames
``distill/pool.extxyz``           frames not (yet) used, for later rounds
``distill/deepmd/{train,test}/``  the same in deepmd/npy (dpdata)
``distill/round_N/``              DeePMD-kit training directory of round N
``student/``                      graph.pb, graph_c.pb (compressed), input.json,
                                  lcurve.out, check.json, lammps/ (in.lammps)
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read, write

from pfd._proc import run_logged
from pfd.config import DistillConfig, RunConfig, StudentConfig
from pfd.db import write_frames_atomic, write_json_atomic
from pfd.errors import PFDError
from pfd.evaluate import evaluate, predict
from pfd.explore import MDTask, cached_calculator, labelled_by, plan_md, run_md
from pfd.models import CalculatorFactory, make_backend
from pfd.progress import Reporter
from pfd.state import RunState
from pfd.structures import perturb, read_structures

DISTILL, STUDENT = "distill", "student"
_BATCH = re.compile(r"batch\s+(\d+)", re.IGNORECASE)


def require_deepmd() -> None:
    """DeePMD-kit (TensorFlow backend) and dpdata must be importable."""
    for module in ("deepmd", "dpdata", "tensorflow"):
        if importlib.util.find_spec(module) is None:
            raise PFDError(
                f"distillation needs DeePMD-kit with TensorFlow ('{module}' is not "
                "installed): pip install 'pfd[deepmd]', or set distill.enabled: false"
            )


@dataclass
class DistillResult:
    """Where the student is and how well it learned the teacher."""

    model: Path
    check: dict[str, Any]


def run_distill(config: RunConfig, report: Reporter | None = None) -> DistillResult:
    """Distil the run's fine-tuned model into a DeePMD student (resumable)."""
    report = report or Reporter()
    cfg = config.distill
    run_dir = config.run_dir
    teacher = run_dir / "final_model.pth"
    if not RunState.load(run_dir).finished or not teacher.exists():
        raise PFDError(
            f"run directory '{run_dir}' has no fine-tuned teacher (final_model.pth); "
            "run 'pfd run CONFIG' to finish fine-tuning first"
        )
    require_deepmd()
    structures = read_structures(config.structures)
    symbols = sorted({s for a in structures for s in a.get_chemical_symbols()})
    type_map = list(cfg.student.type_map or symbols)
    missing = [s for s in symbols if s not in type_map]
    if missing:
        raise PFDError(
            f"distill.student.type_map {type_map} lacks {', '.join(missing)} of the "
            "structures; add them to type_map (or leave it out)"
        )
    work = run_dir / DISTILL
    work.mkdir(exist_ok=True)
    _check_settings(work, cfg)

    t0 = time.perf_counter()
    frames = generate(config, teacher, structures, work, report)
    seconds = {"generate": time.perf_counter() - t0}
    train, test, pool = split_frames(frames, cfg, config.seed, work)
    report.info(
        f"distill: {len(frames)} teacher frames: {len(train)} to train the student, "
        f"{len(test)} held out, {len(pool)} in reserve"
    )
    if len(train) < 1 or len(test) < 1:
        raise PFDError(
            f"teacher MD gave only {len(frames)} usable frames, too few for a student; "
            "raise distill.steps or lower distill.sample_every"
        )

    student_dir = run_dir / STUDENT
    student_dir.mkdir(exist_ok=True)
    teacher_calc = None
    for round_ in range(1, cfg.max_rounds + 1):
        round_dir = work / f"round_{round_}"
        t0 = time.perf_counter()
        graph = train_student(
            train, test, type_map, cfg.student, round_dir, config, report, round_
        )
        seconds[f"train_round_{round_}"] = time.perf_counter() - t0
        errs = evaluate(test, student_calculator(graph, type_map))
        report.info(
            f"distill round {round_}: student vs teacher on {errs.n_frames} held-out "
            f"frames: force RMSE {errs.force_rmse_eV_A:.4f} eV/Å, energy RMSE "
            f"{errs.energy_rmse_eV_atom * 1000:.2f} meV/atom"
        )
        target = cfg.target_force_rmse_eV_A
        if target is None or errs.force_rmse_eV_A <= target or round_ == cfg.max_rounds:
            break
        if not pool:
            report.info("distill: no frames left in reserve to add; stopping rounds")
            break
        added, pool = worst_predicted(pool, graph, type_map, cfg.add_per_round)
        train = train + added
        write_frames_atomic(work / f"train_round_{round_ + 1}.extxyz", train)
        write_frames_atomic(work / f"pool_round_{round_ + 1}.extxyz", pool)
        report.info(
            f"distill: force RMSE above {target} eV/Å: adding the {len(added)} "
            "frames the student predicts worst and retraining"
        )

    for name in ("graph.pb", "graph_c.pb", "input.json", "lcurve.out"):
        src = round_dir / name
        if src.exists():
            shutil.copyfile(src, student_dir / name)
    final = student_dir / ("graph_c.pb" if cfg.student.compress else "graph.pb")
    t0 = time.perf_counter()
    dft = run_dir / "dft.extxyz"
    dft_frames = read(dft, ":") if dft.exists() and dft.stat().st_size else []
    check: dict[str, Any] = {
        "student": str(final),
        "rounds": round_,
        "n_train": len(train),
        "n_test": len(test),
        "steps": cfg.student.steps,
        "vs_teacher": errs.as_dict(),
    }
    if dft_frames:
        teacher_calc = make_backend(config.model).calculator(teacher)
        student_dft = evaluate(dft_frames, student_calculator(final, type_map))
        teacher_dft = evaluate(dft_frames, teacher_calc)
        check["vs_dft"] = {
            "data": str(dft),
            "student": student_dft.as_dict(),
            "teacher": teacher_dft.as_dict(),
            "force_rmse_ratio": student_dft.force_rmse_eV_A
            / teacher_dft.force_rmse_eV_A,
        }
        report.info(
            f"distill: on the run's {len(dft_frames)} DFT frames: student force RMSE "
            f"{student_dft.force_rmse_eV_A:.4f} eV/Å, teacher "
            f"{teacher_dft.force_rmse_eV_A:.4f} "
            f"({check['vs_dft']['force_rmse_ratio']:.2f}x)"
        )
    seconds["check"] = time.perf_counter() - t0
    check["seconds"] = seconds
    write_lammps_input(structures[0], final, type_map, config, student_dir / "lammps")
    write_json_atomic(student_dir / "check.json", check)
    report.info(
        f"student: {final} (ASE: deepmd.calculator.DP; LAMMPS: "
        f"{student_dir / 'lammps' / 'in.lammps'})"
    )
    return DistillResult(final, check)


# --- generate ------------------------------------------------------------------


def _generation_settings(cfg: DistillConfig) -> dict[str, Any]:
    keys = (
        "temperatures_K",
        "pressures_bar",
        "supercells",
        "steps",
        "sample_every",
        "rattles_per_frame",
        "rattle_A",
        "rattle_strain",
    )
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k in keys}


def _check_settings(work: Path, cfg: DistillConfig) -> None:
    """Teacher data of one run directory comes from one set of MD settings."""
    path = work / "settings.json"
    new = _generation_settings(cfg)
    if path.exists():
        old = json.loads(path.read_text())
        changed = sorted(k for k in new if old.get(k) != new[k])
        if changed:
            raise PFDError(
                f"distill settings {', '.join(changed)} changed since the teacher "
                f"data in '{work}' was made; restore them, or delete '{work}' to "
                "generate it again"
            )
    write_json_atomic(path, new)


def md_settings(config: RunConfig):
    """The exploration settings of the teacher's MD (wider than fine-tuning)."""
    cfg, explore = config.distill, config.explore
    temps = cfg.temperatures_K
    if temps is None:
        base = explore.temperatures_K or [r.stop_K for r in explore.ramps]
        temps = sorted({0.5 * min(base), *base, 1.2 * max(base)})
    pressures = cfg.pressures_bar
    if pressures is None:
        pressures = [None, *(p for p in explore.pressures_bar if p is not None)]
    return explore.model_copy(
        update={
            "temperatures_K": [float(t) for t in temps],
            "pressures_bar": pressures,
            "ramps": explore.ramps,
            "steps": cfg.steps,
            "sample_every": cfg.sample_every,
        }
    )


def supercells(structures: list[Atoms], cfg: DistillConfig) -> list[Atoms]:
    """Each structure at each supercell size (non-periodic ones as they are)."""
    out = []
    for atoms in structures:
        sizes = cfg.supercells if all(atoms.pbc) else [(1, 1, 1)]
        for size in dict.fromkeys(tuple(s) for s in sizes):
            big = atoms.repeat(size)
            big.info = dict(atoms.info) | {
                "structure": len(out),
                "supercell": "x".join(map(str, size)),
            }
            out.append(big)
    return out


def generate(
    config: RunConfig,
    teacher: Path,
    structures: list[Atoms],
    work: Path,
    report: Reporter,
) -> list[Atoms]:
    """Teacher MD over the distillation's conditions; one file per trajectory."""
    cfg = config.distill
    systems = supercells(structures, cfg)
    settings = md_settings(config)
    tasks = plan_md(systems, settings, seed=config.seed * 1000 + 999)
    md_dir = work / "md"
    md_dir.mkdir(exist_ok=True)
    todo = [k for k in range(len(tasks)) if not (md_dir / f"{k:03d}.json").exists()]
    if todo:
        cores = os.cpu_count() or 1
        workers = min(len(todo), cfg.workers or cores)
        factory = CalculatorFactory(
            config.model.backend,
            str(teacher),
            config.model.device,
            threads=max(1, config.model.threads // workers),
            head=config.model.head,
            python=config.model.python,
        )
        report.info(
            f"distill: teacher MD, {len(todo)} of {len(tasks)} trajectories to run "
            f"({workers} side by side), {settings.steps} steps each"
        )
        pool = _pool(workers)
        with pool, report.bar("teacher MD", len(todo)) as update:
            futures = {
                k: pool.submit(
                    teacher_job,
                    factory,
                    systems[tasks[k].structure],
                    tasks[k],
                    settings,
                    cfg,
                )
                for k in todo
            }
            for done, (k, future) in enumerate(futures.items(), start=1):
                frames, record = future.result()
                write_frames_atomic(md_dir / f"{k:03d}.extxyz", frames)
                write_json_atomic(md_dir / f"{k:03d}.json", record)
                note = f", stopped at {record['stopped']}" if record["stopped"] else ""
                report.info(
                    f"  teacher MD {record['label']}: {record['frames']} frames in "
                    f"{record['seconds']:.0f} s{note}"
                )
                update(done)
    frames: list[Atoms] = []
    for k in range(len(tasks)):
        path = md_dir / f"{k:03d}.extxyz"
        if path.stat().st_size:
            frames.extend(read(path, ":"))
    return frames


def _pool(workers: int):
    if workers <= 1:
        return ThreadPoolExecutor(max_workers=1)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def teacher_job(
    make_calc: CalculatorFactory,
    atoms: Atoms,
    task: MDTask,
    settings,
    cfg: DistillConfig,
) -> tuple[list[Atoms], dict[str, Any]]:
    """One teacher trajectory with labelled frames, plus rattled copies of them."""
    t0 = time.perf_counter()
    calc = cached_calculator(make_calc)
    traj = run_md(atoms, calc, task, settings, label=True)
    rng = np.random.default_rng(task.seed + 1)
    frames = []
    for frame in traj.frames:
        frame.info["supercell"] = atoms.info.get("supercell", "1x1x1")
        frames.append(frame)
        for r in range(cfg.rattles_per_frame):
            copy = perturb(frame, rng, cfg.rattle_A, cfg.rattle_strain)
            copy.info = dict(frame.info) | {"source": f"{frame.info['source']} r{r}"}
            copy.calc = calc
            labels = labelled_by(copy)  # one teacher call
            copy.calc = labels
            frames.append(copy)
    record = {
        "label": f"{task.label} {atoms.info.get('supercell', '1x1x1')}",
        "frames": len(frames),
        "stopped": traj.stopped,
        "steps_done": traj.steps_done,
        "seconds": time.perf_counter() - t0,
    }
    return frames, record


# --- split -------------------------------------------------------------------


def split_frames(
    frames: list[Atoms], cfg: DistillConfig, seed: int, work: Path
) -> tuple[list[Atoms], list[Atoms], list[Atoms]]:
    """Evenly spaced frames for the student (train and held-out test), rest in reserve.

    Decided once and written, so a resumed run trains on the same frames.
    """
    files = [work / f"{n}.extxyz" for n in ("train", "test", "pool")]
    if all(f.exists() for f in files):
        return tuple(read(f, ":") if f.stat().st_size else [] for f in files)
    n = len(frames)
    if n > cfg.max_frames:
        chosen = np.unique(np.linspace(0, n - 1, cfg.max_frames).round().astype(int))
    else:
        chosen = np.arange(n)
    rest = np.setdiff1d(np.arange(n), chosen)
    rng = np.random.default_rng([seed, 77])
    order = rng.permutation(chosen)
    n_test = max(1, round(cfg.test_fraction * len(order))) if len(order) > 1 else 0
    test = [frames[i] for i in sorted(order[:n_test])]
    train = [frames[i] for i in sorted(order[n_test:])]
    pool = [frames[i] for i in rest]
    for path, part in zip(files, (train, test, pool), strict=True):
        write_frames_atomic(path, part)
    return train, test, pool


def worst_predicted(
    pool: list[Atoms], graph: Path, type_map: list[str], n: int
) -> tuple[list[Atoms], list[Atoms]]:
    """The ``n`` reserve frames whose forces the student gets most wrong."""
    preds = predict(pool, student_calculator(graph, type_map))
    err = [float(np.abs(p.forces[1] - p.forces[0]).max()) for p in preds]
    order = np.argsort(err)[::-1]
    take = set(order[:n].tolist())
    added = [pool[i] for i in sorted(take)]
    rest = [a for i, a in enumerate(pool) if i not in take]
    return added, rest


# --- deepmd -------------------------------------------------------------------


def to_deepmd(frames: list[Atoms], type_map: list[str], out: Path) -> list[str]:
    """Frames as deepmd/npy systems (one per composition) with dpdata; their dirs."""
    import dpdata

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    systems = dpdata.MultiSystems(type_map=type_map)
    for atoms in frames:
        unknown = set(atoms.get_chemical_symbols()) - set(type_map)
        if unknown:
            raise PFDError(
                f"a frame holds {', '.join(sorted(unknown))}, which the student's "
                f"type_map {type_map} lacks; add it to distill.student.type_map"
            )
        systems.append(dpdata.LabeledSystem(atoms, fmt="ase/structure"))
    systems.to_deepmd_npy(str(tmp))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return sorted(str(p.parent) for p in out.glob("*/type.raw"))


_MAX_NBOR = re.compile(r"max_nbor_size:\s*\[([\d,\s]+)\]")


def resolved_sel(
    cfg: StudentConfig, data_root: Path, type_map: list[str], threads: int, log: Path
) -> list[int]:
    """``cfg.sel`` as numbers; 'auto[:FACTOR]': ``dp neighbor-stat`` of the data.

    Counted before training, not by ``dp train``, so that ``input.json`` holds
    the numbers the student is built with (``dp change-bias`` needs them).
    Rounded up to a multiple of 4, as DeePMD-kit's own ``sel: auto``.
    """
    if not isinstance(cfg.sel, str):
        return list(cfg.sel)
    factor = float(cfg.sel.split(":")[1]) if ":" in cfg.sel else 1.1
    args = ["neighbor-stat", "-s", str(data_root), "-r", str(cfg.rcut_A)]
    run_dp([*args, "-t", *type_map], data_root.parent, threads, log)
    found = _MAX_NBOR.findall(log.read_text())
    if not found:
        raise PFDError(f"dp neighbor-stat printed no max_nbor_size; see {log}")
    most = [int(n) for n in found[-1].replace(",", " ").split()]
    return [int(4 * np.ceil(n * factor / 4)) for n in most]


def deepmd_input(
    cfg: StudentConfig,
    type_map: list[str],
    train_systems: list[str],
    test_systems: list[str],
    seed: int,
    sel: list[int] | None = None,
) -> dict[str, Any]:
    """DeePMD-kit's training input for an ``se_e2_a`` student."""
    steps = cfg.steps
    return {
        "model": {
            "type_map": type_map,
            "descriptor": {
                "type": "se_e2_a",
                "rcut": cfg.rcut_A,
                "rcut_smth": cfg.rcut_smth_A,
                "sel": sel if sel is not None else cfg.sel,
                "neuron": cfg.embedding,
                "axis_neuron": cfg.axis_neuron,
                "resnet_dt": False,
                "type_one_side": True,
                "seed": seed,
            },
            "fitting_net": {"neuron": cfg.fitting, "resnet_dt": True, "seed": seed},
        },
        "learning_rate": {
            "type": "exp",
            "start_lr": cfg.start_lr,
            "stop_lr": cfg.stop_lr,
            "decay_steps": max(1, min(5000, steps // 40)),
        },
        "loss": {
            "type": "ener",
            "start_pref_e": cfg.start_pref_e,
            "limit_pref_e": cfg.limit_pref_e,
            "start_pref_f": cfg.start_pref_f,
            "limit_pref_f": cfg.limit_pref_f,
            "start_pref_v": cfg.start_pref_v,
            "limit_pref_v": cfg.limit_pref_v,
        },
        "training": {
            "training_data": {"systems": train_systems, "batch_size": cfg.batch_size},
            "validation_data": {
                "systems": test_systems,
                "batch_size": "auto",
                "numb_btch": 1,
            },
            "numb_steps": steps,
            "seed": seed,
            "disp_file": "lcurve.out",
            "disp_freq": max(1, min(500, steps // 20)),
            "save_freq": max(1, min(2000, steps // 10)),
        },
    }


def dp_env(threads: int) -> dict[str, str]:
    """Environment of a DeePMD-kit subprocess: its threads, TensorFlow quiet."""
    return os.environ | {
        "OMP_NUM_THREADS": str(threads),
        "DP_INTRA_OP_PARALLELISM_THREADS": str(threads),
        "DP_INTER_OP_PARALLELISM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "DP_BACKEND": "tensorflow",
    }


def run_dp(args: list[str], cwd: Path, threads: int, log: Path, on_line=None) -> None:
    """Run ``dp --tf ARGS`` in ``cwd``; a failure names the last log line."""
    dp = shutil.which("dp") or str(Path(sys.executable).parent / "dp")
    run_logged(
        [dp, "--tf", *args],
        what=f"DeePMD-kit 'dp {args[0]}'",
        cwd=cwd,
        env=dp_env(threads),
        log=log,
        on_line=on_line,
        append=True,
    )


def train_student(
    train: list[Atoms],
    test: list[Atoms],
    type_map: list[str],
    cfg: StudentConfig,
    round_dir: Path,
    config: RunConfig,
    report: Reporter,
    round_: int,
) -> Path:
    """Train (or resume training), freeze and compress one student; its model file."""
    final = round_dir / ("graph_c.pb" if cfg.compress else "graph.pb")
    data = round_dir.parent / "deepmd"
    train_root = data / f"train_round_{round_}"
    train_sys = to_deepmd(train, type_map, train_root)
    test_sys = to_deepmd(test, type_map, data / "test")
    if round_ == 1:
        _write_export(round_dir.parent, train, test)
    stat_log = data / f"neighbor_stat_round_{round_}.log"
    stat_log.unlink(missing_ok=True)
    sel = resolved_sel(cfg, train_root, type_map, 1, stat_log)
    spec = deepmd_input(
        cfg, type_map, train_sys, test_sys, seed=config.seed + round_, sel=sel
    )
    round_dir.mkdir(parents=True, exist_ok=True)
    input_file = round_dir / "input.json"
    if input_file.exists() and json.loads(input_file.read_text()) != spec:
        report.info(f"distill round {round_}: student settings changed, retraining")
        shutil.rmtree(round_dir)
        round_dir.mkdir(parents=True)
    if final.exists():
        return final
    write_json_atomic(input_file, spec)
    threads = config.model.threads
    log = round_dir / "dp.log"
    args = ["train", "input.json"]
    if (round_dir / "checkpoint").exists():
        args += ["--restart", "model.ckpt"]
        report.info(f"distill round {round_}: resuming training from its checkpoint")
    elif round_ > 1:
        previous = round_dir.parent / f"round_{round_ - 1}" / "model.ckpt"
        args += ["--init-model", str(previous)]
    report.info(
        f"distill round {round_}: training the se_e2_a student on {len(train)} frames, "
        f"{cfg.steps} steps ({threads} threads)"
    )
    with report.bar(f"student round {round_}", cfg.steps) as update:

        def progress(line: str) -> None:
            match = _BATCH.search(line)
            if match:
                update(int(match.group(1)))

        run_dp(args, round_dir, threads, log, progress)
    if cfg.refit_bias:  # the energy zero that force-dominated training leaves off
        bias = ["change-bias", "model.ckpt", "-s", str(train_root), "-m", "change"]
        curve = (round_dir / "lcurve.out").read_bytes()  # change-bias empties it
        run_dp([*bias, "-o", "graph.tmp.pb"], round_dir, threads, log)
        (round_dir / "lcurve.out").write_bytes(curve)
    else:
        run_dp(["freeze", "-o", "graph.tmp.pb"], round_dir, threads, log)
    os.replace(round_dir / "graph.tmp.pb", round_dir / "graph.pb")
    if cfg.compress:
        run_dp(
            ["compress", "-i", "graph.pb", "-o", "graph_c.tmp.pb"],
            round_dir,
            threads,
            log,
        )
        os.replace(round_dir / "graph_c.tmp.pb", final)
    return final


def _write_export(work: Path, train: list[Atoms], test: list[Atoms]) -> None:
    """The teacher-labelled data as one extxyz, for use elsewhere."""
    frames = [_tagged(a, "train") for a in train] + [_tagged(a, "test") for a in test]
    write_frames_atomic(work / "teacher_labelled.extxyz", frames)


def _tagged(atoms: Atoms, subset: str) -> Atoms:
    atoms.info["subset"] = subset
    return atoms


def student_calculator(model: Path, type_map: list[str] | None = None):
    """``deepmd.calculator.DP`` for a frozen student, checking its elements."""
    require_deepmd()
    from deepmd.calculator import DP

    if not Path(model).is_file():
        raise PFDError(f"student model '{model}' not found")
    with _quiet_stderr():  # DeePMD's ops library complains there is no CUDA
        calc = DP(model=str(model))
    if type_map is not None:
        lacking = sorted(set(type_map) - set(calc.dp.get_type_map()))
        if lacking:
            raise PFDError(
                f"student '{model}' has no type for {', '.join(lacking)}; "
                "retrain it with those elements in distill.student.type_map"
            )
    return calc


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (C-level messages of library loaders) for a moment."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def lammps_binary() -> str | None:
    """``lmp`` on PATH or next to this Python (deepmd-kit[lmp] in a venv)."""
    found = shutil.which("lmp")
    beside = Path(sys.executable).parent / "lmp"
    return found or (str(beside) if beside.is_file() else None)


# --- LAMMPS -------------------------------------------------------------------

LAMMPS_INPUT = """\
# NVT MD of {natoms} atoms with the distilled DeePMD student.
# Run: lmp -in in.lammps            (shorter: lmp -var STEPS 100 -in in.lammps)
variable        STEPS index {steps}
variable        TEMP index {temperature:g}
units           metal
boundary        {boundary}
atom_style      atomic
read_data       conf.lmp
pair_style      deepmd {model}
pair_coeff      * *
timestep        {timestep_ps:g}
velocity        all create ${{TEMP}} {seed} mom yes rot yes dist gaussian
fix             nvt all nvt temp ${{TEMP}} ${{TEMP}} {tdamp_ps:g}
thermo_style    custom step temp pe ke etotal press vol
thermo          {thermo}
run             ${{STEPS}}
"""


def write_lammps_input(
    atoms: Atoms, model: Path, type_map: list[str], config: RunConfig, out: Path
) -> Path:
    """``in.lammps`` and ``conf.lmp``: NVT of a large supercell with the student."""
    out.mkdir(parents=True, exist_ok=True)
    system = atoms.copy()
    periodic = bool(all(atoms.pbc))
    if periodic:
        reps = max(1, round((config.distill.lammps_atoms / len(atoms)) ** (1 / 3)))
        system = system.repeat(reps)
    else:
        system.center(vacuum=10.0)
    system.info = {}
    write(
        out / "conf.lmp",
        system,
        format="lammps-data",
        specorder=type_map,
        masses=True,
        atom_style="atomic",
    )
    dt_fs = config.explore.timestep_fs
    text = LAMMPS_INPUT.format(
        natoms=len(system),
        steps=10000,
        temperature=(config.explore.temperatures_K or [300.0])[0],
        boundary="p p p" if periodic else "s s s",
        model=os.path.relpath(model, out),
        timestep_ps=dt_fs / 1000,
        seed=config.seed + 4928459,
        tdamp_ps=100 * dt_fs / 1000,
        thermo=100,
    )
    (out / "in.lammps").write_text(text)
    return out / "in.lammps"
