"""MACE's side of pfd's ``mace`` backend, run by the Python that has mace-torch.

``mace-torch`` pins ``e3nn==0.4.4``; SevenNet and DeePMD-kit need ``e3nn>=0.5``.
So MACE usually lives in its own environment, and pfd runs this file there by
path (it imports only the standard library, NumPy, ASE, torch and mace):

``python _mace_worker.py info MODEL``
    one JSON line: the model's atomic numbers, cutoff and heads.
``python _mace_worker.py serve MODEL DEVICE THREADS [HEAD]``
    a calculator: one JSON line per structure on stdin (numbers, positions,
    cell, pbc), one JSON line back (energy, forces, stress) or ``{"error"}``.
``python _mace_worker.py refit MODEL FRAMES OUT [HEAD]``
    ``MODEL`` with its per-element energies (E0s) shifted by the least-squares
    residual of its energies on the labelled ``FRAMES`` (extxyz), saved as ``OUT``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

# Run by path, this file's directory comes first on sys.path, where pfd's own
# mace.py would shadow the mace package.
_HERE = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

REPLY = sys.stdout


def _reply(payload: dict) -> None:
    REPLY.write(json.dumps(payload) + "\n")
    REPLY.flush()


def _load(path: str):
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def _calculator(model: str, device: str, head: str | None):
    from mace.calculators import MACECalculator

    kwargs = {"head": head} if head else {}
    return MACECalculator(
        model_paths=model, device=device, default_dtype="float64", **kwargs
    )


def info(model: str) -> None:
    loaded = _load(model)
    heads = list(getattr(loaded, "heads", None) or ["Default"])
    energies = loaded.atomic_energies_fn.atomic_energies.detach()
    energies = energies.reshape(-1, len(loaded.atomic_numbers))  # [heads, Z]
    out = {
        "atomic_numbers": [int(z) for z in loaded.atomic_numbers],
        "r_max": float(loaded.r_max),
        "heads": heads,
        "e0s": {head: energies[k].tolist() for k, head in enumerate(heads)},
    }
    _reply(out)


def serve(model: str, device: str, threads: str, head: str | None = None) -> None:
    import numpy as np
    import torch
    from ase import Atoms

    torch.set_num_threads(int(threads))
    calc = _calculator(model, device, head)
    _reply({"ready": True})
    for line in sys.stdin:
        job = json.loads(line)
        atoms = Atoms(
            numbers=job["numbers"],
            positions=job["positions"],
            cell=job["cell"],
            pbc=job["pbc"],
        )
        atoms.calc = calc
        try:
            reply = {
                "energy": float(atoms.get_potential_energy()),
                "forces": np.asarray(atoms.get_forces()).tolist(),
            }
            if all(atoms.pbc):
                reply["stress"] = np.asarray(atoms.get_stress()).tolist()
        except Exception as err:  # reported to pfd, which raises it there
            reply = {"error": f"{type(err).__name__}: {err}"}
        _reply(reply)


def refit(model: str, frames: str, out: str, head: str | None = None) -> None:
    import numpy as np
    import torch
    from ase.io import read

    labelled = read(frames, ":")
    calc = _calculator(model, "cpu", head)
    zs = sorted({int(z) for atoms in labelled for z in atoms.numbers})
    counts = np.array([[np.sum(a.numbers == z) for z in zs] for a in labelled], float)
    residual = []
    for atoms in labelled:
        reference = atoms.get_potential_energy()
        work = atoms.copy()
        work.calc = calc
        residual.append(reference - work.get_potential_energy())
    shift, *_ = np.linalg.lstsq(counts, np.array(residual), rcond=None)
    loaded = _load(model)
    table = [int(z) for z in loaded.atomic_numbers]
    energies = loaded.atomic_energies_fn.atomic_energies
    heads = list(getattr(loaded, "heads", None) or ["Default"])
    row = heads.index(head) if head in heads else 0
    with torch.no_grad():
        for z, delta in zip(zs, shift, strict=True):
            if energies.ndim == 2:
                energies[row, table.index(z)] += float(delta)
            else:
                energies[table.index(z)] += float(delta)
    tmp = out + ".tmp"
    torch.save(loaded, tmp)
    os.replace(tmp, out)
    _reply({"shift_eV": dict(zip(map(str, zs), shift.tolist(), strict=True))})


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    # replies go to the real stdout; anything MACE or torch prints, to stderr
    REPLY = sys.stdout
    sys.stdout = sys.stderr
    import mace  # noqa: F401  (first: a Python without mace-torch says so)

    command, *args = sys.argv[1:]
    {"info": info, "serve": serve, "refit": refit}[command](*args)
