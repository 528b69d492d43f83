"""Make a broad DFT test set for the Si example: frames the loop never explores.

The loop explores the 8-atom diamond cell at 300-1500 K, 0 and 1 GPa
(``pfd.yaml``); ``test_dft.extxyz`` tests the same. This set holds what a
materials scientist simulates next, each frame with ``info['subset']``:

- ``beta-tin``: β-Sn-structure Si (I4₁/amd, 16 atoms), relaxed with symmetry
  kept, then MD at 300 K;
- ``vacancy`` / ``interstitial``: the 16-atom 2x2x2 primitive diamond cell minus
  one atom (15) / plus one on the tetrahedral site (17), MD at 500 K;
- ``surface``: a (100) slab, 2x2 surface cell, 6 layers (24 atoms) and 12 Å of
  vacuum, MD at 300 K with the cell fixed;
- ``liquid``: the 16-atom cell at 93 % of the diamond volume (liquid Si is
  denser), melted and kept at 2500 K;
- ``strain-large``: the 8-atom diamond cell at ±9 % volume and with a 8 %
  shear, atoms rattled.

Structures are made with ASE, relaxed and run with the *untouched* foundation
model (SevenNet-0) through pfd's own MD (``pfd.explore.run_md``), and labelled
one job at a time with the example's GPAW preset (``parameters: {}``). Job
directories stay under ``broad_testset_work/`` (not in git), so a rerun reads
finished jobs back. At the end it prints SevenNet-0's zero-shot errors per
subset, raw and after the per-element E0 shift fitted on ``test_dft.extxyz``
(the shift the loop applies before fine-tuning, ``finetune.refit_e0``).

    # writes examples/si/broad_test_dft.extxyz (--dry-run: frames and k-points only)
    OMP_NUM_THREADS=1 python examples/si/make_broad_test_set.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, diamond100
from ase.calculators.calculator import Calculator
from ase.constraints import FixSymmetry
from ase.filters import FrechetCellFilter
from ase.io import read, write
from ase.optimize import BFGS
from ase.spacegroup import crystal

from pfd.analysis.errors import Errors, evaluate_by_subset
from pfd.config import ExploreConfig, LabelerConfig
from pfd.explore import MDTask, run_md
from pfd.label import Labeler, make_labeler
from pfd.label.kpoints import kpoint_grid
from pfd.label.runner import label_one
from pfd.models.sevennet import SevenNetBackend
from pfd.structures import perturb

HERE = Path(__file__).parent
A_DIAMOND = 5.43  # Å, about PBE's 5.47 and SevenNet-0's; every cell is rattled anyway
Builder = Callable[[Calculator], list[Atoms]]


def md_frames(
    atoms: Atoms,
    calc: Calculator,
    temperature_K: float,
    steps: int,
    keep: int,
    seed: int,
    timestep_fs: float = 2.0,
) -> list[Atoms]:
    """The last ``keep`` frames, ``steps // keep // 2`` steps apart, of an NVT run."""
    every = max(1, steps // (2 * keep))
    cfg = ExploreConfig(
        steps=steps,
        sample_every=every,
        timestep_fs=timestep_fs,
        displacement_A=0.03,
        strain=0.0,  # slabs keep their vacuum, defects their cell
    )
    traj = run_md(
        atoms, calc, MDTask(0, temperature_K, temperature_K, None, steps, seed), cfg
    )
    if traj.stopped or len(traj.frames) < keep:
        raise RuntimeError(f"MD at {temperature_K} K stopped early: {traj.stopped}")
    return traj.frames[-keep:]


def relaxed(atoms: Atoms, calc: Calculator, fmax: float = 0.01) -> Atoms:
    """Cell and positions relaxed at zero pressure with the symmetry kept."""
    work = atoms.copy()
    work.set_constraint(FixSymmetry(work))
    work.calc = calc
    BFGS(FrechetCellFilter(work), logfile=None).run(fmax=fmax, steps=300)
    work.set_constraint()
    return work


def diamond16() -> Atoms:
    """The 2x2x2 supercell of the 2-atom primitive cell (images 7.7 Å apart)."""
    return bulk("Si", "diamond", a=A_DIAMOND) * (2, 2, 2)


def beta_tin(calc: Calculator) -> list[Atoms]:
    """β-Sn Si: 4a site of I4₁/amd, a 4.8 Å, c/a 0.55; relaxed, 2x2x1, 300 K."""
    a = 4.80
    cell = crystal(
        "Si", [(0, 0, 0)], spacegroup=141, cellpar=[a, a, 0.55 * a, 90, 90, 90]
    )
    cell = relaxed(cell, calc)
    a, _, c = cell.cell.lengths()
    print(f"  beta-tin relaxed by SevenNet-0: a {a:.3f} Å, c/a {c / a:.3f}")
    return md_frames(cell * (2, 2, 1), calc, 300, 200, 2, seed=2101)


def vacancy(calc: Calculator) -> list[Atoms]:
    cell = diamond16()
    del cell[0]
    return md_frames(cell, calc, 500, 300, 3, seed=2201)


def interstitial(calc: Calculator) -> list[Atoms]:
    """An extra atom on the tetrahedral site (a/2, a/2, a/2): 4 neighbours at 2.35 Å."""
    cell = diamond16()
    cell.append("Si")
    cell.positions[-1] = [A_DIAMOND / 2] * 3
    return md_frames(cell, calc, 500, 300, 3, seed=2301)


def surface(calc: Calculator) -> list[Atoms]:
    """Si(100), 2x2 surface cell, 6 layers, 6 Å of vacuum each side, periodic."""
    slab = diamond100("Si", (2, 2, 6), a=A_DIAMOND, vacuum=6.0)
    slab.pbc = True  # GPAW's plane waves need it; 12 Å of vacuum separates the images
    return md_frames(slab, calc, 300, 300, 2, seed=2401)


def liquid(calc: Calculator) -> list[Atoms]:
    """Melted at 2500 K (1.5 ps of 1 fs steps) at 93 % of the diamond volume."""
    cell = diamond16()
    cell.set_cell(cell.cell * 0.93 ** (1 / 3), scale_atoms=True)
    frames = md_frames(cell, calc, 2500, 1500, 2, seed=2501, timestep_fs=1.0)
    start = cell.positions
    for frame in frames:  # positions are not wrapped: a liquid has diffused away
        msd = np.mean(np.sum((frame.positions - start) ** 2, axis=1))
        print(f"  liquid: mean squared displacement {msd:.1f} Å² (crystal: < 0.5)")
    return frames


def strain_large(calc: Calculator) -> list[Atoms]:
    """The 8-atom cell at -9 % and +9 % volume, and with a 8 % xy shear, rattled."""
    del calc  # no model needed
    si = read(HERE / "si.vasp")
    rng = np.random.default_rng(2601)
    shear = np.eye(3)
    shear[0, 1] = shear[1, 0] = 0.04  # engineering shear strain 2 * 0.04
    frames = []
    for deform in (0.91 ** (1 / 3) * np.eye(3), 1.09 ** (1 / 3) * np.eye(3), shear):
        frame = si.copy()
        frame.set_cell(frame.cell[:] @ deform, scale_atoms=True)
        frames.append(perturb(frame, rng, 0.05, 0.0))
    return frames


SUBSETS: dict[str, Builder] = {
    "strain-large": strain_large,
    "vacancy": vacancy,
    "beta-tin": beta_tin,
    "interstitial": interstitial,
    "liquid": liquid,
    "surface": surface,
}


def label_all(
    frames: list[Atoms], labeler: Labeler, workdir: Path
) -> tuple[list[Atoms], list[float]]:
    """Label one frame at a time (read back when done before); seconds of each job."""
    labelled, seconds = [], []
    for frame in frames:
        subset = frame.info["subset"]
        jobdir = (
            workdir / f"{subset}-{sum(a.info['subset'] == subset for a in labelled)}"
        )
        stamp = jobdir / "seconds.txt"
        fresh = not (jobdir / "output.extxyz").exists()
        start = time.perf_counter()
        result = label_one(labeler, frame, jobdir)
        if fresh or not stamp.exists():
            stamp.write_text(f"{time.perf_counter() - start:.1f}\n")
        seconds.append(float(stamp.read_text()))
        result.info = dict(frame.info)
        labelled.append(result)
        print(
            f"  {jobdir.name:>15} {len(frame):3d} atoms "
            f"{seconds[-1]:7.1f} s{'' if fresh else ' (read back)'}",
            flush=True,
        )
    return labelled, seconds


def zero_shot(
    backend: SevenNetBackend, frames: list[Atoms], old: list[Atoms], workdir: Path
) -> None:
    """SevenNet-0's errors per subset, raw and with the E0 shift fitted on ``old``."""
    model = backend.resolve("7net-0")
    shifted = backend.refit_e0(model, old, workdir / "7net-0_e0_old_test.pth")
    raw = evaluate_by_subset(frames, backend.calculator(model))
    fit = evaluate_by_subset(frames, backend.calculator(shifted))
    calc = backend.calculator(model)
    offset: dict[str, list[float]] = {"all": []}
    for atoms in frames:
        work = atoms.copy()
        work.calc = calc
        d = (atoms.get_potential_energy() - work.get_potential_energy()) / len(atoms)
        offset["all"].append(d)
        offset.setdefault(str(atoms.info["subset"]), []).append(d)
    print(
        "\nSevenNet-0 untouched (E0 shift fitted on test_dft.extxyz only: "
        f"{_shift_of(shifted)} eV/atom)"
    )
    print(
        f"{'subset':>13} {'frames':>6} {'F RMSE eV/Å':>11} {'E RMSE meV/at':>13} "
        f"{'E RMSE raw':>10} {'E_dft-E_7net meV/at':>19} {'S RMSE GPa':>10}"
    )
    for name, e in fit.items():
        print(_row(name, e, raw[name], offset[name]))


def _shift_of(path: Path) -> str:
    import torch

    shift = torch.load(path, map_location="cpu", weights_only=False)["pfd_e0_shift_eV"]
    return ", ".join(f"{k} {v:+.4f}" for k, v in shift.items())


def _row(name: str, e: Errors, raw: Errors, offset: list[float]) -> str:
    stress = "-" if e.stress_rmse_GPa is None else f"{e.stress_rmse_GPa:.3f}"
    return (
        f"{name:>13} {e.n_frames:6d} {e.force_rmse_eV_A:11.4f} "
        f"{e.energy_rmse_eV_atom * 1000:13.1f} {raw.energy_rmse_eV_atom * 1000:10.1f} "
        f"{np.mean(offset) * 1000:+19.1f} {stress:>10}"
    )


def made_frames(name: str, calc: Calculator, workdir: Path) -> list[Atoms]:
    """The subset's unlabelled frames, made once and kept in ``workdir``."""
    cache = workdir / f"frames-{name}.extxyz"
    if cache.exists():
        frames = read(cache, ":")
    else:
        start = time.perf_counter()
        frames = SUBSETS[name](calc)
        for frame in frames:
            frame.calc = None
            frame.info = {"subset": name}
        workdir.mkdir(parents=True, exist_ok=True)
        write(cache, frames)
        print(
            f"{name}: {len(frames)} frames made in {time.perf_counter() - start:.0f} s"
        )
    for frame in frames:
        grid = kpoint_grid(frame, 2.0).size
        lengths = frame.cell.lengths().round(2)
        print(f"  {name}: {len(frame)} atoms, cell {lengths} Å, k {grid}")
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "broad_test_dft.extxyz")
    parser.add_argument("--old", type=Path, default=HERE / "test_dft.extxyz")
    parser.add_argument("--work", type=Path, default=HERE / "broad_testset_work")
    parser.add_argument(
        "--subsets", nargs="+", choices=sorted(SUBSETS), default=list(SUBSETS)
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="make the frames, print cost, no DFT"
    )
    args = parser.parse_args()

    backend = SevenNetBackend(threads=1)
    calc = backend.calculator(backend.resolve("7net-0"))
    labeler = make_labeler(LabelerConfig(code="gpaw"))  # the example's preset
    labelled, seconds = [], []
    for name in args.subsets:
        frames = made_frames(name, calc, args.work)
        if not args.dry_run:
            done, took = label_all(frames, labeler, args.work)
            labelled += done
            seconds += took
    if args.dry_run:
        return
    write(args.out, labelled)
    print(
        f"wrote {len(labelled)} frames to {args.out}; DFT {sum(seconds):.0f} s in all"
    )
    zero_shot(backend, labelled, read(args.old, ":"), args.work)


if __name__ == "__main__":
    main()
