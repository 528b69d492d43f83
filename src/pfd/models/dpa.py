"""DeePMD-kit PyTorch backend: DPA-2, DPA-3 (or any DeePMD ``.pt`` model) as teacher.

The foundation model is a file the user provides: a DeePMD-kit 3 PyTorch
checkpoint (``.pt``, e.g. ``DPA-3.1-3M.pt`` from AIS Square) or a frozen model
(``.pth``). Nothing is downloaded. Multi-head (multi-task) pretrained models
need ``model.head``, the branch to start from (DeePMD's ``--model-branch``).

- :meth:`DPABackend.refit_e0` is DeePMD's own ``dp --pt change-bias -m change``
  (least-squares shift of the per-element energy bias on the DFT frames).
- :meth:`DPABackend.fine_tune` is ``dp --pt train input.json --finetune MODEL``
  with the pretrained model's own ``model`` section, DeePMD-kit's usual loss
  prefactors (energy 0.02→1, force 1000→1, virial 0.02→1 when every frame has
  a stress) and pfd's epochs, batch size and per-epoch learning-rate decay
  turned into steps. The result is frozen (``dp --pt freeze``) to a
  single-head TorchScript model, ``model.pth``, the file the loop keeps.
- Training runs in a subprocess, ``python -m pfd.models._dp_pt``, which is
  ``dp --pt`` importable with any torch (see :mod:`pfd.models._dp_pt`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator

from pfd._proc import run_logged
from pfd.config import FineTuneConfig
from pfd.errors import PFDError
from pfd.models import EpochCallback, TrainingJob, check_covered, has_stress

_BATCH = re.compile(r"Batch\s+(\d+):")
SUFFIXES = (".pt", ".pth")


def _require_deepmd() -> None:
    if importlib.util.find_spec("deepmd") is None:
        raise PFDError(
            "model backend 'dpa' needs DeePMD-kit; pip install 'pfd[deepmd]' "
            "(after torch==2.13.0, see scripts/install.sh)"
        )


def model_params(path: Path) -> dict[str, Any]:
    """The ``model`` section a DeePMD PyTorch model was built from."""
    import torch

    try:
        if path.suffix == ".pth":
            return json.loads(torch.jit.load(str(path)).get_model_def_script())
        state = torch.load(path, map_location="cpu", weights_only=False)
        state = state.get("model", state)
        return state["_extra_state"]["model_params"]
    except Exception as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise PFDError(
            f"cannot read DeePMD-kit model '{path}': {reason[:200]}; give a DeePMD-kit "
            "3 PyTorch checkpoint (.pt) or frozen model (.pth)"
        ) from err


def _single(params: dict[str, Any], head: str | None, path: Path) -> dict[str, Any]:
    """The one branch of ``params`` that pfd uses (``head`` for multi-head files)."""
    branches = params.get("model_dict")
    if branches is None:
        return params
    if head not in branches:
        raise PFDError(
            f"'{path.name}' is a multi-head model: set model.head to one of "
            f"{sorted(branches)} (the branch to fine-tune from)"
        )
    return branches[head]


@contextlib.contextmanager
def _unpatched_torch() -> Iterator[None]:
    """``torch.index_select`` and ``torch.select`` as torch defines them.

    PyTorch Geometric (imported with SevenNet) replaces both with Python
    wrappers that TorchScript cannot compile, and DeePMD-kit compiles a ``.pt``
    model when it loads it: a DPA-3 then fails to load in any process that has
    imported SevenNet (the report, ``pfd test``, a test session).
    """
    import torch

    patched = sys.modules.get("torch_geometric.hash_tensor")
    saved = torch.index_select, torch.select
    if patched is not None:
        torch.index_select = getattr(patched, "_old_index_select", saved[0])
        torch.select = getattr(patched, "_old_select", saved[1])
    try:
        yield
    finally:
        torch.index_select, torch.select = saved


def pt_env(threads: int) -> dict[str, str]:
    """Environment of ``dp --pt``: its threads, and no data-loader processes.

    DeePMD's PyTorch data loader starts worker processes that share tensors
    through torch's shared-memory manager; on a loaded machine its connection
    timed out and killed training. A fine-tuning set is small: load it inline
    (unless the user sets ``NUM_WORKERS``).
    """
    from pfd.students.deepmd import dp_env

    return dp_env(threads) | {
        "OMP_NUM_THREADS": str(threads),  # torch's own threads
        "DP_BACKEND": "pytorch",
        "NUM_WORKERS": os.environ.get("NUM_WORKERS", "0"),
    }


class DPABackend:
    """DeePMD-kit PyTorch models (DPA-2, DPA-3) as a ``ForceFieldBackend``."""

    name = "dpa"
    default_checkpoint: str | None = None
    supports_replay = False

    def __init__(
        self, device: str = "cpu", threads: int = 2, head: str | None = None
    ) -> None:
        self.device = device
        self.threads = threads
        self.head = head

    def resolve(self, model: str) -> Path:
        _require_deepmd()
        path = Path(model)
        if path.suffix not in SUFFIXES or not path.is_file():
            raise PFDError(
                f"model checkpoint '{model}' not found: the 'dpa' backend needs a "
                "local DeePMD-kit PyTorch model file (.pt or .pth, e.g. DPA-3.1-3M.pt "
                "from AIS Square) next to the YAML or as an absolute path; nothing "
                "is downloaded"
            )
        return path

    def _params(self, model: Path) -> dict[str, Any]:
        return _single(model_params(model), self.head, model)

    def _multi_head(self, model: Path) -> bool:
        return "model_dict" in model_params(model)

    def type_map(self, model: Path) -> list[str]:
        return list(self._params(model)["type_map"])

    def check_elements(self, model: Path, symbols: set[str]) -> None:
        missing = sorted(symbols - set(self.type_map(model)))
        check_covered(model, missing, "its type_map")

    def calculator(self, model: Path) -> Calculator:
        _require_deepmd()
        import torch

        from pfd.models._dp_pt import import_deepmd_pt

        torch.set_num_threads(self.threads)
        import_deepmd_pt()
        from deepmd.calculator import DP

        head = self.head if self._multi_head(model) else None
        with _unpatched_torch():  # DeePMD compiles a .pt model with TorchScript
            return DP(str(model), head=head)

    def _data(self, model: Path, frames: list[Atoms], out: Path) -> Path:
        from pfd.students.deepmd import to_deepmd

        to_deepmd(frames, self.type_map(model), out)
        return out

    def _dp(
        self,
        args: list[str],
        cwd: Path,
        log: Path,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        cmd = [sys.executable, "-m", "pfd.models._dp_pt", *args]
        what = f"DeePMD-kit 'dp --pt {args[0]}'"
        run_logged(
            cmd, what=what, cwd=cwd, env=pt_env(self.threads), log=log, on_line=on_line
        )

    def _branch(self, model: Path) -> list[str]:
        return ["--model-branch", self.head] if self._multi_head(model) else []

    def refit_e0(self, model: Path, frames: list[Atoms], out: Path) -> Path:
        out = out.with_suffix(Path(model).suffix)  # change-bias keeps the format
        out.parent.mkdir(parents=True, exist_ok=True)
        work = out.parent / (out.stem + "_e0")
        data = self._data(model, frames, work / "data")
        tmp = out.with_name(out.stem + ".tmp" + out.suffix)
        args = ["change-bias", str(Path(model).resolve()), "-s", str(data)]
        args += ["-m", "change", "-o", str(tmp.resolve()), *self._branch(model)]
        self._dp(args, work, work / "change_bias.log")
        os.replace(tmp, out)
        return out

    def fine_tune(self, job: TrainingJob, on_epoch: EpochCallback = None) -> Path:
        # the training tool runs in workdir: paths given to it must be absolute
        model, train, valid, workdir, cfg, seed = job.prepared()
        params = self._params(model)
        systems = self._data(model, train, workdir / "train")
        per_epoch = max(1, math.ceil(len(train) / cfg.batch_size))
        steps = cfg.epochs * per_epoch
        stress = all(has_stress(a) for a in train + valid)
        training: dict[str, Any] = {
            "training_data": {"systems": str(systems), "batch_size": cfg.batch_size},
            "numb_steps": steps,
            "seed": seed,
            "disp_file": "lcurve.out",
            "disp_freq": per_epoch,
            "save_freq": steps,
        }
        if valid:
            valid_dir = self._data(model, valid, workdir / "valid")
            training["validation_data"] = {
                "systems": str(valid_dir),
                "batch_size": cfg.batch_size,
                "numb_btch": 1,
            }
        job = {
            "model": params,
            **_schedule_and_loss(cfg, per_epoch, stress),
            "training": training,
        }
        (workdir / "input.json").write_text(json.dumps(job, indent=1))
        for old in workdir.glob("model.ckpt*.pt"):
            old.unlink()

        def progress(line: str) -> None:
            match = _BATCH.search(line)
            if match and on_epoch:
                on_epoch(min(cfg.epochs, int(match.group(1)) // per_epoch), cfg.epochs)

        args = ["train", "input.json", "--finetune", str(model), *self._branch(model)]
        self._dp(args, workdir, workdir / "train.log", progress)
        trained = workdir / "model.ckpt.pt"
        if not trained.exists():
            raise PFDError(
                f"DeePMD-kit fine-tuning wrote no model; see {workdir}/train.log"
            )
        shutil.copyfile(trained.resolve(), workdir / "model.pt")
        for old in workdir.glob("model.ckpt*.pt"):
            old.unlink()
        freeze = ["freeze", "-c", "model.pt", "-o", "model.tmp.pth"]
        self._dp(freeze, workdir, workdir / "freeze.log")
        os.replace(workdir / "model.tmp.pth", workdir / "model.pth")
        return workdir / "model.pth"


def _schedule_and_loss(
    cfg: FineTuneConfig, per_epoch: int, stress: bool
) -> dict[str, Any]:
    """DeePMD's learning-rate schedule (pfd's per-epoch decay) and usual loss."""
    start = cfg.learning_rate
    return {
        "learning_rate": {
            "type": "exp",
            "start_lr": start,
            "stop_lr": start * cfg.lr_decay**cfg.epochs,
            "decay_steps": per_epoch,
        },
        "loss": {
            "type": "ener",
            "start_pref_e": 0.02,
            "limit_pref_e": 1.0,
            "start_pref_f": 1000.0,
            "limit_pref_f": 1.0,
            "start_pref_v": 0.02 if stress else 0.0,
            "limit_pref_v": 1.0 if stress else 0.0,
        },
    }
