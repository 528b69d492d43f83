"""SevenNet backend: checkpoints shipped in the sevenn wheel, SevenNet's own trainer.

Fine-tuning runs ``sevenn train input.yaml`` in a subprocess (its own threads,
its own log), continuing from the (E0-refitted) checkpoint with a fresh optimiser.

Multi-fidelity checkpoints (``7net-mf-0``: modalities ``PBE`` and ``R2SCAN``)
are used at one modality, ``model.head`` (default: the checkpoint's own default,
``PBE`` for ``7net-mf-0``): the calculator predicts at it, the E0 refit shifts
its row of per-element energies, and fine-tuning labels every DFT frame with it
(SevenNet's ``data_modality``), so the other modality's weights are kept.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers, chemical_symbols
from ase.io import write

from pfd._proc import run_logged
from pfd.config import FineTuneConfig
from pfd.errors import PFDError
from pfd.models import EpochCallback, TrainingJob, check_covered, has_stress

#: Names of checkpoints that ship inside the sevenn wheel (nothing is downloaded).
SHIPPED = {
    "7net-0": "SEVENNET_0_11Jul2024",
    "sevennet-0": "SEVENNET_0_11Jul2024",
    "7net-0_22may2024": "SEVENNET_0_22May2024",
    "7net-l3i5": "SEVENNET_l3i5",
    "sevennet-l3i5": "SEVENNET_l3i5",
    "7net-mf-0": "SEVENNET_MF_0",
    "sevennet-mf-0": "SEVENNET_MF_0",
}

_EPOCH = re.compile(r"Epoch (\d+)/(\d+)")
#: SevenNet's own Huber δ, used unless finetune.huber_delta is set
SEVENN_HUBER_DELTA = 0.01


def _require_sevenn() -> None:
    if importlib.util.find_spec("sevenn") is None:
        raise PFDError(
            "model backend 'sevennet' needs the sevenn package; "
            "run scripts/install.sh or pip install 'pfd[sevennet]'"
        )


class SevenNetBackend:
    """SevenNet-0 and friends as a :class:`pfd.models.ForceFieldBackend`."""

    name = "sevennet"
    default_checkpoint: str | None = "7net-0"
    supports_replay = False
    #: learns TrainingJob.replay with a per-dataset loss weight (sevenn use_weight)
    supports_weighted_replay = True

    def __init__(
        self, device: str = "cpu", threads: int = 2, head: str | None = None
    ) -> None:
        self.device = device
        self.threads = threads
        self.head = head

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

    def modality(self, model: Path) -> str | None:
        """The modality (fidelity) used of a multi-fidelity checkpoint, else None."""
        config = self._checkpoint(model)["config"]
        modalities = list(config.get("_modal_map") or {})
        if not config.get("use_modality") or not modalities:
            if self.head:
                raise PFDError(
                    f"SevenNet checkpoint '{model.name}' has one fidelity, no "
                    f"modality '{self.head}'; remove model.head"
                )
            return None
        modal = self.head or config.get("default_modal") or modalities[0]
        if modal not in modalities:
            raise PFDError(
                f"SevenNet checkpoint '{model.name}' has no modality '{modal}'; set "
                f"model.head to one of {', '.join(modalities)}"
            )
        return modal

    def check_elements(self, model: Path, symbols: set[str]) -> None:
        self.modality(model)  # a wrong model.head fails before any work
        type_map = self._checkpoint(model)["config"]["_type_map"]
        missing = sorted(s for s in symbols if atomic_numbers[s] not in type_map)
        check_covered(model, missing)

    def calculator(self, model: Path) -> Calculator:
        _require_sevenn()
        import torch
        from sevenn.calculator import SevenNetCalculator

        torch.set_num_threads(self.threads)
        with warnings.catch_warnings():  # "no tensor product accelerator" on CPU
            warnings.simplefilter("ignore", UserWarning)
            return SevenNetCalculator(
                model=str(model), device=self.device, modal=self.modality(model)
            )

    def refit_e0(self, model: Path, frames: list[Atoms], out: Path) -> Path:
        import torch

        from pfd.models.e0 import fit_e0_shift, predicted_energies

        predicted = predicted_energies(frames, self.calculator(model))
        shifts = fit_e0_shift(frames, predicted)
        ckpt = self._checkpoint(model)
        type_map = ckpt["config"]["_type_map"]
        key = "rescale_atomic_energy.shift"
        shift = ckpt["model_state_dict"][key].clone()
        modal = self.modality(model)
        row = shift[ckpt["config"]["_modal_map"][modal]] if shift.dim() == 2 else shift
        if row.numel() == 1:  # one global shift: only a single element can be fitted
            row += float(np.mean(list(shifts.values())))
        else:
            for z, delta in shifts.items():
                row[type_map[z]] += delta
        ckpt["model_state_dict"][key] = shift
        ckpt["config"]["shift"] = shift.tolist()
        ckpt["pfd_e0_shift_eV"] = {chemical_symbols[z]: d for z, d in shifts.items()}
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, out)
        return out

    def fine_tune(self, job: TrainingJob, on_epoch: EpochCallback = None) -> Path:
        import yaml
        from sevenn.checkpoint import SevenNetCheckpoint

        # the training tool runs in workdir: paths given to it must be absolute
        model, train, valid, workdir, cfg, seed = job.prepared()
        # sevenn collates every frame's info into one batch: the same keys (none)
        write(workdir / "train.extxyz", _bare(train))
        # stress only if every frame has one: with a molecule (not periodic) in
        # the set, energies and forces only (is_train_stress false, weight 0)
        stress = all(has_stress(a) for a in [*train, *valid, *job.replay])
        with warnings.catch_warnings():  # "checkpoint version too old" for 7net-0
            warnings.simplefilter("ignore", UserWarning)
            spec = SevenNetCheckpoint(str(model)).yaml_dict("continue")
        modal = self.modality(model)
        # a multi-fidelity model keeps its modality switches (use_modal_wise_shift)
        modal_data = {k: v for k, v in spec["data"].items() if "modal" in k}
        spec["train"] = _train_section(model, cfg, seed, stress)

        if modal is not None:
            spec["train"]["use_modality"] = True
        spec["data"] = {
            **modal_data,
            "batch_size": cfg.batch_size,
            "load_trainset_path": _dataset(workdir / "train.extxyz", modal),
        }
        if job.replay:
            # a second training set whose loss terms weigh replay_weights
            write(workdir / "replay.extxyz", _bare(job.replay))
            spec["train"]["use_weight"] = True
            spec["data"]["load_trainset_path"] += _dataset(
                workdir / "replay.extxyz", modal, job.replay_weights
            )
        if valid:
            write(workdir / "valid.extxyz", _bare(valid))
            spec["data"]["load_validset_path"] = _dataset(
                workdir / "valid.extxyz", modal
            )
        (workdir / "input.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        self._run_sevenn(workdir, cfg.epochs, on_epoch)
        best = workdir / "checkpoint_best.pth"
        final = workdir / f"checkpoint_{cfg.epochs}.pth"
        result = best if valid and best.exists() else final
        if not result.exists():
            raise PFDError(
                f"SevenNet training wrote no checkpoint; see {workdir}/log.sevenn"
            )
        if modal is not None:  # sevenn drops default_modal: the trained one is it
            import torch

            ckpt = self._checkpoint(result)
            ckpt["config"]["default_modal"] = modal
            torch.save(ckpt, result)
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


def _bare(frames: Sequence[Atoms]) -> list[Atoms]:
    """Copies of labelled frames with their labels only: no info, no momenta."""
    out = []
    for atoms in frames:
        bare = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        bare.calc = SinglePointCalculator(bare, **atoms.calc.results)
        out.append(bare)
    return out


def _dataset(
    path: Path, modal: str | None, weights: dict[str, float] | None = None
) -> list:
    """One entry of sevenn's ``load_*set_path``: a file, with its modality (a
    multi-fidelity model) and loss weights (``use_weight``) when given."""
    if modal is None and weights is None:
        return [str(path)]
    entry: dict[str, Any] = {"file_list": [{"file": str(path)}]}
    if modal is not None:
        entry["data_modality"] = modal
    if weights is not None:
        entry["data_weight"] = dict(weights)
    return [entry]


def _train_section(
    model: Path, cfg: FineTuneConfig, seed: int, stress: bool
) -> dict[str, Any]:
    """The ``train`` section of sevenn's input: Huber loss, Adam, per-epoch decay."""
    return {
        "random_seed": seed,
        "is_train_stress": stress,
        "epoch": cfg.epochs,
        "loss": "Huber",
        "loss_param": {"delta": cfg.huber_delta or SEVENN_HUBER_DELTA},
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
