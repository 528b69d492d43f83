"""DeePMD-kit ``se_e2_a`` (TensorFlow backend) as a :class:`pfd.students.Student`.

A training directory holds DeePMD-kit's ``input.json``, ``dp.log``,
``lcurve.out``, its checkpoint (``model.ckpt*``) and the frozen ``graph.pb``
(``graph_c.pb`` compressed). ``dp train --restart`` resumes a killed training;
the per-element energy bias is refitted after it (``dp change-bias``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from pfd._proc import run_logged
from pfd.config import StudentConfig
from pfd.db import write_json_atomic
from pfd.errors import PFDError
from pfd.progress import Reporter

_BATCH = re.compile(r"batch\s+(\d+)", re.IGNORECASE)
_MAX_NBOR = re.compile(r"max_nbor_size:\s*\[([\d,\s]+)\]")
#: what a training directory ships (when present)
SHIPPED = ("graph.pb", "graph_c.pb", "input.json", "lcurve.out")


def require_deepmd() -> None:
    """DeePMD-kit (TensorFlow backend) and dpdata must be importable."""
    for module in ("deepmd", "dpdata", "tensorflow"):
        if importlib.util.find_spec(module) is None:
            raise PFDError(
                f"distillation needs DeePMD-kit with TensorFlow ('{module}' is not "
                "installed): pip install 'pfd[deepmd]', or set distill.enabled: false"
            )


class DeepMDStudent:
    """A DeePMD-kit ``se_e2_a`` student trained with ``dp --tf``."""

    name = "deepmd"
    suffixes = (".pb",)

    def __init__(
        self,
        cfg: StudentConfig | None = None,
        type_map: list[str] | None = None,
        threads: int = 1,
    ) -> None:
        self.cfg = cfg or StudentConfig()
        self.type_map = type_map
        self.threads = threads

    def check_available(self) -> None:
        require_deepmd()

    def model_name(self) -> str:
        return "graph_c.pb" if self.cfg.compress else "graph.pb"

    def train(
        self,
        train: list[Atoms],
        test: list[Atoms],
        workdir: Path,
        *,
        seed: int = 0,
        init_from: Path | None = None,
        data_dir: Path | None = None,
        report: Reporter | None = None,
    ) -> Path:
        """Train (or resume), freeze, refit the bias, compress; the model file."""
        report = report or Reporter(quiet=True)
        type_map = self.type_map or sorted(
            {s for a in train for s in a.get_chemical_symbols()}
        )
        final = workdir / self.model_name()
        data = data_dir or workdir / "data"
        train_root = data / f"train_{workdir.name}"
        spec = self._spec(train, test, type_map, train_root, data / "test", seed)
        workdir.mkdir(parents=True, exist_ok=True)
        input_file = workdir / "input.json"
        if input_file.exists() and json.loads(input_file.read_text()) != spec:
            report.info(f"{workdir.name}: student settings changed, retraining")
            shutil.rmtree(workdir)
            workdir.mkdir(parents=True)
        if final.exists():
            return final
        write_json_atomic(input_file, spec)
        self._fit(workdir, init_from, len(train), report)
        self._freeze(workdir, train_root, final)
        return final

    def _spec(
        self,
        train: list[Atoms],
        test: list[Atoms],
        type_map: list[str],
        train_root: Path,
        test_root: Path,
        seed: int,
    ) -> dict[str, Any]:
        """The training input, with the data written and ``sel`` counted."""
        train_sys = to_deepmd(train, type_map, train_root)
        test_sys = to_deepmd(test, type_map, test_root)
        stat_log = train_root.parent / f"neighbor_stat_{train_root.name[6:]}.log"
        stat_log.unlink(missing_ok=True)
        sel = resolved_sel(self.cfg, train_root, type_map, 1, stat_log)
        return deepmd_input(self.cfg, type_map, train_sys, test_sys, seed, sel)

    def _fit(
        self, workdir: Path, init_from: Path | None, n_frames: int, report: Reporter
    ) -> None:
        """``dp train``: resumed from the checkpoint, or started from ``init_from``."""
        args = ["train", "input.json"]
        if (workdir / "checkpoint").exists():
            args += ["--restart", "model.ckpt"]
            report.info(f"{workdir.name}: resuming training from its checkpoint")
        elif init_from is not None:
            args += ["--init-model", str(init_from / "model.ckpt")]
        steps = self.cfg.steps
        report.info(
            f"{workdir.name}: training the se_e2_a student on {n_frames} frames, "
            f"{steps} steps ({self.threads} threads)"
        )
        with report.bar(f"student {workdir.name}", steps) as update:

            def progress(line: str) -> None:
                match = _BATCH.search(line)
                if match:
                    update(int(match.group(1)))

            run_dp(args, workdir, self.threads, workdir / "dp.log", progress)

    def _freeze(self, workdir: Path, train_root: Path, final: Path) -> None:
        """The frozen graph (energy bias refitted), compressed when asked."""
        log, threads = workdir / "dp.log", self.threads
        if self.cfg.refit_bias:  # the energy zero force-dominated training leaves off
            bias = ["change-bias", "model.ckpt", "-s", str(train_root), "-m", "change"]
            curve = (workdir / "lcurve.out").read_bytes()  # change-bias empties it
            run_dp([*bias, "-o", "graph.tmp.pb"], workdir, threads, log)
            (workdir / "lcurve.out").write_bytes(curve)
        else:
            run_dp(["freeze", "-o", "graph.tmp.pb"], workdir, threads, log)
        os.replace(workdir / "graph.tmp.pb", workdir / "graph.pb")
        if self.cfg.compress:
            args = ["compress", "-i", "graph.pb", "-o", "graph_c.tmp.pb"]
            run_dp(args, workdir, threads, log)
            os.replace(workdir / "graph_c.tmp.pb", final)

    def ship(self, workdir: Path, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED:
            if (workdir / name).exists():
                shutil.copyfile(workdir / name, out / name)
        return out / self.model_name()

    def resolve(self, model: str) -> Path:
        path = Path(model)
        if not path.is_file():
            raise PFDError(
                f"student model '{model}' not found: give a frozen DeePMD-kit "
                "graph (.pb), e.g. RUN_DIR/student/graph_c.pb"
            )
        return path

    def check_elements(self, model: Path, symbols: set[str]) -> None:
        self._check_types(model, self.calculator(model), symbols)

    def calculator(self, model: Path) -> Calculator:
        """``deepmd.calculator.DP`` for a frozen student, checking its elements."""
        require_deepmd()
        from deepmd.calculator import DP

        model = self.resolve(str(model))
        try:
            with quiet_stderr():  # DeePMD's ops library complains there is no CUDA
                calc = DP(model=str(model))
        except Exception as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise PFDError(
                f"'{model}' is not a frozen DeePMD-kit graph ({reason[:160]}); give "
                "the student's graph.pb or graph_c.pb"
            ) from err
        if self.type_map is not None:
            self._check_types(model, calc, set(self.type_map))
        return calc

    @staticmethod
    def _check_types(model: Path, calc: Calculator, symbols: set[str]) -> None:
        lacking = sorted(set(symbols) - set(calc.dp.get_type_map()))
        if lacking:
            raise PFDError(
                f"student '{model}' has no type for {', '.join(lacking)}; "
                "retrain it with those elements in distill.student.type_map"
            )

    def lammps_pair_lines(self, models: list[str]) -> list[str]:
        """``pair_style deepmd`` (several graphs: model deviation to a file)."""
        style = f"pair_style      deepmd {' '.join(models)}"
        if len(models) > 1:
            style += " out_freq 100 out_file model_devi.out"
        return [style, "pair_coeff      * *"]


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
    descriptor = {
        "type": "se_e2_a",
        "rcut": cfg.rcut_A,
        "rcut_smth": cfg.rcut_smth_A,
        "sel": sel if sel is not None else cfg.sel,
        "neuron": cfg.embedding,
        "axis_neuron": cfg.axis_neuron,
        "resnet_dt": False,
        "type_one_side": True,
        "seed": seed,
    }
    loss = {"type": "ener"} | {
        f"{when}_pref_{q}": getattr(cfg, f"{when}_pref_{q}")
        for q in ("e", "f", "v")
        for when in ("start", "limit")
    }
    return {
        "model": {
            "type_map": type_map,
            "descriptor": descriptor,
            "fitting_net": {"neuron": cfg.fitting, "resnet_dt": True, "seed": seed},
        },
        "learning_rate": {
            "type": "exp",
            "start_lr": cfg.start_lr,
            "stop_lr": cfg.stop_lr,
            "decay_steps": max(1, min(5000, steps // 40)),
        },
        "loss": loss,
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
    """Environment of a DeePMD-kit subprocess: its threads, TensorFlow quiet.

    ``threads`` go to TensorFlow's operator pool; OpenMP gets 1: the ops run
    OpenMP inside that pool, and on 2 cores OMP_NUM_THREADS=2 made a student
    2x slower to evaluate (0.107 vs 0.064 ms/atom-step, 512 Si atoms, ASE or
    LAMMPS) and 25 % slower to train (0.0157 vs 0.0122 s a batch). More cores
    for LAMMPS come from MPI ranks (:func:`pfd.students.lammps.lammps_speed`).
    """
    return os.environ | {
        "OMP_NUM_THREADS": "1",
        "DP_INTRA_OP_PARALLELISM_THREADS": str(threads),
        "DP_INTER_OP_PARALLELISM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "DP_BACKEND": "tensorflow",
    }


def run_dp(
    args: list[str],
    cwd: Path,
    threads: int,
    log: Path,
    on_line: Callable[[str], None] | None = None,
) -> None:
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


@contextlib.contextmanager
def quiet_stderr():
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
