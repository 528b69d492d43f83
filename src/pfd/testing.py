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
    default_checkpoint: str | None = None
    supports_replay = False
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

    def fine_tune(self, job, on_epoch=None):
        import json

        model, train, valid, workdir, cfg, _seed = job.prepared()
        out = self.refit_e0(model, train, workdir / "model.json")
        for epoch in range(1, cfg.epochs + 1):
            time.sleep(self.delay_s)
            if on_epoch:
                on_epoch(epoch, cfg.epochs)
        payload = json.loads(out.read_text()) | {"trained_on": len(train) + len(valid)}
        out.write_text(json.dumps(payload))
        return out


class EMTLabeler:
    """A labeller in a dozen lines (the README's example): EMT, any cell.

    Given as ``labeler.code: pfd.testing:EMTLabeler``; ``labeler.parameters``
    are its keyword arguments (EMT's own: ``asap_cutoff``).
    """

    code = "emt"

    def __init__(self, asap_cutoff: bool = False) -> None:
        self.asap_cutoff = asap_cutoff

    def settings(self) -> dict:
        return {"code": self.code, "parameters": {"asap_cutoff": self.asap_cutoff}}

    def check(self, symbols: set[str]) -> None:
        missing = sorted(symbols - EMTBackend.ELEMENTS)
        if missing:
            raise LabelError(f"EMT has no parameters for {', '.join(missing)}")

    def calculate(self, atoms, workdir: str):
        from pfd.label.results import single_point

        return single_point(atoms, EMT(asap_cutoff=self.asap_cutoff))


def check_backend_contract(
    backend, model: str, frames, workdir: Path, epochs: int = 1
) -> dict:
    """The checks every force-field backend must pass (run them from your tests).

    ``frames`` are labelled frames of elements the model covers, with an energy
    zero different from the model's (as DFT codes have). Checks: a one-line
    error for an uncovered element, a calculator with energy, forces and
    stress, an E0 refit that lowers the energy error, ``epochs`` of fine-tuning
    that report each epoch and write a model file that loads again (``resolve``
    of its path, a calculator that predicts as the first did). Returns the
    measured errors so callers can assert more.
    """
    from pfd.analysis.errors import evaluate
    from pfd.config import FineTuneConfig
    from pfd.models import TrainingJob

    path = backend.resolve(model)
    _check_elements(
        backend, path, {s for a in frames for s in a.get_chemical_symbols()}
    )
    calc = backend.calculator(path)
    _check_calculator(calc, frames[0])
    before = evaluate(frames, calc)
    refit = backend.refit_e0(path, frames, workdir / "e0" / "model")
    after_e0 = evaluate(frames, backend.calculator(refit))
    assert after_e0.energy_rmse_eV_atom < before.energy_rmse_eV_atom
    epochs_seen: list[int] = []
    settings = FineTuneConfig(epochs=epochs, batch_size=2)
    job = TrainingJob(refit, frames[1:], frames[:1], workdir / "ft", settings)
    out = backend.fine_tune(job, on_epoch=lambda i, n: epochs_seen.append(i))
    assert Path(out).is_file(), f"fine_tune returned {out}, which is no file"
    assert epochs_seen[-1:] == [epochs], f"epochs reported: {epochs_seen}"
    reloaded = backend.resolve(str(out))
    assert Path(reloaded).resolve() == Path(out).resolve()
    tuned_calc = backend.calculator(reloaded)
    tuned = evaluate(frames[1:], tuned_calc)
    energies = [_energy(frames[1], c) for c in (tuned_calc, backend.calculator(out))]
    assert abs(energies[0] - energies[1]) < 1e-6, f"two loads differ: {energies}"
    return {"before": before, "after_e0": after_e0, "fine_tuned": tuned, "model": out}


def _energy(frame, calc) -> float:
    atoms = frame.copy()
    atoms.calc = calc
    return float(atoms.get_potential_energy())


def _check_elements(backend, path: Path, symbols: set[str]) -> None:
    from pfd.errors import PFDError

    backend.check_elements(path, symbols)
    try:
        backend.check_elements(path, symbols | {"Og"})
    except PFDError as err:
        if "Og" not in str(err):
            raise AssertionError(f"error does not name the element: {err}") from err
    else:
        raise AssertionError("check_elements accepted oganesson")


def _check_calculator(calc, frame) -> None:
    atoms = frame.copy()
    atoms.calc = calc
    assert np.isfinite(atoms.get_potential_energy())
    assert atoms.get_forces().shape == (len(atoms), 3)
    if all(atoms.pbc):
        assert atoms.get_stress().shape == (6,)


#: a displacement direction (2 atoms x 3) and a strain direction (Voigt,
#: engineering shear) that touch every component
_SHIFT = np.array([[0.3, -0.5, 0.2], [-0.6, 0.4, 0.3]])
_STRAIN = np.array([1.0, 0.5, 0.25, 0.6, -0.6, 0.3])


def _strained(atoms, voigt):
    xx, yy, zz, yz, xz, xy = voigt
    strain = np.array(
        [[xx, xy / 2, xz / 2], [xy / 2, yy, yz / 2], [xz / 2, yz / 2, zz]]
    )
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return out


def _free_energy(result) -> float:
    # with smearing, forces and stress are derivatives of the free energy
    results = result.calc.results
    return float(results.get("free_energy", results["energy"]))


def check_labeller_contract(
    labeller,
    atoms,
    workdir: str | Path,
    *,
    step_A: float = 0.01,
    strain: float = 0.003,
    force_atol: float = 0.01,
    stress_atol: float = 2e-3,
    stress: bool = True,
) -> dict:
    """The checks every labeller must pass on a small (2-atom) cell.

    ``labeller.check`` accepts the cell's elements; ``settings()`` names the
    code; ``calculate`` returns the same atoms with energy, forces and (periodic
    cells) stress; forces along a direction that moves every coordinate match
    the central difference of the (free) energy, step ``step_A``; the stress
    along a strain touching all six components matches d(energy)/d(strain)/V.
    A unit (Ry/Bohr, Hartree/Bohr, kBar, GPa), sign or order error is far
    outside the tolerances (eV/Å, eV/Å³). ``stress=False`` leaves the stress
    out (a second cell of a code already checked). Returns the pairs compared.
    """
    Path(workdir).mkdir(parents=True, exist_ok=True)
    workdir = str(workdir)
    labeller.check(set(atoms.get_chemical_symbols()))
    assert labeller.settings()["code"], "settings() must name the code"
    result = labeller.calculate(atoms, workdir)
    assert result.get_chemical_symbols() == atoms.get_chemical_symbols()
    np.testing.assert_allclose(result.positions, atoms.positions, atol=1e-8)
    forces = result.get_forces()
    assert forces.shape == (len(atoms), 3)
    direction = np.resize(_SHIFT, (len(atoms), 3))
    direction /= np.linalg.norm(direction)
    energies = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions += sign * step_A * direction
        energies.append(_free_energy(labeller.calculate(moved, workdir)))
    checked = {"result": result}
    checked["force"] = (
        float(np.sum(forces * direction)),
        -(energies[0] - energies[1]) / (2 * step_A),
    )
    _assert_close("force along the shift (eV/Å)", *checked["force"], force_atol)
    if all(atoms.pbc):
        assert result.get_stress(voigt=True).shape == (6,)
    if all(atoms.pbc) and stress:
        strained = [_strained(atoms, s * strain * _STRAIN) for s in (1, -1)]
        energies = [_free_energy(labeller.calculate(a, workdir)) for a in strained]
        fd = (energies[0] - energies[1]) / (2 * strain) / atoms.get_volume()
        checked["stress"] = (float(result.get_stress(voigt=True) @ _STRAIN), fd)
        _assert_close(
            "stress along the strain (eV/Å³)", *checked["stress"], stress_atol
        )
    return checked


def _assert_close(what: str, analytic: float, fd: float, atol: float) -> None:
    assert abs(fd) > 2 * atol, (
        f"{what}: {fd:.4g} from finite differences is too small to test against "
        f"{atol}; displace the atoms or strain the cell more"
    )
    assert abs(analytic - fd) <= atol, (
        f"{what}: {analytic:.6g} from the labeller, {fd:.6g} from finite "
        f"differences of its energy (tolerance {atol})"
    )
