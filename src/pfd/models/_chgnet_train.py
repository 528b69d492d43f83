"""CHGNet fine-tuning in a subprocess: ``python -m pfd.models._chgnet_train WORKDIR``.

WORKDIR holds ``job.json`` (written by :meth:`CHGNetBackend.fine_tune`),
``train.extxyz`` and, optionally, ``valid.extxyz``. This runs CHGNet's own
``Trainer`` (Adam, Huber loss, exponential learning-rate decay per epoch, the
composition model frozen: its E0 were refitted before) and writes
``model.pth.tar``: the epoch with the lowest validation force MAE, or the last
epoch without validation frames. After each epoch it prints ``pfd-epoch N/M``;
``history.json`` keeps CHGNet's per-epoch MAEs (eV/atom, eV/Å, GPa).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
from ase.io import read

from pfd.models.chgnet import load_model, save_model, training_labels


def _trainer_class() -> type:
    from chgnet.trainer import Trainer

    class _Trainer(Trainer):
        """CHGNet's Trainer that keeps one model file and reports each epoch."""

        pfd_out: Path
        pfd_has_valid: bool

        def save_checkpoint(self, epoch: int, mae_error: dict, save_dir: str) -> None:
            best = min(self.training_history["f"]["val"])
            if not self.pfd_has_valid or mae_error["f"] <= best:
                save_model(self.model, self.pfd_out, pfd_epoch=epoch + 1)
            maes = " ".join(f"{k}={v:.4f}" for k, v in mae_error.items())
            print(f"pfd-epoch {epoch + 1}/{self.epochs} val MAE {maes}", flush=True)

    return _Trainer


def _loader(dataset: Any, batch_size: int, seed: int | None):
    import torch
    from chgnet.data.dataset import collate_graphs
    from torch.utils.data import DataLoader

    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=seed is not None,
        generator=generator,
        collate_fn=collate_graphs,
    )


def main(workdir: str) -> int:
    import torch
    from chgnet.data.dataset import StructureData

    work = Path(workdir)
    job = json.loads((work / "job.json").read_text())
    seed = int(job["seed"])
    torch.set_num_threads(int(job["threads"]))
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds any legacy numpy use inside chgnet
    torch.manual_seed(seed)

    model = load_model(Path(job["model"]))
    train = read(work / "train.extxyz", ":")
    valid_path = work / "valid.extxyz"
    valid = read(valid_path, ":") if valid_path.exists() else []

    def dataset(frames: list) -> StructureData:
        return StructureData(
            **training_labels(frames, job["stress"]),
            graph_converter=model.graph_converter,
            shuffle=False,
        )

    train_loader = _loader(dataset(train), job["batch_size"], seed)
    # an empty validation loader costs nothing: CHGNet then reports zero MAEs
    valid_loader = _loader(dataset(valid) if valid else [], job["batch_size"], None)
    # CHGNet steps the scheduler ten times per epoch (once per batch when fewer)
    n = len(train_loader)
    steps = len({k * n // 10 for k in range(1, 11)} - {0})
    trainer = _trainer_class()(
        model=model,
        targets="efs" if job["stress"] else "ef",
        energy_loss_ratio=1.0,
        force_loss_ratio=job["force_weight"],
        stress_loss_ratio=job["stress_weight"],
        optimizer="Adam",
        scheduler="ExponentialLR",
        scheduler_params={"gamma": job["lr_decay"] ** (1.0 / steps)},
        criterion="Huber",
        **({"delta": job["huber_delta"]} if job.get("huber_delta") else {}),
        epochs=job["epochs"],
        learning_rate=job["learning_rate"],
        print_freq=max(n, 1),
        use_device=job["device"],
    )
    trainer.pfd_out = work / "model.pth.tar"
    trainer.pfd_has_valid = bool(valid)
    trainer.train(
        train_loader,
        valid_loader,
        save_dir=str(work),
        train_composition_model=False,
    )
    history = trainer.training_history
    (work / "history.json").write_text(json.dumps(history, indent=1))
    done = len(history["e"]["train"])
    if done < job["epochs"]:
        print(f"CHGNet training stopped at epoch {done}: the loss became NaN")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
