"""SevenNet backend: checkpoints shipped in the sevenn wheel, SevenNet's own trainer.

Fine-tuning runs ``sevenn train input.yaml`` in a subprocess (its own threads,
its own log), continuing from the (E0-refitted) checkpoint with a fresh optimiser.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, chemical_symbols
from ase.io import write

from pfd._proc import run_logged
from pfd.config import FineTuneConfig
from pfd.errors import PFDError

#: Names of checkpoints that ship inside the sevenn wheel (nothing is downloaded).
SHIPPED = {
    "7net-0": "SEVENNET_0_11Jul2024",
    "sevennet-0": "SEVENNET_0_11Jul2024",
    "7net-0_22may2024": "SEVENNET_0_22May2024",
    "7net-l3i5": "SEVENNET_l3i5",
    "sevennet-l3i5": "SEVENNET_l3i5",
}

_EPOCH = re.compile(r"Epoch (\d+)/(\d+)")


def _require_sevenn() -> None:
    if importlib.util.find_spec("sevenn") is None:
        raise PFDError(
            "model backend 'sevennet' needs the sevenn package; "
            "run scripts/install.sh or pip install 'pfd[sevennet]'"
        )


class SevenNetBackend:
    """SevenNet-0 and friends as a :class:`pfd.models.ForceFieldBackend`."""

    name = "sevennet"

    def __init__(self, device: str = "cpu", threads: int = 2) -> None:
        self.device = device
        self.threads = threads

    def resolve(self, model: str) -> Path:
        _require_sevenn()
        key = model.lower()
        if key in SHIPPED:
            from sevenn import _const

            path = Path(getattr(_const, SHIPPED[key]))
            if not path.is_file():
                raise PFDError(
                    f"SevenNet checkpoint '{model}' is not in this sevenn install "
                    f"({path}); reinstall sevenn==0.13.0 or give a checkpoint file"
                )
            return path
        path = Path(model)
        if not path.is_file():
            raise PFDError(
                f"model checkpoint '{model}' not found: give a local .pth file or one "
                f"of the shipped names {sorted(set(SHIPPED))}; nothing is downloaded"
            )
        return path

    def _checkpoint(self, model: Path) -> dict:
        import torch

        try:
            return torch.load(model, map_location="cpu", weights_only=False)
        except Exception as err:
            raise PFDError(f"cannot load SevenNet checkpoint '{model}': {err}") from err

    def check_elements(self, model: Path, symbols: set[str]) -> None:
        type_map = self._checkpoint(model)["config"]["_type_map"]
        missing = sorted(s for s in symbols if atomic_numbers[s] not in type_map)
        if missing:
            raise PFDError(
                f"the foundation model '{model.name}' does not cover element(s) "
                f"{', '.join(missing)}; choose a model trained on them"
            )

    def calculator(self, model: Path) -> Calculator:
        _require_sevenn()
        import torch
        from sevenn.calculator import SevenNetCalculator

        torch.set_num_threads(self.threads)
        with warnings.catch_warnings():  # "no tensor product accelerator" on CPU
            warnings.simplefilter("ignore", UserWarning)
            return SevenNetCalculator(model=str(model), device=self.device)

    def refit_e0(self, model: Path, frames: list[Atoms], out: Path) -> Path:
        import torch

        from pfd.models.e0 import fit_e0_shift, predicted_energies

        predicted = predicted_energies(frames, self.calculator(model))
        shifts = fit_e0_shift(frames, predicted)
        ckpt = self._checkpoint(model)
        type_map = ckpt["config"]["_type_map"]
        key = "rescale_atomic_energy.shift"
        shift = ckpt["model_state_dict"][key].clone()
        if shift.numel() == 1:  # one global shift: only a single element can be fitted
            shift += float(np.mean(list(shifts.values())))
        else:
            for z, delta in shifts.items():
                shift[type_map[z]] += delta
        ckpt["model_state_dict"][key] = shift
        ckpt["config"]["shift"] = shift.tolist()
        ckpt["pfd_e0_shift_eV"] = {chemical_symbols[z]: d for z, d in shifts.items()}
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, out)
        return out

    def fine_tune(
        self,
        model: Path,
        train: list[Atoms],
        valid: list[Atoms],
        workdir: Path,
        cfg: FineTuneConfig,
        seed: int,
        on_epoch: Callable[[int, int], None] | None = None,
    ) -> Path:
        import yaml
        from sevenn.checkpoint import SevenNetCheckpoint

        workdir.mkdir(parents=True, exist_ok=True)
        write(workdir / "train.extxyz", train)
        stress = all(all(a.pbc) for a in train + valid)
        with warnings.catch_warnings():  # "checkpoint version too old" for 7net-0
            warnings.simplefilter("ignore", UserWarning)
            spec = SevenNetCheckpoint(str(model)).yaml_dict("continue")
        spec["train"] = {
            "random_seed": seed,
            "is_train_stress": stress,
            "epoch": cfg.epochs,
            "loss": "Huber",
            "loss_param": {"delta": 0.01},
            "optimizer": "adam",
            "optim_param": {"lr": cfg.learning_rate},
            "scheduler": "exponentiallr",
            "scheduler_param": {"gamma": cfg.lr_decay},
            "force_loss_weight": cfg.force_weight,
            "stress_loss_weight": cfg.stress_weight if stress else 0.0,
            "per_epoch": cfg.epochs,
            "error_record": [
                ["Energy", "RMSE"],
                ["Force", "RMSE"],
                ["TotalLoss", "None"],
            ]
            + ([["Stress", "RMSE"]] if stress else []),
            "continue": {
                "checkpoint": str(model),
                "reset_optimizer": True,
                "reset_scheduler": True,
                "reset_epoch": True,
            },
        }
        spec["data"] = {
            "batch_size": cfg.batch_size,
            "load_trainset_path": [str(workdir / "train.extxyz")],
        }
        if valid:
            write(workdir / "valid.extxyz", valid)
            spec["data"]["load_validset_path"] = [str(workdir / "valid.extxyz")]
        (workdir / "input.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        self._run_sevenn(workdir, cfg.epochs, on_epoch)
        best = workdir / "checkpoint_best.pth"
        final = workdir / f"checkpoint_{cfg.epochs}.pth"
        result = best if valid and best.exists() else final
        if not result.exists():
            raise PFDError(
                f"SevenNet training wrote no checkpoint; see {workdir}/log.sevenn"
            )
        return result

    def _run_sevenn(
        self, workdir: Path, epochs: int, on_epoch: Callable[[int, int], None] | None
    ) -> None:
        env = os.environ | {"OMP_NUM_THREADS": str(self.threads)}
        cmd = [
            sys.executable,
            "-c",
            "from sevenn.main.sevenn import main; main()",
            "train",
            "input.yaml",
            "-w",
            str(workdir),
            "-s",
        ]

        def progress(line: str) -> None:
            match = _EPOCH.search(line)
            if match and on_epoch:
                on_epoch(int(match.group(1)), epochs)

        run_logged(
            cmd,
            what="SevenNet fine-tuning",
            cwd=workdir,
            env=env,
            log=workdir / "stdout.log",
            on_line=progress,
        )
