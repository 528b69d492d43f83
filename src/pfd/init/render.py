"""The text of the YAML ``pfd init`` writes: every choice with its reason beside it.

Loop sizes are the Si example's (examples/si/pfd.yaml), which converged in two
iterations: 6 initial frames, 6 labels per iteration, 40 epochs.
"""

from __future__ import annotations

from typing import Any

import yaml

from pfd.init.dft import DFTChoice

COMMENT_COLUMN = 30


def flow(value: Any) -> str:
    """``value`` as one line of YAML (flow style); whole floats as integers."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, list):
        value = [
            int(v) if isinstance(v, float) and v.is_integer() else v for v in value
        ]
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10**6)
        .strip()
        .removesuffix("\n...")
    )


def entry(indent: int, key: str, value: Any = None, comment: str = "") -> str:
    """``key: value  # comment`` at ``indent`` spaces, comments aligned."""
    text = " " * indent + (f"{key}:" if value is None else f"{key}: {flow(value)}")
    if comment:
        text = f"{text.ljust(COMMENT_COLUMN - 1)} # {comment}"
    return text


def render(choices, model: str, checkpoint: str | None, dft: DFTChoice) -> str:
    """The whole YAML for ``choices`` (see :func:`pfd.init.decide`)."""
    blocks = [
        _header(choices),
        _structures(choices),
        _model(model, checkpoint),
        _labeler(dft),
        _loop(choices),
        _distill(choices),
        _report(choices),
    ]
    return "\n\n".join("\n".join(b) for b in blocks) + "\n"


def _header(c) -> list[str]:
    kind = "periodic crystal" if c.periodic else "molecule (not periodic)"
    return [
        f"# {c.formula}: {kind}, {c.natoms} atoms per DFT frame. Written by "
        "`pfd init`;",
        "# every value is a starting point with its reason. Check it and see the DFT",
        "# cost with `pfd run --dry-run THIS.yaml`, then `pfd run THIS.yaml`.",
        entry(0, "name", c.name),
        entry(0, "run_dir", f"runs/{c.name}", "relative to this file"),
        entry(0, "seed", 0),
    ]


def _structures(c) -> list[str]:
    widths = " x ".join(f"{w:.2f}" for w in c.widths_A)
    lines = ["structures:", entry(2, "- path", c.structure, "; ".join(c.notes))]
    why = (
        f"widths {widths} Å >= {c.cutoff_A:g} Å, the model's cutoff"
        if c.periodic
        else "a molecule is used as it is"
    )
    lines.append(entry(4, "supercell", list(c.supercell), why))
    return lines


def _model(model: str, checkpoint: str | None) -> list[str]:
    lines = ["model:", entry(2, "backend", model)]
    if checkpoint:
        lines.append(entry(2, "checkpoint", checkpoint))
    elif model == "sevennet":
        lines.append(entry(2, "checkpoint", "7net-0", "ships in the sevenn wheel"))
    lines.append(entry(2, "threads", 2, "torch threads for training and MD"))
    return lines


def _labeler(dft: DFTChoice) -> list[str]:
    lines = [f"# {note}" for note in dft.notes]
    lines += ["labeler:", entry(2, "code", dft.code)]
    if dft.parameters:
        lines.append(entry(2, "parameters"))
        lines += [
            entry(4, key, value, dft.comments.get(key, ""))
            for key, value in dft.parameters.items()
        ]
    else:
        lines.append(entry(2, "parameters", {}, "the preset as it is"))
    lines += [
        entry(2, "workers", 0, "DFT jobs side by side: 0 = one per CPU core"),
        entry(2, "timeout_s", 3600, "per frame; a job over it is a failed frame"),
    ]
    return lines


def _loop(c) -> list[str]:
    if c.periodic:
        melting = f"{c.melting.kelvin:.0f} K ({c.melting.source})"
        why_t = f"~0.2, 0.5, 0.9 of the melting estimate, {melting}"
        pressures, why_p = [None, 10000], "NVT, and NPT at 1 GPa"
    else:
        why_t = "a molecule's vibrations; raise them to sample bond breaking"
        pressures, why_p = [None], "NVT only: a molecule has no pressure"
    return [
        "initial:",
        entry(2, "frames_per_structure", 6, "perturbed copies labelled first"),
        entry(2, "displacement_A", 0.08),
        entry(2, "strain", 0.03 if c.periodic else 0.0),
        "",
        "finetune:",
        entry(2, "epochs", 40),
        entry(2, "batch_size", 4),
        entry(2, "learning_rate", 0.002),
        entry(2, "lr_decay", 0.95),
        "",
        "explore:",
        entry(2, "temperatures_K", c.temperatures_K, why_t),
        entry(2, "pressures_bar", pressures, why_p),
        entry(2, "steps", c.steps, f"{c.steps * c.timestep_fs / 1000:g} ps"),
        entry(
            2, "timestep_fs", c.timestep_fs, "2 fs; 1 fs with light atoms, 0.5 with H"
        ),
        entry(2, "sample_every", c.sample_every, "~40 candidates per trajectory"),
        "",
        "select:",
        entry(2, "method", "entropy"),
        entry(2, "max_per_iteration", 6, "DFT labels per iteration at most"),
        "",
        "convergence:",
        entry(2, "force_rmse_eV_A", 0.05),
        entry(2, "energy_rmse_eV_atom", 0.005),
        entry(2, "max_iterations", 5),
    ]


def _distill(c) -> list[str]:
    sizes = [[1, 1, 1], [2, 1, 1]] if c.periodic else [[1, 1, 1]]
    return [
        "distill:                     # phase 2: fine-tuned teacher -> DeePMD student",
        entry(2, "supercells", sizes, "teacher MD sizes, multiples of the above"),
        entry(2, "steps", 120),
        entry(2, "sample_every", 5),
        entry(2, "rattles_per_frame", 2),
        entry(2, "student"),
        entry(4, "rcut_A", 6.0),
        entry(4, "steps", 14000, "more steps, better student"),
    ] + ([] if c.periodic else [
        entry(4, "start_lr", 1e-3, "3e-3 (the default) left a Si6 student at ~zero "
              "forces for 2 of 3 seeds"),
    ])  # fmt: skip


def _report(c) -> list[str]:
    lines = [
        "report:",
        "  # test_data: my_dft.extxyz  # held-out DFT frames, if you have some",
    ]
    if c.periodic:
        lines += [
            entry(2, "eos", {"dft": True}, "7 DFT single points of the cell"),
            entry(2, "phonons", {"dft": False}, "true: 1 DFT job per displacement"),
        ]
    else:
        off = {"enabled": False}
        lines += [
            entry(2, "eos", off, "equation of state: crystals only"),
            entry(2, "phonons", off, "phonon bands: crystals only"),
            entry(2, "vacancy", off),
            entry(2, "diffusion", off, "no diffusion for one molecule"),
        ]
    return lines
