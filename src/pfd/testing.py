"""Stand-in calculators for tests and demos: EMT that counts calls or fails on purpose.

They are importable by path (``pfd.testing:CountingEMT``) so the labelling
worker processes can build them from a YAML ``labeler.calculator`` entry.
"""

from __future__ import annotations

import fcntl
import time
from pathlib import Path

import numpy as np
from ase.calculators.emt import EMT

from pfd.errors import LabelError


def _append(path: str | Path, line: str) -> None:
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(line + "\n")


def _fingerprint(atoms) -> str:
    positions, volume = (
        np.round(atoms.positions.sum(), 6),
        np.round(atoms.cell.volume, 6),
    )
    return f"{len(atoms)}:{positions}:{volume}"


class CountingEMT(EMT):
    """EMT that appends one line per energy calculation to ``log`` (a file path)."""

    def __init__(self, log: str, delay_s: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.log = log
        self.delay_s = delay_s

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        if system_changes is None:
            from ase.calculators.calculator import all_changes

            system_changes = all_changes
        super().calculate(atoms, properties, system_changes)
        if self.delay_s:
            time.sleep(self.delay_s)
        _append(self.log, _fingerprint(self.atoms))


class FlakyEMT(EMT):
    """EMT that fails on some frames, the way DFT codes do.

    ``mode``: ``raise`` (an exception), ``nan`` (non-finite forces), ``hang``
    (sleeps, for timeouts) or ``crash`` (the process dies). A frame fails when
    the integer part of ``1000 * sum(positions)`` is divisible by ``every``.
    """

    def __init__(self, mode: str = "raise", every: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.every = every

    def _fails(self, atoms) -> bool:
        return int(abs(atoms.positions.sum()) * 1000) % self.every == 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        from ase.calculators.calculator import all_changes

        super().calculate(atoms, properties, system_changes or all_changes)
        if not self._fails(self.atoms):
            return
        if self.mode == "raise":
            raise LabelError("SCF did not converge (injected)")
        if self.mode == "nan":
            self.results["forces"] = np.full_like(self.results["forces"], np.nan)
        elif self.mode == "hang":
            time.sleep(3600)
        elif self.mode == "crash":
            import os

            os._exit(9)


class ShiftedEMT(EMT):
    """EMT plus a per-element energy shift (the stand-in 'model' below)."""

    def __init__(self, e0: dict[str, float] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.e0 = e0 or {}

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        from ase.calculators.calculator import all_changes

        super().calculate(atoms, properties, system_changes or all_changes)
        shift = sum(self.e0.get(s, 0.0) for s in self.atoms.get_chemical_symbols())
        self.results["energy"] += shift
        self.results["free_energy"] = self.results["energy"]
        if "energies" in self.results:
            self.results["energies"] = self.results["energies"] + np.array(
                [self.e0.get(s, 0.0) for s in self.atoms.get_chemical_symbols()]
            )


class EMTBackend:
    """A tiny stand-in force-field backend for fast loop tests.

    A "model" is a JSON file ``{"e0": {...}, "trained_on": n}``; its calculator
    is EMT shifted by ``e0``; "fine-tuning" refits ``e0`` on the training frames
    (EMT's forces cannot change), sleeping ``delay_s`` per epoch so that a test
    can interrupt a "training". Use ``backend: pfd.testing:EMTBackend`` and a
    checkpoint path that may not exist yet: it is created as an untrained model.
    """

    name = "emt"
    ELEMENTS = frozenset({"H", "C", "N", "O", "Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au"})

    def __init__(self, device: str = "cpu", threads: int = 1, delay_s: float = 0.2):
        self.delay_s = delay_s

    def resolve(self, model: str) -> Path:
        import json

        path = Path(model)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"e0": {}, "trained_on": 0}))
        return path

    def check_elements(self, model: Path, symbols: set[str]) -> None:
        from pfd.errors import PFDError

        missing = sorted(set(symbols) - self.ELEMENTS)
        if missing:
            raise PFDError(f"EMT does not cover element(s) {', '.join(missing)}")

    def calculator(self, model: Path):
        import json

        return ShiftedEMT(json.loads(Path(model).read_text())["e0"])

    def refit_e0(self, model: Path, frames, out: Path) -> Path:
        import json

        from ase.data import chemical_symbols

        from pfd.models.e0 import fit_e0_shift, predicted_energies

        predicted = predicted_energies(frames, self.calculator(model))
        old = json.loads(Path(model).read_text())
        e0 = dict(old["e0"])
        for z, delta in fit_e0_shift(frames, predicted).items():
            e0[chemical_symbols[z]] = e0.get(chemical_symbols[z], 0.0) + delta
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"e0": e0, "trained_on": old.get("trained_on", 0)}))
        return out

    def fine_tune(self, model, train, valid, workdir, cfg, seed, on_epoch=None):
        import json

        workdir.mkdir(parents=True, exist_ok=True)
        out = self.refit_e0(model, train, workdir / "model.json")
        for epoch in range(1, cfg.epochs + 1):
            time.sleep(self.delay_s)
            if on_epoch:
                on_epoch(epoch, cfg.epochs)
        payload = json.loads(out.read_text()) | {"trained_on": len(train) + len(valid)}
        out.write_text(json.dumps(payload))
        return out


def check_backend_contract(backend, model: str, frames, workdir: Path) -> dict:
    """The checks every force-field backend must pass (run them from your tests).

    ``frames`` are labelled frames of elements the model covers, with an energy
    zero different from the model's (as DFT codes have). Returns the measured
    errors so callers can assert more.
    """
    from pfd.config import FineTuneConfig
    from pfd.errors import PFDError
    from pfd.evaluate import evaluate

    path = backend.resolve(model)
    symbols = {s for a in frames for s in a.get_chemical_symbols()}
    backend.check_elements(path, symbols)
    try:
        backend.check_elements(path, symbols | {"Og"})
    except PFDError as err:
        if "Og" not in str(err):
            raise AssertionError(f"error does not name the element: {err}") from err
    else:
        raise AssertionError("check_elements accepted oganesson")
    calc = backend.calculator(path)
    atoms = frames[0].copy()
    atoms.calc = calc
    assert np.isfinite(atoms.get_potential_energy())
    assert atoms.get_forces().shape == (len(atoms), 3)
    if all(atoms.pbc):
        assert atoms.get_stress().shape == (6,)
    before = evaluate(frames, calc)
    refit = backend.refit_e0(path, frames, workdir / "e0" / "model")
    after_e0 = evaluate(frames, backend.calculator(refit))
    assert after_e0.energy_rmse_eV_atom < before.energy_rmse_eV_atom
    epochs: list[int] = []
    out = backend.fine_tune(
        refit,
        frames[1:],
        frames[:1],
        workdir / "ft",
        FineTuneConfig(epochs=2, batch_size=2),
        seed=0,
        on_epoch=lambda i, n: epochs.append(i),
    )
    assert Path(out).exists()
    assert epochs[-1] == 2
    tuned = evaluate(frames[1:], backend.calculator(out))
    return {"before": before, "after_e0": after_e0, "fine_tuned": tuned, "model": out}
