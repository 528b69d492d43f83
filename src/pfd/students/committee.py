"""A committee of students and their disagreement: DeePMD-kit's model deviation.

Members 2..N are trained like the shipped student (member 1) but from other
seeds (initial weights, data order), on the same frames; where they disagree
the shipped student is guessing. Per frame, as ``dp model-devi`` and LAMMPS'
``pair_style deepmd ... out_file model_devi.out`` define it: for each atom the
spread of the predicted force vectors over the models,
``sqrt(mean_k |F_k - <F>|^2)``, then the largest over atoms (``max_devi_f``);
and the spread of the energy per atom (``devi_e``).

:func:`deviation` evaluates models on frames; :func:`build_committee` trains
the members; :func:`recorded_committee` reads a run's committee back from
``student/check.json``; :func:`run_deviation` is all of it for a report.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms

from pfd.errors import PFDError
from pfd.layout import RunLayout

if TYPE_CHECKING:
    from pfd.analysis._common import CalculatorSource
    from pfd.config import DistillConfig, StudentConfig
    from pfd.progress import Reporter
    from pfd.students import Student

    #: a model file, an ASE calculator or a function that builds one
    Model = str | Path | CalculatorSource

#: the default flag threshold: this many times the held-out frames' percentile
THRESHOLD_FACTOR = 2.0
THRESHOLD_PERCENTILE = 95.0
#: members 2..N are shipped as ``member_K.pb`` beside the student
MEMBER = "member_"
#: :func:`ranking` compares this share of frames at the top of each order
TOP_SHARE = 0.2
#: below this rank correlation the deviation is said to be a weak error estimate
WEAK_SPEARMAN = 0.5


@dataclass(frozen=True)
class Deviation:
    """Per frame: the committee's max force deviation (eV/Å), its mean over
    atoms (eV/Å) and the deviation of the energy per atom (eV/atom)."""

    max_force_eV_A: np.ndarray
    mean_force_eV_A: np.ndarray
    energy_eV_atom: np.ndarray


@dataclass(frozen=True)
class DeviationSummary:
    """The max force deviation over a set of frames, and how many are flagged."""

    n_frames: int
    mean_eV_A: float
    max_eV_A: float
    threshold_eV_A: float | None = None
    n_flagged: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Committee:
    """A run's committee: its model files (the shipped student first) and the
    max force deviation above which a frame is flagged."""

    members: list[Path]
    threshold_eV_A: float | None = None
    threshold_from: str = ""
    ranking: dict[str, Any] | None = None  # of :func:`ranking`, on held-out frames


# --- deviation -------------------------------------------------------------------


def committee_deviation(models: Sequence[Model], frames: list[Atoms]) -> np.ndarray:
    """The max force deviation (eV/Å) of each frame: DeePMD's ``max_devi_f``."""
    return deviation(models, frames).max_force_eV_A


def deviation(
    models: Sequence[Model], frames: list[Atoms], *, threads: int = 2
) -> Deviation:
    """The committee ``models``' deviation on each of ``frames``.

    Frozen DeePMD-kit graphs (``.pb`` files) go through DeePMD-kit's own
    ``calc_model_devi``; any other models (files :func:`pfd.load_calculator`
    reads, ASE calculators or functions that build one) through their ASE
    calculators and the same formula.
    """
    if len(models) < 2:
        raise PFDError(
            f"a committee deviation needs 2 or more models, got {len(models)}; "
            "give the other members (pfd test --committee FILE, distill.committee)"
        )
    if not frames:
        raise PFDError("no frames to measure the committee's deviation on")
    if all(isinstance(m, str | Path) and Path(m).suffix == ".pb" for m in models):
        rows = _deepmd_deviation([Path(m) for m in models], frames)
    else:
        rows = _ase_deviation(models, frames, threads)
    rows = np.asarray(rows, dtype=float)
    return Deviation(rows[:, 0], rows[:, 1], rows[:, 2])


def _deepmd_deviation(models: list[Path], frames: list[Atoms]) -> list[tuple]:
    """Rows (max_devi_f, avg_devi_f, devi_e) from ``deepmd.infer.calc_model_devi``."""
    from pfd.students.deepmd import quiet_stderr, require_deepmd

    require_deepmd()
    from deepmd.infer import DeepPot
    from deepmd.infer.model_devi import calc_model_devi

    for path in models:
        if not path.is_file():
            raise PFDError(f"committee member '{path}' not found")
    with quiet_stderr():  # DeePMD's ops library complains there is no CUDA
        pots = [DeepPot(str(p)) for p in models]
    type_map = pots[0].get_type_map()
    for path, pot in zip(models, pots, strict=True):
        if pot.get_type_map() != type_map:
            raise PFDError(
                f"committee member '{path}' has the elements {pot.get_type_map()}, "
                f"'{models[0]}' {type_map}; members must share one type_map"
            )
    rows = []
    for atoms in frames:
        atype = _types(atoms, type_map, models[0])
        box = atoms.cell.array.reshape(1, -1) if all(atoms.pbc) else None
        coord = atoms.positions.reshape(1, -1)
        devi = calc_model_devi(coord, box, atype, pots)[0]
        rows.append((devi[4], devi[6], devi[7]))  # max_f, avg_f, e (DeePMD's columns)
    return rows


def _types(atoms: Atoms, type_map: list[str], model: Path) -> np.ndarray:
    lacking = sorted(set(atoms.get_chemical_symbols()) - set(type_map))
    if lacking:
        raise PFDError(
            f"committee '{model}' has no type for {', '.join(lacking)}; give frames "
            f"of its elements {type_map}"
        )
    return np.array([type_map.index(s) for s in atoms.get_chemical_symbols()])


def _ase_deviation(
    models: Sequence[Model], frames: list[Atoms], threads: int
) -> list[tuple]:
    """The same rows from any models' ASE calculators."""
    from pfd.analysis._common import as_calculator
    from pfd.calculators import load_calculator

    calcs = [
        load_calculator(m, threads=threads)
        if isinstance(m, str | Path)
        else as_calculator(m)
        for m in models
    ]
    rows = []
    for atoms in frames:
        forces, energies = [], []
        for calc in calcs:
            work = atoms.copy()
            work.calc = calc
            energies.append(work.get_potential_energy() / len(atoms))
            forces.append(work.get_forces())
        per_atom = np.linalg.norm(np.std(forces, axis=0), axis=-1)
        rows.append((per_atom.max(), per_atom.mean(), np.std(energies)))
    return rows


# --- summaries -------------------------------------------------------------------


def summarize(
    max_force_eV_A: np.ndarray, threshold_eV_A: float | None = None
) -> DeviationSummary:
    """Mean and max of the frames' max force deviation; how many are above."""
    dev = np.asarray(max_force_eV_A, dtype=float)
    flagged = None if threshold_eV_A is None else int((dev > threshold_eV_A).sum())
    return DeviationSummary(
        len(dev), float(dev.mean()), float(dev.max()), threshold_eV_A, flagged
    )


def by_subset(
    frames: list[Atoms], max_force_eV_A: np.ndarray, threshold_eV_A: float | None
) -> dict[str, DeviationSummary]:
    """:func:`summarize` overall (``all``) and per ``info['subset']``, as
    :func:`pfd.analysis.errors.evaluate_by_subset` groups errors."""
    groups: dict[str, list[float]] = defaultdict(list)
    for atoms, dev in zip(frames, max_force_eV_A, strict=True):
        if "subset" in atoms.info:
            groups[str(atoms.info["subset"])].append(dev)
    out = {"all": summarize(max_force_eV_A, threshold_eV_A)}
    for name, devs in sorted(groups.items()):
        out[name] = summarize(np.array(devs), threshold_eV_A)
    return out


def ranking(
    max_force_eV_A: np.ndarray, error_eV_A: np.ndarray, top: float = TOP_SHARE
) -> dict[str, Any]:
    """How well a committee's deviation ranks a student's errors over frames.

    Spearman's rank correlation of the max force deviation with ``error_eV_A``
    (per frame, e.g. :func:`pfd.analysis.errors.max_force_errors`), and, of the
    ``top`` share of frames by error, how many are also in that share by
    deviation (``top_shared`` of ``top_n``); ``weak`` when the correlation is
    below :data:`WEAK_SPEARMAN`: a frame under the threshold is then not shown
    to be right.
    """
    from scipy.stats import spearmanr

    dev = np.asarray(max_force_eV_A, dtype=float)
    err = np.asarray(error_eV_A, dtype=float)
    if dev.shape != err.shape or dev.ndim != 1:
        raise ValueError(f"one deviation per error: {dev.shape} vs {err.shape}")
    n = max(1, round(top * len(dev)))
    by_dev = set(np.argsort(-dev, kind="stable")[:n].tolist())
    by_err = set(np.argsort(-err, kind="stable")[:n].tolist())
    ranked = len(dev) > 2 and np.ptp(dev) > 0 and np.ptp(err) > 0  # else undefined
    rho = float(spearmanr(dev, err).statistic) if ranked else float("nan")
    rho_or_none = None if np.isnan(rho) else rho
    return {
        "n_frames": len(dev),
        "spearman": rho_or_none,
        "top_share": top,
        "top_n": n,
        "top_shared": len(by_dev & by_err),
        "weak": rho_or_none is None or rho_or_none < WEAK_SPEARMAN,
    }


def ranking_line(
    rank: dict[str, Any],
    frames: str = "held-out teacher frames",
    of: str = "the student's",
) -> str:
    """One sentence on :func:`ranking`'s result over ``frames`` (their name; by
    default those distillation records it on)."""
    rho = rank.get("spearman")
    line = (
        f"the committee's deviation ranks {of} largest atomic force error "
        f"on {rank['n_frames']} {frames} with Spearman "
        + ("n/a" if rho is None else f"{rho:.2f}")
        + f"; of the top {rank['top_share']:.0%} by error, {rank['top_shared']}/"
        f"{rank['top_n']} are in the top {rank['top_share']:.0%} by deviation"
    )
    if rank.get("weak"):
        line += (
            ": WEAK, a frame below the threshold is not shown to be right (train "
            "the members longer: distill.committee_steps)"
        )
    return line


def default_threshold(held_out_max_force_eV_A: np.ndarray) -> float:
    """2x the 95th percentile of the max force deviation on training-like frames."""
    held = np.asarray(held_out_max_force_eV_A, dtype=float)
    return float(THRESHOLD_FACTOR * np.percentile(held, THRESHOLD_PERCENTILE))


# --- training --------------------------------------------------------------------


def member_file(student_dir: Path, k: int, suffix: str) -> Path:
    """Where member ``k`` (2..N) of the committee is shipped, beside the student."""
    return Path(student_dir) / f"{MEMBER}{k}{suffix}"


def member_dir(work: Path, k: int) -> Path:
    """Where member ``k`` (2..N) of the committee trains."""
    return Path(work) / f"committee_{k}"


def build_committee(
    make: Callable[[StudentConfig], Student],
    shipped: Path,
    train: list[Atoms],
    test: list[Atoms],
    cfg: DistillConfig,
    work: Path,
    out: Path,
    seed: int,
    report: Reporter,
) -> tuple[list[Path], dict[str, Any]]:
    """The committee's models (``shipped`` first) and its record for
    ``check.json`` (``{}`` when ``cfg.committee`` is 1).

    Members 2..``cfg.committee`` train ``cfg.committee_steps`` each in
    ``work/committee_K``, each from its own seed, and are copied to ``out``; a
    finished member is not retrained. ``make`` builds the student from its
    settings. The deviation on the held-out frames ``test`` sets the threshold.
    """
    if cfg.committee < 2:
        return [shipped], {}
    steps = cfg.committee_steps or cfg.student.steps
    member = make(cfg.student.model_copy(update={"steps": steps}))
    members, seconds = [shipped], {}
    for k in range(2, cfg.committee + 1):
        t0 = time.perf_counter()
        model = member.train(
            train,
            test,
            member_dir(work, k),
            seed=seed + 100 * k,
            data_dir=work / member.name,
            report=report,
        )
        seconds[f"member_{k}"] = time.perf_counter() - t0
        members.append(member_file(out, k, model.suffix))
        shutil.copyfile(model, members[-1])
    for stale in set(out.glob(f"{MEMBER}*")) - set(members):
        stale.unlink()  # of a larger committee before
    record = committee_record(members, test, cfg, report) | {"seconds": seconds}
    return members, {"committee": record}


def committee_record(
    members: list[Path], held_out: list[Atoms], cfg: DistillConfig, report: Reporter
) -> dict[str, Any]:
    """The committee's deviation on held-out teacher frames, its threshold, and
    how well it ranks the shipped student's errors there (:func:`ranking`)."""
    from pfd.analysis.errors import max_force_errors, predict
    from pfd.calculators import load_calculator

    dev = committee_deviation(members, held_out)
    errors = max_force_errors(predict(held_out, load_calculator(members[0])))
    rank = ranking(dev, errors)
    threshold, source = cfg.deviation_threshold_eV_A, "distill.deviation_threshold_eV_A"
    if threshold is None:
        threshold = default_threshold(dev)
        source = (
            f"{THRESHOLD_FACTOR:g}x the {THRESHOLD_PERCENTILE:g}th percentile on "
            f"{len(dev)} held-out teacher frames"
        )
    report.info(
        f"committee of {len(members)} students: max force deviation on "
        f"{len(dev)} held-out teacher frames: mean {dev.mean():.3f}, "
        f"{THRESHOLD_PERCENTILE:g}th percentile "
        f"{np.percentile(dev, THRESHOLD_PERCENTILE):.3f} eV/Å; frames above "
        f"{threshold:.3f} eV/Å are flagged"
    )
    report.info(ranking_line(rank))
    return {
        "members": [str(m) for m in members],
        "steps": cfg.committee_steps or cfg.student.steps,
        "held_out": summarize(dev).as_dict(),
        "ranking": rank,
        "threshold_eV_A": threshold,
        "threshold_from": source,
    }


# --- a run's committee -------------------------------------------------------------


def recorded_committee(run_dir: str | Path) -> Committee | None:
    """The committee recorded in a run's ``student/check.json``, if any."""
    layout = RunLayout(Path(run_dir))
    if not layout.student_check.is_file():
        return None
    record = json.loads(layout.student_check.read_text()).get("committee")
    if not record:
        return None
    return Committee(
        [layout.resolve(m) for m in record["members"]],
        record.get("threshold_eV_A"),
        record.get("threshold_from", ""),
        record.get("ranking"),
    )


def committee_of(model: str | Path) -> Committee | None:
    """The committee of a run directory, or of the run whose shipped student
    ``model`` is (``RUN_DIR/student/graph_c.pb``); None otherwise."""
    path = Path(model)
    if path.is_dir():
        return recorded_committee(path)
    if not path.is_file():
        return None
    committee = recorded_committee(path.resolve().parent.parent)
    if committee is None or committee.members[0].resolve() != path.resolve():
        return None
    return committee


def run_deviation(
    run_dir: str | Path, frames: list[Atoms]
) -> dict[str, DeviationSummary] | None:
    """The run's committee deviation on ``frames``, overall and per subset,
    with its recorded threshold; None when the run has no committee."""
    committee = recorded_committee(run_dir)
    if committee is None:
        return None
    dev = committee_deviation(committee.members, frames)
    return by_subset(frames, dev, committee.threshold_eV_A)
