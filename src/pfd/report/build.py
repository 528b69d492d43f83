"""``write_report``: compute (or reuse) every enabled section, write the page."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.io import read

from pfd.config import RunConfig
from pfd.db import write_json_atomic
from pfd.errors import PFDError
from pfd.layout import RunLayout
from pfd.progress import Reporter
from pfd.report import amorphous, defects, extrapolation, molecules, sections
from pfd.report.cache import Section, atoms_digest, file_digest
from pfd.report.defects import Later
from pfd.report.dft import DFTJobs, dft_labeller
from pfd.report.models import Model, run_models
from pfd.report.page import render
from pfd.state import RunState

#: sections that return :class:`Later`: their DFT jobs run side by side
DEFERRED = ("vacancy", "surfaces")
#: sections of periodic structures: a run of molecules skips them
CRYSTAL_ONLY = ("eos", "phonons", "vacancy", "diffusion")


@dataclass
class Book:
    """The report's numbers as they are computed or read back from the cache."""

    out: Path
    report: Reporter
    common: dict[str, Any]  # what every section's key holds: models, structures
    numbers: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    later: dict[str, tuple[Section, Later]] = field(default_factory=dict)

    def section(self, name: str, key: Any, compute: Callable[[], Any]) -> None:
        """Numbers of section ``name``: cached under ``key``, else computed.

        A :class:`Later` result is finished (and saved) by :meth:`settle`.
        """
        cache = Section(self.out, name, {**self.common, name: key})
        cached = cache.load()
        if cached is not None:
            self.numbers[name], self.seconds[name] = cached
            self.reused.append(name)
            return
        self.report.info(f"report: {name}")
        t0 = time.perf_counter()
        result = compute()
        self.seconds[name] = time.perf_counter() - t0
        if isinstance(result, Later):
            self.later[name] = (cache, result)
        else:
            self.numbers[name] = cache.save(result, self.seconds[name])

    def settle(self) -> None:
        """Finish the sections waiting on DFT jobs, in the order they started."""
        for name, (cache, later) in self.later.items():
            t0 = time.perf_counter()
            result = later.finish()
            self.seconds[name] += time.perf_counter() - t0
            self.numbers[name] = cache.save(result, self.seconds[name])
        self.later.clear()


def write_report(config: RunConfig, report: Reporter | None = None) -> Path:
    """Compute (or reuse) every enabled section; write index.html and report.json."""
    report = report or Reporter()
    layout = RunLayout(config.run_dir)
    state = RunState.load(config.run_dir)
    if not state.finished:
        raise PFDError(
            f"run '{config.run_dir}' has not finished fine-tuning; "
            "run 'pfd run CONFIG' first"
        )
    out = layout.report
    out.mkdir(exist_ok=True)
    models = run_models(config)
    inputs = _inputs(config)
    structures = [atoms for atoms, _ in inputs]
    common = {
        "models": {m.name: m.digest() for m in models},
        "structures": atoms_digest(structures),
    }
    book = Book(out, report, common)
    book.numbers["models"] = {m.name: layout.relative(m.path) for m in models}
    jobs = dft_labeller(config, out)
    try:
        _add_sections(book, config, models, inputs, state, jobs)
    finally:
        jobs.close()
    book.numbers["seconds"] = book.seconds
    book.numbers["reused"] = book.reused
    write_json_atomic(out / "report.json", book.numbers)
    (out / "index.html").write_text(render(book.numbers, config, out))
    report.info(f"report: {out / 'index.html'}")
    return out / "index.html"


def _add_sections(
    book: Book,
    config: RunConfig,
    models: list[Model],
    inputs: list[tuple[Atoms, Any]],
    state: RunState,
    jobs: DFTJobs,
) -> None:
    """Every enabled section, in the order of the page."""
    rcfg, out = config.report, book.out
    structures = [atoms for atoms, _ in inputs]
    labeler = config.labeler.model_dump(mode="json")
    datasets = _datasets(config)
    digests = {k: file_digest(path) for k, (path, _) in datasets.items()}
    frames = {k: v for k, (_, v) in datasets.items()}
    temps = list(rcfg.diffusion.temperatures_K or config.explore.temperatures_K)
    threads = config.model.threads
    eos, phonons, vacancy = rcfg.eos, rcfg.phonons, rcfg.vacancy
    surf, diff, speed = rcfg.surfaces, rcfg.diffusion, rcfg.speed
    slabs = defects.report_slabs(inputs, surf) if surf.enabled else []
    crystal = bool(sections.crystals(structures))  # else molecules only
    vib = rcfg.vibrations
    cut = [atoms_digest(c) for _, c, _ in slabs]
    plan = [  # name, enabled, what its numbers depend on besides models, compute
        ("errors", bool(frames), digests,
         lambda: sections.errors_section(models, frames, out)),
        ("errors_by_subset", bool(frames), digests,
         lambda: sections.subset_errors_section(models, frames)),
        ("eos", eos.enabled, [eos.model_dump(), eos.dft and labeler],
         lambda: sections.eos_section(models, structures, eos, jobs, out)),
        ("phonons", phonons.enabled, [phonons.model_dump(), phonons.dft and labeler],
         lambda: sections.phonon_section(models, structures, phonons, jobs, out)),
        ("vacancy", vacancy.enabled, [vacancy.model_dump(), vacancy.dft and labeler],
         lambda: defects.vacancy_section(models, structures, vacancy, jobs)),
        ("surfaces", bool(slabs),
         [surf.model_dump(), surf.dft and labeler, cut],
         lambda: defects.surface_section(models, slabs, surf, jobs)),
        ("diffusion", diff.enabled, [diff.model_dump(), temps],
         lambda: sections.diffusion_section(models, structures, diff, temps, out)),
        ("speed", speed.enabled, [speed.model_dump(), threads],
         lambda: sections.speed_section(models, structures, speed, threads, out)),
        ("vibrations", vib.enabled and bool(molecules.molecules(structures)),
         [vib.model_dump(), labeler],
         lambda: molecules.vibrations_section(models, structures, vib, jobs, out)),
        *amorphous.plan_entry(config, models, inputs, frames, out),
        *_extrapolation(config, models, structures, slabs, frames, temps),
    ]  # fmt: skip
    book.numbers["learning_curve"] = sections.learning_curve(state, config, out)
    for name, enabled, key, compute in plan:
        if not enabled or (name in CRYSTAL_ONLY and not crystal):
            continue
        if name not in DEFERRED:
            book.settle()
        book.section(name, key, compute)
    book.settle()
    _say_cells(book)
    _say_flagged(book)


def _extrapolation(
    config: RunConfig,
    models: list[Model],
    structures: list[Atoms],
    slabs: list,
    frames: dict[str, list[Atoms]],
    temps: list[float],
) -> list[tuple]:
    """The committee's deviation along each analysis: a plan entry, if the run
    has a committee and a student."""
    from pfd.students.committee import recorded_committee

    committee = recorded_committee(config.run_dir)
    student = next((m for m in models if m.name == "student"), None)
    if committee is None or student is None:
        return []
    rcfg = config.report
    key = [extrapolation.committee_key(committee), rcfg.model_dump(mode="json"), temps]

    def compute() -> dict:
        found = extrapolation.visited(student, structures, slabs, frames, rcfg, temps)
        return extrapolation.extrapolation_section(committee, found)

    return [("extrapolation", True, key, compute)]


def _say_cells(book: Book) -> None:
    """The cells of the vacancy and surface sections, on the terminal."""
    for name, per_model in book.numbers.get("vacancy", {}).items():
        n = next(iter(per_model.values()))["natoms"]
        book.report.info(
            f"report: vacancy of {name} in a {n}-atom cell "
            "(finite-size effects not converged)"
        )
    for name, slab in book.numbers.get("surfaces", {}).items():
        book.report.info(f"report: surface {name}, {slab['natoms']} atoms")


def _say_flagged(book: Book) -> None:
    """The analyses whose student numbers rest on extrapolation, on the terminal."""
    found = book.numbers.get("extrapolation")
    if not found or found["threshold_eV_A"] is None:
        return
    flagged = [k for k, v in found["analyses"].items() if v["n_flagged"]]
    book.report.info(
        f"report: committee deviation above {found['threshold_eV_A']:.3f} eV/Å in "
        f"{len(flagged)} of {len(found['analyses'])} analyses"
        + (f": {', '.join(flagged)}" if flagged else "")
    )
    if (found.get("ranking") or {}).get("weak"):
        from pfd.students.committee import ranking_line

        book.report.info(f"report: {ranking_line(found['ranking'])}")


def _inputs(config: RunConfig) -> list[tuple[Atoms, Any]]:
    """The input structures, each with its YAML entry (its variants) when known."""
    from pfd import structures

    read_inputs = getattr(structures, "read_inputs", None)
    if read_inputs is not None:
        return read_inputs(config.structures)
    return [(atoms, None) for atoms in structures.read_structures(config.structures)]


def _datasets(config: RunConfig) -> dict[str, tuple[Path, list[Atoms]]]:
    """Labelled frames to measure errors on: the run's DFT, and held-out test data."""
    paths = {"dft_run": RunLayout(config.run_dir).dft}
    for k, test in enumerate(config.report.test_data):
        if not Path(test).is_file():
            raise PFDError(f"report.test_data '{test}' not found; fix the path")
        # the first is 'dft_test' (as with one file), the others by their name
        name = "dft_test" if k == 0 else f"dft_{sections.slug(Path(test).stem)}"
        paths[name] = Path(test)
    found = {k: (p, _labelled(p)) for k, p in paths.items()}
    return {k: v for k, v in found.items() if v[1]}


def _labelled(path: Path) -> list[Atoms]:
    if not path.exists() or not path.stat().st_size:
        return []
    return [a for a in read(path, ":") if a.calc is not None]
