"""Speed: milliseconds per atom-step of MD, models compared at equal size."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms, units

from pfd.analysis._common import CalculatorSource, as_calculator, supercell
from pfd.config import SpeedReportConfig

WARMUP_STEPS = 2


@dataclass(frozen=True)
class SpeedResult:
    """ms per atom-step per model and cell size; the fast/slow ratio at equal size.

    ``speedup`` is ``slow``'s time over ``fast``'s at ``equal_size_atoms``,
    the largest cell both ran; ``threads`` is what the models ran with.
    """

    threads: int | None
    ms_per_atom_step: dict[str, dict[int, float]]
    fast: str
    slow: str
    equal_size_atoms: int | None
    speedup: float | None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ms_per_atom_step"] = {
            m: {str(n): v for n, v in rows.items()}
            for m, rows in self.ms_per_atom_step.items()
        }
        return out


def md_speed(model: CalculatorSource, atoms: Atoms, steps: int) -> float:
    """Milliseconds per atom-step of velocity-Verlet MD (after 2 warm-up steps)."""
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    # moving atoms: a perfect crystal at rest has zero forces, never moves, and a
    # calculator would return its cached result instead of computing
    system = atoms.copy()
    rng = np.random.default_rng(0)
    system.rattle(0.01, rng=rng)
    thermalize_momenta(system, temperature_K=300, rng=rng)
    system.calc = as_calculator(model)
    dyn = VelocityVerlet(system, timestep=units.fs)
    dyn.run(WARMUP_STEPS)
    t0 = time.perf_counter()
    dyn.run(steps)
    return 1000 * (time.perf_counter() - t0) / steps / len(system)


def speed_cells(atoms: Atoms, settings: SpeedReportConfig) -> tuple[list, list]:
    """(every cell, the cells a slow model runs), smallest first.

    Cells are the repetitions of ``atoms`` with at least each of
    ``settings.sizes`` atoms; a slow model runs those of at most
    ``teacher_max_atoms``, plus the largest repetition within that limit when
    a requested size lies beyond it, so that both run at the largest size the
    slow one can do.
    """
    cells = {len(c): c for c in (supercell(atoms, n) for n in settings.sizes)}
    limit = settings.teacher_max_atoms
    slow = {n: c for n, c in cells.items() if n <= limit}
    if all(atoms.pbc) and max(cells) > limit:
        k = round((limit / len(atoms)) ** (1 / 3)) + 1
        while k > 1 and len(atoms) * k**3 > limit:
            k -= 1
        largest = atoms.repeat(k)
        slow.setdefault(len(largest), largest)
        cells.setdefault(len(largest), largest)
    return [cells[n] for n in sorted(cells)], [slow[n] for n in sorted(slow)]


def compare_speed(
    models: Mapping[str, CalculatorSource],
    atoms: Atoms,
    settings: SpeedReportConfig | None = None,
    *,
    fast: str = "student",
    slow: str = "teacher",
    threads: int | None = None,
) -> SpeedResult:
    """Time each model at the sizes of :func:`speed_cells` (``fast`` at all).

    ``threads`` is recorded as given (the calculators were built with it).
    """
    settings = settings or SpeedReportConfig()
    every, limited = speed_cells(atoms, settings)
    table: dict[str, dict[int, float]] = {}
    for name, model in models.items():
        calc = as_calculator(model)
        cells = every if name == fast else limited
        table[name] = {len(c): md_speed(calc, c, settings.steps) for c in cells}
    common = set(table.get(fast, {})) & set(table.get(slow, {}))
    size = max(common) if common else None
    ratio = table[slow][size] / table[fast][size] if size else None
    return SpeedResult(threads, table, fast, slow, size, ratio)
