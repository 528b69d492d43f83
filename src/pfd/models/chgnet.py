"""CHGNet backend: checkpoints shipped in the chgnet wheel, CHGNet's own trainer.

Conventions (checked in ``tests/models/test_chgnet.py``):

- CHGNet predicts the energy *per atom*; its ASE calculator multiplies by the
  number of atoms. Its ``AtomRef`` composition model holds one reference energy
  per element (eV per atom of that element), the E0 that :meth:`refit_e0` shifts.
- CHGNet predicts stress in GPa as ``(1/V) dE/d(strain)``, ASE's sign (positive
  = tensile); its ASE calculator converts to eV/Å³. Its *training* labels are
  VASP's stress instead (kBar, positive = compressive): ``StructureData``
  multiplies them by -0.1. :func:`training_labels` does that conversion.

Fine-tuning runs ``python -m pfd.models._chgnet_train WORKDIR`` in a subprocess
(its own threads, its own log) with a fresh optimiser; the result is a file that
``CHGNet.from_file`` reads, and so does :meth:`CHGNetBackend.calculator`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, chemical_symbols
from ase.io import write
from ase.units import GPa

from pfd._proc import run_logged
from pfd.errors import PFDError
from pfd.models import EpochCallback, TrainingJob, check_covered, has_stress

if TYPE_CHECKING:
    from chgnet.model import CHGNet

#: Checkpoints shipped inside the chgnet wheel (nothing is downloaded):
#: pfd name -> (``CHGNet.load`` model_name, file under ``chgnet/pretrained``).
SHIPPED: dict[str, tuple[str, str]] = {
    "chgnet-0.3.0": ("0.3.0", "0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar"),
    "chgnet-0.2.0": ("0.2.0", "0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar"),
    "chgnet-r2scan": (
        "r2scan",
        "r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
    ),
}
ALIASES = {"chgnet": "chgnet-0.3.0"}
DEFAULT = "chgnet-0.3.0"
#: CHGNet's composition model and embeddings cover H (1) to Pu (94).
MAX_Z = 94
#: epoch progress printed by the training subprocess
EPOCH_LINE = re.compile(r"^pfd-epoch (\d+)/(\d+)")


def _require_chgnet() -> None:
    if importlib.util.find_spec("chgnet") is None:
        raise PFDError(
            "model backend 'chgnet' needs the chgnet package; "
            "pip install 'pfd[chgnet]' (after torch==2.13.0, see scripts/install.sh)"
        )


def _pretrained_dir() -> Path:
    import chgnet

    return Path(chgnet.__file__).parent / "pretrained"


def _shipped_name(path: Path) -> str | None:
    """The ``CHGNet.load`` name of a shipped checkpoint file, else None."""
    here = Path(path).resolve()
    for name, relative in SHIPPED.values():
        if here == (_pretrained_dir() / relative).resolve():
            return name
    return None


def load_model(path: Path) -> CHGNet:
    """A CHGNet model from a shipped checkpoint or a file this backend wrote.

    Shipped files go through ``CHGNet.load``, which sets what the file lacks
    (0.2.0 needs ``mlp_out_bias=True``); it reads the bundled file, no network.
    """
    from chgnet.model import CHGNet

    name = _shipped_name(path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # "CHGNet ... initialized"
            if name is not None:
                return CHGNet.load(model_name=name, use_device="cpu", verbose=False)
            return CHGNet.from_file(str(path))
    except Exception as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise PFDError(
            f"cannot load CHGNet model '{path}': {reason}; give a file written by "
            "pfd's chgnet backend or Trainer.save, or a shipped name"
        ) from err


def save_model(model: CHGNet, out: Path, **extra: Any) -> Path:
    """Write ``model`` as ``CHGNet.from_file`` reads it (plus pfd's notes)."""
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save({"model": model.as_dict(), **extra}, tmp)
    os.replace(tmp, out)
    return out


def training_labels(frames: list[Atoms], with_stress: bool) -> dict[str, list]:
    """CHGNet ``StructureData`` arguments from labelled ASE frames.

    Energies per atom (eV/atom), forces (eV/Å), stresses as VASP prints them
    (kBar, positive = compressive, 3x3), because ``StructureData`` multiplies
    them by -0.1 to reach CHGNet's GPa with ASE's sign. Magnetic moments absent.
    """
    from ase.stress import voigt_6_to_full_3x3_stress
    from pymatgen.io.ase import AseAtomsAdaptor

    out: dict[str, list] = {"structures": [], "energies": [], "forces": []}
    if with_stress:
        out["stresses"] = []
    for atoms in frames:
        bare = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        out["structures"].append(AseAtomsAdaptor.get_structure(bare))
        out["energies"].append(float(atoms.get_potential_energy()) / len(atoms))
        out["forces"].append(np.asarray(atoms.get_forces()).tolist())
        if with_stress:
            ase_stress = voigt_6_to_full_3x3_stress(atoms.get_stress(voigt=True))
            out["stresses"].append((-10.0 * ase_stress / GPa).tolist())
    return out


def _chgnet_calculator_class() -> type[Calculator]:
    from chgnet.model.dynamics import CHGNetCalculator

    class _PFDCHGNetCalculator(CHGNetCalculator):
        """``CHGNetCalculator`` returning plain float64 energy and Voigt stress."""

        def calculate(self, atoms=None, properties=None, system_changes=None):
            with warnings.catch_warnings():  # "Converting a tensor ... to a scalar"
                warnings.simplefilter("ignore", UserWarning)
                super().calculate(atoms, properties, system_changes)
            energy = float(self.results["energy"])
            self.results["energy"] = self.results["free_energy"] = energy
            self.results["forces"] = np.asarray(self.results["forces"], dtype=float)
            stress = self.results.get("stress")
            if stress is not None and np.shape(stress) == (3, 3):
                s = np.asarray(stress, dtype=float)
                self.results["stress"] = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]

    return _PFDCHGNetCalculator


class CHGNetBackend:
    """CHGNet 0.3.0, 0.2.0 and r2SCAN as a :class:`pfd.models.ForceFieldBackend`."""

    name = "chgnet"
    default_checkpoint: str | None = DEFAULT
    supports_replay = False

    def __init__(self, device: str = "cpu", threads: int = 2) -> None:
        self.device = device
        self.threads = threads

    def resolve(self, model: str) -> Path:
        _require_chgnet()
        key = ALIASES.get(model.lower(), model.lower())
        if key in SHIPPED:
            path = _pretrained_dir() / SHIPPED[key][1]
            if not path.is_file():
                raise PFDError(
                    f"CHGNet checkpoint '{model}' is not in this chgnet install "
                    f"({path}); reinstall chgnet==0.4.2 or give a checkpoint file"
                )
            return path
        path = Path(model)
        if not path.is_file():
            raise PFDError(
                f"model checkpoint '{model}' not found: give a local CHGNet file or "
                f"one of the shipped names {sorted(SHIPPED)}; nothing is downloaded"
            )
        load_model(path)  # a file that is no CHGNet model is said now, not after DFT
        return path

    def check_elements(self, model: Path, symbols: set[str]) -> None:
        missing = sorted(s for s in symbols if atomic_numbers[s] > MAX_Z)
        check_covered(model, missing, "CHGNet knows H to Pu")

    def _torch_threads(self) -> None:
        import torch

        torch.set_num_threads(self.threads)

    def calculator(self, model: Path) -> Calculator:
        _require_chgnet()
        self._torch_threads()
        loaded = load_model(Path(model))
        with contextlib.redirect_stdout(io.StringIO()):  # "CHGNet will run on cpu"
            return _chgnet_calculator_class()(loaded, use_device=self.device)

    def refit_e0(self, model: Path, frames: list[Atoms], out: Path) -> Path:
        import torch

        from pfd.models.e0 import fit_e0_shift, predicted_energies

        predicted = predicted_energies(frames, self.calculator(model))
        shifts = fit_e0_shift(frames, predicted)
        loaded = load_model(Path(model))
        if loaded.composition_model is None:
            raise PFDError(
                f"CHGNet model '{model}' has no composition model (AtomRef) whose "
                "per-element energies could be refitted; set finetune.refit_e0: false"
            )
        with torch.no_grad():
            weight = loaded.composition_model.fc.weight  # [1, 94], eV per atom of Z
            for z, delta in shifts.items():
                weight[0, z - 1] += delta
        old = torch.load(model, map_location="cpu", weights_only=False)
        total = dict(old.get("pfd_e0_shift_eV", {}))
        for z, delta in shifts.items():
            total[chemical_symbols[z]] = total.get(chemical_symbols[z], 0.0) + delta
        return save_model(loaded, out, pfd_e0_shift_eV=total)

    def fine_tune(self, job: TrainingJob, on_epoch: EpochCallback = None) -> Path:
        # the training tool runs in workdir: paths given to it must be absolute
        model, train, valid, workdir, cfg, seed = job.prepared()
        write(workdir / "train.extxyz", train)
        if valid:
            write(workdir / "valid.extxyz", valid)
        stress = all(has_stress(a) for a in train + valid)
        job = {
            "model": str(Path(model).resolve()),
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "learning_rate": cfg.learning_rate,
            "lr_decay": cfg.lr_decay,
            "force_weight": cfg.force_weight,
            # pfd's stress_weight weighs stress in kBar (as SevenNet's loss does);
            # CHGNet's Huber loss sees GPa, ten times smaller errors
            "stress_weight": 10.0 * cfg.stress_weight if stress else 0.0,
            "stress": stress,
            "huber_delta": cfg.huber_delta,  # None: CHGNet's own (0.1)
            "seed": seed,
            "threads": self.threads,
            "device": self.device,
        }
        (workdir / "job.json").write_text(json.dumps(job, indent=1))
        result = workdir / "model.pth.tar"
        result.unlink(missing_ok=True)
        self._run(workdir, cfg.epochs, on_epoch)
        if not result.exists():
            raise PFDError(f"CHGNet training wrote no model; see {workdir}/stdout.log")
        return result

    def _run(
        self, workdir: Path, epochs: int, on_epoch: Callable[[int, int], None] | None
    ) -> None:
        env = os.environ | {
            "OMP_NUM_THREADS": str(self.threads),
            "PYTHONUNBUFFERED": "1",
        }
        cmd = [sys.executable, "-m", "pfd.models._chgnet_train", str(workdir)]

        def progress(line: str) -> None:
            match = EPOCH_LINE.match(line)
            if match and on_epoch:
                on_epoch(int(match.group(1)), epochs)

        run_logged(
            cmd,
            what="CHGNet fine-tuning",
            cwd=workdir,
            env=env,
            log=workdir / "stdout.log",
            on_line=progress,
        )
