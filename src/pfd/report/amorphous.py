"""The amorphous-structure section: g(r) of DFT-labelled quench frames, and of
an independent melt-quench with the teacher and with the student.

The DFT curves are of the geometries DFT labelled: frames of the run's quench
ramps (model MD during exploration) and held-out ``report.test_data`` frames
whose ``info['subset']`` names an amorphous or quench set (an independent quench,
``examples/a-si/make_test_set.py``). The model curves are of one new
melt-quench-anneal trajectory per model (:func:`pfd.analysis.amorphous.melt_quench`,
the same protocol and seed for both, another seed than the exploration's) on
the first periodic input structure as the YAML gives it (its supercell): g(r)
of the anneal's frames, and whether the melt stage melted
(:func:`pfd.analysis.amorphous.melted`): a small crystal cell superheats, and
the anneal of a melt that did not melt is the crystal again, labelled so on
the page and in the figure. The teacher's and student's errors on the DFT
frames go beside their curves.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from pfd.analysis import errors_of, predict
from pfd.analysis.amorphous import (
    MELT_MSD_FRACTION,
    QuenchProtocol,
    first_shell,
    melt_quench,
    melted,
    number_density,
    structure_of,
)
from pfd.analysis.diffusion import RDF
from pfd.config import RampConfig, RunConfig
from pfd.config.report import RDFReportConfig
from pfd.report import plots
from pfd.report.cache import atoms_digest
from pfd.report.models import Model
from pfd.report.sections import crystals

RAMP = re.compile(r"(\d+(?:\.\d+)?)->(\d+(?:\.\d+)?)K\b.*\bstep (\d+)")
MOVERS = ("teacher", "student")  # the models that run the independent quench


def quench_ramps(
    config: RunConfig, inputs: list[tuple[Atoms, Any]]
) -> list[RampConfig]:
    """The run's cooling ramps (start_K > stop_K): the exploration's and those of
    each structure's ``variants.melt``."""
    ramps = [r for r in config.explore.ramps if r.start_K > r.stop_K]
    for atoms, cfg in inputs:
        variants = getattr(cfg, "variants", None)
        if variants is not None and variants.melt:
            from pfd.variants import melt_ramps, melting_point

            top = melting_point(atoms, variants.melting_K)
            found = melt_ramps(top, variants.melt_steps)
            ramps += [r for r in found if r.start_K > r.stop_K]
    return ramps


def wanted(settings: RDFReportConfig, ramps: list[RampConfig]) -> bool:
    """``settings.enabled``, or by default whether the run quenches."""
    return bool(ramps) if settings.enabled is None else settings.enabled


def protocol(
    settings: RDFReportConfig, ramps: list[RampConfig], atoms: Atoms
) -> QuenchProtocol:
    """The independent quench: the settings' temperatures, else the run's ramps',
    else 1.5x the melting point (pymatgen's, elements only) down to 300 K."""
    melt = settings.melt_K or max((r.start_K for r in ramps), default=None)
    if melt is None:
        from pfd.variants import melting_point

        melt = 1.5 * melting_point(atoms)
    final = settings.final_K or min((r.stop_K for r in ramps), default=300.0)
    return QuenchProtocol(
        melt_K=float(melt),
        final_K=float(final),
        melt_steps=settings.melt_steps,
        quench_K_per_ps=settings.quench_K_per_ps,
        anneal_steps=settings.anneal_steps,
        sample_every=settings.sample_every,
        timestep_fs=settings.timestep_fs,
        friction_fs=settings.friction_fs,
    )


def ramp_target_temperature(source: str, ramps: list[RampConfig]) -> float | None:
    """The thermostat temperature of a frame of a cooling ramp, from its
    ``info['source']`` ('s0 2500->300K NVT step 40'); None if not such a frame."""
    found = RAMP.search(source)
    if found is None:
        return None
    start, stop, step = float(found[1]), float(found[2]), int(found[3])
    if start <= stop:
        return None
    ramp = next((r for r in ramps if (r.start_K, r.stop_K) == (start, stop)), None)
    if ramp is None:  # a ramp no longer in the config: its start
        return start
    return ramp.temperature_at(step)


def dft_sets(
    frames: dict[str, list[Atoms]],
    ramps: list[RampConfig],
    settings: RDFReportConfig,
) -> dict[str, list[Atoms]]:
    """The DFT-labelled frames to draw: the run's quench frames (at most
    ``dft_max_K``) and the test frames of each matching subset."""
    out: dict[str, list[Atoms]] = {}
    run = []
    for atoms in frames.get("dft_run", []):
        target = ramp_target_temperature(str(atoms.info.get("source", "")), ramps)
        if target is None or (settings.dft_max_K and target > settings.dft_max_K):
            continue
        atoms.info["target_K"] = target
        run.append(atoms)
    if run:
        out["DFT: run's quench frames"] = run
    patterns = [p.lower() for p in settings.test_subsets]
    held_out = [a for key, found in frames.items() if key != "dft_run" for a in found]
    for atoms in held_out:  # every report.test_data file
        subset = str(atoms.info.get("subset", ""))
        if any(p in subset.lower() for p in patterns):
            out.setdefault(f"DFT test: {subset}", []).append(atoms)
    return out


def _temperature(frames: list[Atoms]) -> float | None:
    values = [a.info.get("target_K", a.info.get("temperature_K")) for a in frames]
    values = [float(v) for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _curve(frames: list[Atoms], settings: RDFReportConfig, **extra: Any) -> dict:
    g, shell = structure_of(frames, settings.rmax_A, settings.nbins)
    return {
        "frames": len(frames),
        "density_A3": number_density(frames),
        "temperature_K": _temperature(frames),
        "shell": shell.to_dict(),
        "rdf": asdict(g),
        **extra,
    }


def amorphous_section(
    models: list[Model],
    atoms: Atoms,
    dft: dict[str, list[Atoms]],
    settings: RDFReportConfig,
    proto: QuenchProtocol,
    out: Path,
) -> dict:
    """g(r), first peak and coordination of every curve; one figure."""
    movers = [m for m in models if m.name in MOVERS]
    curves: dict[str, dict] = {}
    for name, frames in dft.items():
        errors = {m.name: errors_of(predict(frames, m)).as_dict() for m in movers}
        curves[name] = _curve(frames, settings, kind="DFT", errors=errors)
    for m in movers:
        run = melt_quench(atoms, m, proto, settings.seed)
        anneal = run.stage("anneal")
        check = melted(run, atoms)
        found = {
            "kind": "model",
            "seconds": run.seconds,
            "steps": run.steps_done,
            "stopped": run.stopped,
            "melt": check.to_dict() if check else None,
        }
        curves[m.name] = (
            _curve(anneal, settings, **found) if anneal else {"frames": 0, **found}
        )
    if all(atoms.pbc):
        curves["crystal (input)"] = _curve([atoms], settings, kind="crystal")
    source, cutoff = shared_cutoff(curves)
    for c in curves.values():
        if cutoff is not None and "rdf" in c:
            shell = first_shell(RDF(**c["rdf"]), c["density_A3"], cutoff_A=cutoff)
            c["coordination_at_cutoff"] = shell.coordination
    plot_rdfs(curves, proto, len(atoms), out / "rdf_amorphous.png")
    return {
        "natoms": len(atoms),
        "protocol": {
            **asdict(proto),
            "quench_steps": proto.quench_steps,
            "total_steps": proto.total_steps,
        },
        "seed": settings.seed,
        "melt_msd_fraction": MELT_MSD_FRACTION,
        "cutoff_A": cutoff,
        "cutoff_from": source,
        "curves": curves,
    }


def shared_cutoff(curves: dict[str, dict]) -> tuple[str | None, float | None]:
    """One coordination cutoff for every curve: the first minimum of the
    disordered curve with the most frames (a model's anneal after a melt that
    melted, or a DFT set), where counting noise moves it least."""
    found = [
        (c["frames"], name)
        for name, c in curves.items()
        if "shell" in c and (c["kind"] == "DFT" or (c.get("melt") or {}).get("melted"))
    ]
    if not found:
        return None, None
    name = max(found)[1]
    return name, curves[name]["shell"]["minimum_A"]


def plot_rdfs(curves: dict[str, dict], proto: QuenchProtocol, natoms: int, path: Path):
    """Every curve but the crystal's on one figure."""
    fig, ax = plots.pyplot().subplots(figsize=(7, 4.2))
    styles = iter(["-", "--", ":", "-."] * 4)
    for name, c in curves.items():
        if c.get("kind") == "crystal" or "rdf" not in c:
            continue
        dft = c["kind"] == "DFT"
        solid = (c.get("melt") or {}).get("melted") is False
        ax.plot(
            c["rdf"]["r"],
            c["rdf"]["g"],
            next(styles) if dft else (":" if solid else "-"),
            color="black" if dft else plots.color(name),
            label=f"{name} ({c['frames']} frames)"
            + (": did not melt, a crystal" if solid else ""),
        )
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.set_title(
        f"{natoms} atoms: melt {proto.melt_K:g} K, quench {proto.quench_K_per_ps:g} "
        f"K/ps, anneal {proto.final_K:g} K"
    )
    ax.axhline(1.0, color="gray", lw=0.5)
    ax.legend(fontsize=8)
    plots.save(fig, path)


def plan_entry(
    config: RunConfig,
    models: list[Model],
    inputs: list[tuple[Atoms, Any]],
    frames: dict[str, list[Atoms]],
    out: Path,
) -> list[tuple]:
    """``("rdf", enabled, key, compute)`` for :mod:`pfd.report.build`'s plan."""
    settings = config.report.rdf
    ramps = quench_ramps(config, inputs)
    cells = crystals([a for a, _ in inputs])
    if not wanted(settings, ramps) or not cells:
        return []
    atoms = cells[0][1]
    proto = protocol(settings, ramps, atoms)
    dft = dft_sets(frames, ramps, settings)
    key = [
        settings.model_dump(mode="json"),
        asdict(proto),
        {k: atoms_digest(v) for k, v in dft.items()},
    ]

    def compute() -> dict:
        return amorphous_section(models, atoms, dft, settings, proto, out)

    return [("rdf", True, key, compute)]
