"""MACE backend: a foundation-model file the user provides, MACE's own fine-tuning.

``mace-torch`` pins ``e3nn==0.4.4`` and SevenNet/DeePMD-kit need ``e3nn>=0.5``,
so they cannot share one environment. pfd (with the DeePMD student) stays in its
own; MACE runs in the Python named by ``model.python`` (an environment with
``torch==2.13.0 mace-torch``; ``scripts/install.sh --mace`` makes ``.venv-mace``),
or in pfd's own Python when mace-torch is installed there.

- The calculator is a MACE process that stays up and answers one structure per
  request over a pipe (:class:`RemoteCalculator`, JSON lines).
- :meth:`MACEBackend.refit_e0` shifts the model's E0s (``atomic_energies``) by
  the least-squares residual of its energies on the DFT frames.
- :meth:`MACEBackend.fine_tune` runs ``mace.cli.run_train`` with the model as
  ``--foundation_model``: naive fine-tuning (``--multiheads_finetuning False``)
  with the model's own E0s (refitted just before; given as numbers, because
  ``--E0s foundation`` fails on one-element models in mace-torch 0.3.16), energy,
  force and stress loss (``--loss stress``), pfd's epochs, batch size and
  learning rate. With ``finetune.replay_data`` (the user's extxyz of the
  foundation's own training frames) it is MACE's multi-head replay fine-tuning
  instead (``--multiheads_finetuning True --pt_train_file``): a ``pt_head``
  keeps fitting the replay data while the ``Default`` head learns the DFT
  frames, both on the foundation's shared layers. The replay data sit at the
  foundation's energy zero, so the pre-refit model is the ``--foundation_model``
  (its E0s serve the replay head) and the refitted E0s go to the DFT head. The
  result is used at its ``Default`` head; pfd's learning rate is kept
  (``--force_mh_ft_lr``).

Nothing is downloaded: a missing file or an interpreter without mace-torch is
a one-line error naming what to install or set.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import chemical_symbols
from ase.io import iread, write

from pfd._proc import guarded, run_logged
from pfd.config import FineTuneConfig
from pfd.errors import PFDError
from pfd.models import EpochCallback, TrainingJob, check_covered, has_stress

WORKER = Path(__file__).with_name("_mace_worker.py")
_EPOCH = re.compile(r"Epoch (\d+):")
INSTALL = (
    "make an environment with mace-torch (bash scripts/install.sh --mace, or "
    "python -m venv mace-env && mace-env/bin/pip install torch==2.13.0 mace-torch) "
    "and set model.python to its python"
)


class RemoteCalculator(Calculator):
    """An ASE calculator answered by a long-lived process (``_mace_worker serve``)."""

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cmd = cmd
        self.env = env
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                guarded(self.cmd),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=self.env,
            )
            self._read()  # {"ready": true} once the model is loaded
        return self._proc

    def _read(self) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            error = self._proc.stderr.read() if self._proc.stderr else ""
            last = (error.strip().splitlines() or ["(no output)"])[-1]
            self._proc = None
            raise PFDError(f"the MACE process stopped: {last[:300]}")
        reply = json.loads(line)
        if "error" in reply:
            raise PFDError(f"MACE failed on a structure: {reply['error'][:300]}")
        return reply

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        proc = self._start()
        job = {
            "numbers": self.atoms.numbers.tolist(),
            "positions": self.atoms.positions.tolist(),
            "cell": self.atoms.cell.array.tolist(),
            "pbc": [bool(p) for p in self.atoms.pbc],
        }
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(job) + "\n")
        proc.stdin.flush()
        reply = self._read()
        self.results = {
            "energy": reply["energy"],
            "free_energy": reply["energy"],
            "forces": np.array(reply["forces"], dtype=float),
        }
        if "stress" in reply:
            self.results["stress"] = np.array(reply["stress"], dtype=float)

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class MACEBackend:
    """MACE foundation models (MACE-MP, MACE-OMAT, ...) as a ``ForceFieldBackend``."""

    name = "mace"
    default_checkpoint: str | None = None
    supports_replay = True

    def __init__(
        self,
        device: str = "cpu",
        threads: int = 2,
        head: str | None = None,
        python: str | None = None,
    ) -> None:
        self.device = device
        self.threads = threads
        self.head = head
        self.python = python or sys.executable
        self._info: dict[Path, dict[str, Any]] = {}

    def _env(self) -> dict[str, str]:
        return os.environ | {
            "OMP_NUM_THREADS": str(self.threads),
            "PYTHONUNBUFFERED": "1",
            # e3nn 0.4.4 calls torch.load without weights_only (torch >= 2.6)
            "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
        }

    def _worker(self, *args: str, timeout: float = 600) -> dict[str, Any]:
        if not Path(self.python).exists() and shutil.which(self.python) is None:
            raise PFDError(f"model.python '{self.python}' not found; {INSTALL}")
        cmd = [self.python, str(WORKER), *args]
        try:
            done = subprocess.run(
                guarded(cmd),
                capture_output=True,
                text=True,
                env=self._env(),
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as err:
            raise PFDError(f"MACE '{args[0]}' took over {timeout:.0f} s") from err
        if done.returncode:
            lines = done.stderr.strip().splitlines() or ["(no output)"]
            if any("No module named 'mace'" in x for x in lines):
                raise PFDError(f"'{self.python}' has no mace-torch; {INSTALL}")
            raise PFDError(f"MACE '{args[0]}' failed: {lines[-1][:300]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def resolve(self, model: str) -> Path:
        path = Path(model)
        if not path.is_file():
            raise PFDError(
                f"model checkpoint '{model}' not found: the 'mace' backend needs a "
                "local MACE model file (e.g. mace-mp-0b3-medium.model), next to the "
                "YAML or as an absolute path; nothing is downloaded"
            )
        return path

    def info(self, model: Path) -> dict[str, Any]:
        key = Path(model).resolve()
        if key not in self._info:
            self._info[key] = self._worker("info", str(key))
        return self._info[key]

    def _head(self, model: Path) -> list[str]:
        heads = self.info(model)["heads"]
        if self.head not in heads and set(heads) == {"Default", "pt_head"}:
            return ["Default"]  # made by replay fine-tuning: the DFT head
        if len(heads) > 1 and self.head not in heads:
            raise PFDError(
                f"'{Path(model).name}' is a multi-head MACE model: set model.head to "
                f"one of {heads}"
            )
        return [self.head] if self.head in heads and len(heads) > 1 else []

    def check_elements(self, model: Path, symbols: set[str]) -> None:
        known = {chemical_symbols[z] for z in self.info(model)["atomic_numbers"]}
        missing = sorted(symbols - known)
        check_covered(model, missing)

    def _e0s(self, model: Path, frames: list[Atoms]) -> str:
        """The model's E0s of the frames' elements, as MACE's ``--E0s`` reads them."""
        info = self.info(model)
        head = self._head(model)
        row = info["e0s"][head[0] if head else info["heads"][0]]
        table = dict(zip(info["atomic_numbers"], row, strict=True))
        zs = sorted({int(z) for atoms in frames for z in atoms.numbers})
        return str({z: table[z] for z in zs})

    def calculator(self, model: Path) -> Calculator:
        head = self._head(model)
        cmd = [self.python, str(WORKER), "serve", str(Path(model).resolve())]
        return RemoteCalculator(
            [*cmd, self.device, str(self.threads), *head], self._env()
        )

    def refit_e0(self, model: Path, frames: list[Atoms], out: Path) -> Path:
        out.parent.mkdir(parents=True, exist_ok=True)
        data = out.with_name(out.stem + "_frames.extxyz")
        write(data, frames)
        model = Path(model).resolve()
        self._worker(
            "refit", str(model), str(data), str(out.resolve()), *self._head(model)
        )
        # the model it was refitted from: replay data sit at that one's energy zero
        _origin(out).write_text(json.dumps({"refitted_from": str(model)}))
        return out

    def fine_tune(self, job: TrainingJob, on_epoch: EpochCallback = None) -> Path:
        # the training tool runs in workdir: paths given to it must be absolute
        model, train, valid, workdir, cfg, seed = job.prepared()
        stress = all(has_stress(a) for a in train + valid)
        write(workdir / "train.extxyz", [_ref(a) for a in train])
        base, replay = self._replay(model, cfg)
        args = [
            "--name", "model",
            "--foundation_model", str(base),
            *replay,
            "--train_file", "train.extxyz",
            "--E0s", self._e0s(model, train + valid),
            *_loss_args(cfg, stress, seed),
            "--device", self.device,
        ]  # fmt: skip
        if valid:
            write(workdir / "valid.extxyz", [_ref(a) for a in valid])
            args += ["--valid_file", "valid.extxyz", "--valid_batch_size", "4"]
        else:
            args += ["--valid_fraction", "0.1"]
        if head := self._head(base):
            args += ["--foundation_head", head[0]]
        for old in ("checkpoints", "model.model"):
            shutil.rmtree(workdir / old, ignore_errors=True)
            (workdir / old).unlink(missing_ok=True)

        def progress(line: str) -> None:
            match = _EPOCH.search(line)
            if match and on_epoch:
                on_epoch(min(cfg.epochs, int(match.group(1)) + 1), cfg.epochs)

        cmd = [self.python, "-m", "mace.cli.run_train", *args]
        log = workdir / "train.log"
        run_logged(
            cmd,
            what="MACE fine-tuning",
            cwd=workdir,
            env=self._env(),
            log=log,
            on_line=progress,
        )
        result = workdir / "model.model"
        if not result.exists():
            raise PFDError(f"MACE fine-tuning wrote no model; see {log}")
        return result

    def _replay(self, model: Path, cfg: FineTuneConfig) -> tuple[Path, list[str]]:
        """The model to start from and MACE's replay arguments (multi-head or none)."""
        if cfg.replay_data is None:
            return model, ["--multiheads_finetuning", "False"]
        base = model
        if _origin(model).is_file():
            base = Path(json.loads(_origin(model).read_text())["refitted_from"])
        n_replay = sum(1 for _ in iread(str(cfg.replay_data), ":"))
        return base, [
            "--multiheads_finetuning", "True",
            "--pt_train_file", str(Path(cfg.replay_data).resolve()),
            "--num_samples_pt", str(min(10000, n_replay)),
            "--force_mh_ft_lr", "True",
        ]  # fmt: skip


def _loss_args(cfg: FineTuneConfig, stress: bool, seed: int) -> list[str]:
    """run_train's loss, schedule and output arguments."""
    return [
        "--energy_key", "REF_energy",
        "--forces_key", "REF_forces",
        "--stress_key", "REF_stress",
        "--loss", "stress" if stress else "ef",
        "--forces_weight", str(cfg.force_weight * 100),
        "--energy_weight", "1.0",
        "--stress_weight", str(cfg.stress_weight * 100 if stress else 0.0),
        "--max_num_epochs", str(cfg.epochs),
        "--batch_size", str(cfg.batch_size),
        "--lr", str(cfg.learning_rate),
        "--scheduler", "ExponentialLR",
        "--lr_scheduler_gamma", str(cfg.lr_decay),
        "--seed", str(seed),
        "--default_dtype", "float64",
        "--eval_interval", "1",
        "--model_dir", ".",
        "--results_dir", "results",
        "--checkpoints_dir", "checkpoints",
        "--log_dir", "logs",
    ]  # fmt: skip


def _origin(model: Path) -> Path:
    """Where :meth:`MACEBackend.refit_e0` notes the model it refitted."""
    return Path(model).with_suffix(".refit.json")


def _ref(atoms: Atoms) -> Atoms:
    """A frame with its labels as ``REF_*`` keys, as MACE's trainer reads them."""
    out = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.info["REF_energy"] = float(atoms.get_potential_energy())
    out.arrays["REF_forces"] = np.asarray(atoms.get_forces())
    if all(atoms.pbc) and "stress" in atoms.calc.results:
        out.info["REF_stress"] = np.asarray(atoms.get_stress(voigt=True))
    return out
