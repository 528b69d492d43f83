"""``pfd run --dry-run``: check everything that needs no DFT, count the DFT jobs,
and estimate their wall time from one timed frame.

:func:`dry_run` is a plain function of a :class:`~pfd.config.RunConfig`. It
writes nothing a real run reads: the one timed frame is a job directory under
``<run_dir>/.dryrun/`` (reused by the next dry-run with the same labeller and
structure), never ``state.json``, ``config.json`` or ``pfd.db``.

How the estimate is made (printed with it):

- one frame of the first structure (its first initial frame: displaced, not
  strained) is labelled as a real job (own process, one thread) and timed;
- a job of N atoms and n_k k-points costs t1 · (N/N1)³ · (n_k/n_k1): plane-wave
  DFT's cubic scaling, an upper bound for cells much larger than the timed one;
- jobs run ``labeler.workers`` side by side (at most one per core), packed
  largest first; a phase's time is its busiest worker's.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from pfd.config import RunConfig
from pfd.errors import PFDError
from pfd.layout import RunLayout

#: Training costs about this many force calls per frame and epoch: calibrated
#: on the Si example (SevenNet, 40 epochs: 70 s for 6 frames, 105 s for 12, with
#: one force call of 0.15 s), not a law; other models and sizes will differ.
TRAIN_CALLS_PER_FRAME = 2.0


@dataclass(frozen=True)
class Phase:
    """DFT jobs of one phase: the atom count of each job."""

    name: str
    jobs: tuple[int, ...]
    atoms_like: tuple[Atoms, ...] = field(default=(), compare=False, repr=False)
    note: str = ""


@dataclass(frozen=True)
class FrameTiming:
    """One labelled frame: its wall time, size, and where its job lies."""

    wall_s: float
    cpu_s: float  # of the job's processes (0: unknown)
    natoms: int
    kpoints: int
    jobdir: Path
    cached: bool

    @property
    def seconds(self) -> float:
        """The job's time on a free core: its CPU time when the machine was busy
        (wall > CPU), its wall time for a job on several cores (CPU > wall)."""
        return min(self.wall_s, self.cpu_s) if self.cpu_s > 0 else self.wall_s


@dataclass
class Plan:
    """What a run will do, checked: DFT phases and the time estimate."""

    checks: list[str]
    phases: list[Phase]
    workers: int
    iterations: int
    timing: FrameTiming | None = None
    model_note: str = ""
    cells: list[Atoms] = field(default_factory=list)  # with variants: all explored
    conditions: list[str] = field(default_factory=list)  # MD per structure


def kpoint_count(config: RunConfig, atoms: Atoms) -> int:
    """k-points of ``atoms`` at the labeller's density (1 if it has none)."""
    from pfd.label.kpoints import kpoint_grid

    params = config.labeler.parameters
    spec = (
        params.get("kpts") if config.labeler.code == "gpaw" else params.get("kpoints")
    )
    if config.labeler.code == "gpaw" and spec is None:
        from pfd.label.gpaw import PRESET

        spec = PRESET["kpts"]
    if config.labeler.code in ("qe", "cp2k", "vasp", "abacus") and spec is None:
        spec = {"density": 2.0}  # their presets
    if not isinstance(spec, dict) or "density" not in spec:
        return 1
    return int(np.prod(kpoint_grid(atoms, spec["density"], "gamma").size))


def check_all(
    config: RunConfig,
) -> tuple[list[str], list[Atoms], list[Atoms], object, Path]:
    """Every check without DFT: (what was checked, structures, their variants
    (:func:`planned_variants`), labeller, model file)."""
    from pfd.label import make_labeler
    from pfd.materials import check_materials
    from pfd.models import make_backend
    from pfd.plan_variants import planned_variants
    from pfd.structures import read_inputs
    from pfd.variants import check_requests, with_variants

    checks = []
    inputs = read_inputs(config.structures)
    structures = [atoms for atoms, _ in inputs]
    for atoms in structures:
        kind = "periodic" if all(atoms.pbc) else "not periodic"
        checks.append(
            f"structure {atoms.info['name']}: {atoms.get_chemical_formula()}, "
            f"{len(atoms)} atoms, {kind}"
        )
    added = check_requests(inputs)  # elements of interstitials
    if config.distill.enabled:
        added |= check_requests(with_variants(inputs, config.distill.variants))
    check_materials(config.explore, inputs)
    symbols = {s for atoms in structures for s in atoms.get_chemical_symbols()}
    symbols |= added
    elements = ", ".join(sorted(symbols))
    backend = make_backend(config.model)
    foundation = backend.resolve(config.model.checkpoint)
    backend.check_elements(foundation, symbols)
    checks.append(f"model {config.model.backend} {foundation.name} covers {elements}")
    labeler = make_labeler(config.labeler)
    labeler.check(symbols)
    checks.append(f"labeller {config.labeler.code} is installed and can do {elements}")
    checks += _check_extras(config)
    variants = planned_variants(config, inputs)  # seconds: after the quick checks
    if variants:
        checks.append(f"{len(variants)} structure variants can be made")
    return checks, structures, variants, labeler, foundation


def _check_extras(config: RunConfig) -> list[str]:
    """Files and packages of the later phases; the run directory."""
    checks = []
    for test_data in config.report.test_data if config.report.enabled else []:
        if not Path(test_data).is_file():
            raise PFDError(f"report.test_data '{test_data}' not found; fix the path")
        checks.append(f"report.test_data {Path(test_data).name} found")
    if config.distill.enabled:
        from pfd.distillation import require_student

        require_student()
        checks.append("the student's packages (DeePMD-kit) are installed")
    parsl = config.execution.config
    parsl_file = config.execution.engine == "parsl" and parsl and parsl.endswith(".py")
    if parsl_file and not Path(parsl).is_file():
        raise PFDError(f"execution.config '{parsl}' not found; fix the path")
    layout = RunLayout(config.run_dir)
    done = (
        len(list(layout.labels.glob("*/output.extxyz")))
        if layout.labels.is_dir()
        else 0
    )
    if layout.config.exists():
        checks.append(
            f"run directory {layout.root} holds a run ({done} DFT jobs done): "
            "'pfd run' resumes it; the counts below are for a run from nothing"
        )
    else:
        checks.append(f"run directory {layout.root} (new)")
    return checks


def dft_phases(
    config: RunConfig, structures: list[Atoms], variants: list[Atoms] = ()
) -> list[Phase]:
    """The DFT jobs of each phase: initial set, each iteration, the report's.

    An iteration's jobs are one per explored cell (structure or variant) in
    turn, as selection goes round them, largest first.
    """
    per = config.initial.frames_per_structure
    initial = [a for a in structures for _ in range(per)]
    initial += [a for a in variants for _ in range(config.initial.frames_per_variant)]
    phases = [Phase("initial", tuple(len(a) for a in initial), tuple(initial))]
    n = config.select.max_per_iteration
    cells = sorted([*structures, *variants], key=len, reverse=True)
    each = [cells[k % len(cells)] for k in range(n)]
    phases.append(
        Phase(
            "each iteration",
            tuple(map(len, each)),
            tuple(each),
            f"at most select.max_per_iteration, for up to "
            f"{config.convergence.max_iterations} iterations",
        )
    )
    if config.report.enabled:
        phases += _report_phases(config, structures)
    return phases


def _report_phases(config: RunConfig, structures: list[Atoms]) -> list[Phase]:
    rep = config.report
    crystals = [a for a in structures if all(a.pbc)]
    phases = []
    if rep.eos.enabled and rep.eos.dft and crystals:
        jobs = [a for a in crystals for _ in range(rep.eos.points)]
        phases.append(Phase("report: EOS", tuple(map(len, jobs)), tuple(jobs)))
    if rep.phonons.enabled and rep.phonons.dft and crystals:
        jobs = [cell for a in crystals for cell in _phonon_cells(a, config)]
        phases.append(Phase("report: phonons", tuple(map(len, jobs)), tuple(jobs)))
    if rep.vacancy.enabled and rep.vacancy.dft and crystals:
        from pfd.analysis.vacancy import vacancy_supercell

        cells = [c for a in crystals if (c := vacancy_supercell(a, rep.vacancy))]
        jobs = [x for c in cells for x in (c, c[1:])]
        phases.append(Phase("report: vacancy", tuple(map(len, jobs)), tuple(jobs)))
    vib = rep.vibrations  # 6N single points per molecule (pfd.report.molecules)
    jobs = [a for a in structures if not any(a.pbc) and vib.wants_dft(len(a))]
    jobs = [a for a in jobs for _ in range(6 * len(a))]
    if vib.enabled and jobs:
        phases.append(Phase("report: vibrations", tuple(map(len, jobs)), tuple(jobs)))
    return phases


def _phonon_cells(atoms: Atoms, config: RunConfig) -> list[Atoms]:
    """The displaced supercells phonopy asks for (one DFT job each)."""
    import warnings

    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell[:],
        scaled_positions=atoms.get_scaled_positions(),
    )
    settings = config.report.phonons
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        phonon = Phonopy(
            unit, supercell_matrix=np.diag(settings.supercell), primitive_matrix="auto"
        )
    phonon.generate_displacements(distance=settings.displacement_A)
    big = atoms.repeat(settings.supercell)
    return [big] * len(phonon.supercells_with_displacements)


def time_one_frame(config: RunConfig, labeler, atoms: Atoms) -> FrameTiming:
    """Label the first initial frame of ``atoms`` once and time it (cached)."""
    from pfd.label.runner import label_one
    from pfd.structures import perturb, structures_digest

    rng = np.random.default_rng([config.seed, 0, 0, 0])  # as the run's init-s0-0
    frame = perturb(atoms, rng, config.initial.displacement_A, 0.0)
    key = json.dumps(
        [
            config.labeler.model_dump(
                mode="json",
                include={
                    "code",
                    "calculator",
                    "parameters",
                    "command",
                    "env",
                    "launcher",
                },
            ),
            structures_digest([frame]),
        ],
        sort_keys=True,
    )
    jobdir = config.run_dir / ".dryrun" / hashlib.sha256(key.encode()).hexdigest()[:12]
    record = jobdir / "timing.json"
    nk = kpoint_count(config, frame)
    if record.is_file() and (jobdir / "output.extxyz").is_file():
        held = json.loads(record.read_text())
        wall, cpu = float(held["wall_s"]), float(held.get("cpu_s", 0.0))
        return FrameTiming(wall, cpu, len(frame), nk, jobdir, cached=True)
    before = _children_cpu()
    t0 = time.perf_counter()
    label_one(labeler, frame, jobdir, config.labeler.timeout_s, config.labeler.launcher)
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - before
    record.write_text(json.dumps({"wall_s": wall, "cpu_s": cpu, "natoms": len(frame)}))
    return FrameTiming(wall, cpu, len(frame), nk, jobdir, cached=False)


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished child processes."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def job_seconds(config: RunConfig, timing: FrameTiming, atoms: Atoms) -> float:
    """t1 · (N/N1)³ · (n_k/n_k1) for a job on ``atoms``."""
    ratio = (len(atoms) / timing.natoms) ** 3
    return timing.seconds * ratio * kpoint_count(config, atoms) / timing.kpoints


def makespan(durations: list[float], workers: int) -> float:
    """Wall time of ``durations`` on ``workers`` side by side, largest first."""
    loads = [0.0] * max(1, workers)
    for d in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


def phase_seconds(plan: Plan, config: RunConfig, phase: Phase) -> float:
    if plan.timing is None:
        return float("nan")
    times = [job_seconds(config, plan.timing, a) for a in phase.atoms_like]
    return makespan(times, plan.workers)


def dft_workers(config: RunConfig) -> int:
    """Jobs side by side: labeler.workers (0: one per core), at most one per core."""
    cores = os.cpu_count() or 1
    return min(config.labeler.workers or cores, cores)


def dry_run(
    config: RunConfig, *, time_dft: bool = True, time_model: bool = True
) -> Plan:
    """Check the run, count its DFT jobs and (``time_dft``) time one frame."""
    from pfd.materials import condition_lines
    from pfd.structures import exploration_cells

    checks, structures, variants, labeler, foundation = check_all(config)
    cells = exploration_cells(structures, variants)
    plan = Plan(
        checks=checks,
        phases=dft_phases(config, structures, variants),
        workers=dft_workers(config),
        iterations=config.convergence.max_iterations,
        cells=cells if variants else [],
        conditions=condition_lines(config.explore, structures),
    )
    if time_dft:
        plan.timing = time_one_frame(config, labeler, structures[0])
    if time_model:
        from pfd.plan_model import model_estimate

        plan.model_note = model_estimate(config, foundation, cells)
    return plan


def minutes(seconds: float) -> str:
    if seconds != seconds:  # nan: not timed
        return "not timed"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def format_plan(plan: Plan, config: RunConfig) -> list[str]:
    """What ``pfd run --dry-run`` prints: checks, DFT jobs, the estimate."""
    from pfd.plan_variants import cell_lines

    lines = ["Checked (no DFT run):", *(f"  ok  {c}" for c in plan.checks)]
    lines.append("DFT jobs (atoms per job):")
    for phase in plan.phases:
        sizes = sorted(set(phase.jobs))
        size = "/".join(map(str, sizes))
        note = f"  ({phase.note})" if phase.note else ""
        lines.append(
            f"  {phase.name:<16} {len(phase.jobs):>4} jobs x {size} atoms{note}"
        )
    n_init = len(plan.phases[0].jobs)
    n_iter = len(plan.phases[1].jobs)
    n_report = sum(len(p.jobs) for p in plan.phases[2:])
    most = n_init + plan.iterations * n_iter + n_report
    lines.append(
        f"  {'total':<16} {most:>4} jobs at most; "
        f"{n_init + 2 * n_iter + n_report} if converged after 2 iterations"
    )
    lines += cell_lines(plan, config)
    lines += plan.conditions
    lines += _estimate_lines(plan, config)
    if plan.model_note:
        lines.append(plan.model_note)
    return lines


def _estimate_lines(plan: Plan, config: RunConfig) -> list[str]:
    timing = plan.timing
    if timing is None:
        return ["DFT time: not estimated (no frame timed)"]
    how = "reused from" if timing.cached else "job kept in"
    busy = ""
    if 0 < timing.cpu_s < 0.7 * timing.wall_s:
        busy = (
            f"; the machine was busy ({timing.wall_s:.0f} s wall for "
            f"{timing.cpu_s:.0f} s CPU): the estimate takes the CPU time, "
            "as on free cores"
        )
    lines = [
        f"One frame timed: {timing.natoms} atoms, {timing.kpoints} k-points, "
        f"{timing.seconds:.1f} s with {config.labeler.code} "
        f"({how} {timing.jobdir}){busy}",
        f"Estimated DFT wall time, {plan.workers} jobs side by side "
        "(t1 x (N/N1)^3 x k-points ratio per job):",
    ]
    times = {p.name: phase_seconds(plan, config, p) for p in plan.phases}
    for name, seconds in times.items():
        lines.append(f"  {name:<16} {minutes(seconds)}")
    first = times["initial"] + times["each iteration"]
    report = sum(s for n, s in times.items() if n.startswith("report"))
    whole = times["initial"] + plan.iterations * times["each iteration"] + report
    lines.append(
        f"  {'to iteration 1':<16} {minutes(first)} (initial + iteration 1); "
        f"all {plan.iterations} iterations and report: {minutes(whole)} at most"
    )
    return lines
