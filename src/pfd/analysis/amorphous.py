"""Amorphous structure: melt-quench MD and the first coordination shell of g(r).

:func:`melt_quench` holds a cell at ``melt_K`` (it melts), cools it linearly to
``final_K`` at ``quench_K_per_ps`` and anneals it there: every stage is one
continuous Langevin trajectory, sampled every ``sample_every`` steps. Each
frame carries its mean squared displacement from the start (``info['msd_A2']``,
the centre of mass's drift removed); :func:`melted` says whether the melt stage
moved the atoms further than a crystal's vibrations (a small periodic crystal
superheats: without nucleation sites it can stay crystalline well above its
melting point, and its "quench" is then the crystal again).
:func:`rdf_of` is ASE's g(r) (:func:`pfd.analysis.diffusion.rdf`) on
repetitions of each frame big enough for ``rmax`` (a periodic cell's g(r) is
that of its repetition). :func:`first_shell` finds the first peak and the
first minimum after it, and the coordination number
n = 4 pi rho int_0^r_min g(r) r^2 dr (summed over ASE's bins).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms, units
from ase.geometry import find_mic

from pfd.analysis._common import CalculatorSource, as_calculator, min_height
from pfd.analysis.diffusion import RDF, nearest_neighbour_distance, rdf
from pfd.config.loop import ramp_temperature
from pfd.structures import too_close

MIN_DISTANCE_FACTOR = 0.6  # of the covalent-radius sum: closer is a broken MD
MELT_MSD_FRACTION = 0.1  # of the squared nearest-neighbour distance, as the
# diffusion section's "no diffusion" floor: a crystal's atoms vibrate within
# ~0.15 of it (Lindemann), MSD ~0.02 d²; a liquid moves d² in a few 0.1 ps


@dataclass(frozen=True)
class QuenchProtocol:
    """Melt at ``melt_K``, cool linearly to ``final_K``, anneal there."""

    melt_K: float
    final_K: float = 300.0
    melt_steps: int = 200
    quench_K_per_ps: float = 2000.0
    anneal_steps: int = 200
    sample_every: int = 10
    timestep_fs: float = 2.0
    friction_fs: float = 100.0

    @property
    def quench_steps(self) -> int:
        """Steps of the linear cooling from ``melt_K`` to ``final_K``."""
        ps = max(self.melt_K - self.final_K, 0.0) / self.quench_K_per_ps
        return max(1, round(ps * 1000 / self.timestep_fs))

    @property
    def total_steps(self) -> int:
        return self.melt_steps + self.quench_steps + self.anneal_steps

    def target_temperature(self, step: int) -> float:
        """The thermostat's temperature at ``step`` (1-based): an exploration
        ramp's with the melt as its hold."""
        return ramp_temperature(
            self.melt_K, self.final_K, self.melt_steps, self.quench_steps, step
        )

    def stage(self, step: int) -> str:
        if step <= self.melt_steps:
            return "melt"
        return "quench" if step <= self.melt_steps + self.quench_steps else "anneal"


@dataclass
class Quench:
    """Sampled frames of one melt-quench (``info['stage']``, ``target_K``)."""

    frames: list[Atoms] = field(default_factory=list)
    steps_done: int = 0
    stopped: str | None = None
    seconds: float = 0.0

    def stage(self, name: str) -> list[Atoms]:
        return [a for a in self.frames if a.info["stage"] == name]


@dataclass(frozen=True)
class MeltCheck:
    """Whether a quench's melt stage melted: MSD against ``fraction`` d_nn²."""

    melted: bool
    msd_A2: float
    floor_A2: float
    nn_distance_A: float
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def melted(
    quench: Quench, atoms: Atoms, fraction: float = MELT_MSD_FRACTION
) -> MeltCheck | None:
    """Did the melt stage of ``quench`` (of ``atoms``) melt? None without one.

    Melted when the mean squared displacement over the melt stage reaches
    ``fraction`` of the squared nearest-neighbour distance of ``atoms``.
    """
    melt = quench.stage("melt")
    if not melt:
        return None
    msd = float(melt[-1].info["msd_A2"])
    nn = nearest_neighbour_distance(atoms)
    floor = fraction * nn**2
    ok = msd >= floor
    said = f"MSD {msd:.3g} Å² over the melt's {melt[-1].info['step']} steps"
    limit = f"{fraction:g} x the squared nearest-neighbour distance ({floor:.3g} Å²)"
    reason = (
        f"{said} >= {limit}: it melted"
        if ok
        else f"{said} < {limit}: it did not melt (the crystal superheated); "
        "melt longer or hotter (report.rdf melt_steps, melt_K)"
    )
    return MeltCheck(ok, msd, float(floor), float(nn), reason)


def melt_quench(
    atoms: Atoms, model: CalculatorSource, protocol: QuenchProtocol, seed: int = 0
) -> Quench:
    """One melt-quench-anneal trajectory of ``atoms`` (ASE's LangevinBAOAB, NVT).

    Stops at the first sampled frame with too-close atoms or a failed model
    call, keeping the frames before it (``stopped`` says why).
    """
    from ase.md.langevinbaoab import LangevinBAOAB
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    rng = np.random.default_rng(seed)
    system = atoms.copy()
    system.calc = as_calculator(model)
    thermalize_momenta(system, temperature_K=protocol.melt_K, rng=rng)
    Stationary(system)
    dyn = LangevinBAOAB(
        system,
        timestep=protocol.timestep_fs * units.fs,
        temperature_K=protocol.melt_K,
        T_tau=protocol.friction_fs * units.fs,
        rng=rng,
    )
    out = Quench()
    t0 = time.perf_counter()
    masses = system.get_masses()[:, None]
    previous = system.get_positions()
    moved = np.zeros_like(previous)  # unwrapped displacement since the start
    every = protocol.sample_every
    for start in range(0, protocol.total_steps, every):
        step = min(start + every, protocol.total_steps)
        dyn.set_temperature(temperature_K=protocol.target_temperature(start + 1))
        try:
            dyn.run(step - start)
        except Exception as err:  # a model can fail on a broken geometry
            out.stopped = f"step {step}: MD failed ({type(err).__name__}: {err})"
            break
        out.steps_done = step
        if too_close(system, MIN_DISTANCE_FACTOR):
            out.stopped = f"step {step}: atoms too close"
            break
        now = system.get_positions()
        moved += find_mic(now - previous, system.cell, system.pbc)[0]
        previous = now
        drift = (moved * masses).sum(0) / masses.sum()
        frame = system.copy()
        frame.calc = None
        frame.info.update(
            msd_A2=float(((moved - drift) ** 2).sum(1).mean()),
            stage=protocol.stage(step),
            step=step,
            target_K=protocol.target_temperature(step),
            temperature_K=float(system.get_temperature()),
        )
        out.frames.append(frame)
    out.seconds = time.perf_counter() - t0
    return out


def repeated_for(atoms: Atoms, rmax: float) -> Atoms:
    """``atoms`` repeated until every periodic height exceeds ``2 rmax`` (ASE's
    condition for g(r) up to ``rmax``)."""
    cell = np.asarray(atoms.cell)
    vol = abs(np.linalg.det(cell))
    reps = []
    for i in range(3):
        h = vol / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
        reps.append(math.floor(2 * rmax / h) + 1 if atoms.pbc[i] else 1)
    return atoms.repeat(reps) if max(reps) > 1 else atoms


def rdf_of(frames: list[Atoms], rmax: float = 6.0, nbins: int = 200) -> RDF:
    """g(r) averaged over ``frames`` (ASE's), cells repeated as ``rmax`` needs."""
    if not frames:
        raise ValueError("g(r) needs at least one frame")
    return rdf([repeated_for(a, rmax) for a in frames], rmax, nbins)


def number_density(frames: list[Atoms]) -> float:
    """Mean atoms per Å³ of ``frames``."""
    return float(np.mean([len(a) / a.get_volume() for a in frames]))


@dataclass(frozen=True)
class Shell:
    """The first coordination shell of one g(r)."""

    peak_A: float  # r of the first peak
    peak_g: float  # its height
    fwhm_A: float  # its full width at half maximum
    minimum_A: float  # r of the first minimum after it
    coordination: float  # neighbours within minimum_A (or the cutoff asked for)

    def to_dict(self) -> dict:
        return asdict(self)


def first_shell(
    curve: RDF, density: float, smooth_bins: int = 5, cutoff_A: float | None = None
) -> Shell:
    """First peak, its width, the first minimum after it and the coordination.

    The peak is the first maximum at least half as high as the highest, on g(r)
    smoothed by a running mean of ``smooth_bins`` bins; its width is taken there
    too. The minimum is the first dip after the first peak of g(r) smoothed
    more (a Gaussian of 0.1 Å), within 1.5x that peak's distance (the lowest
    point there if it has no dip): two 32-atom frames of a Si quench put dips
    of counting noise inside the first shell, which the 5-bin mean took for
    the minimum (coordination 0.4). The coordination integrates the unsmoothed
    g(r) up to it, or up to ``cutoff_A`` when given: curves compared with each
    other need one cutoff (two frames of a 3500 K Si liquid dip at 2.7 Å, by
    noise: coordination 3.1 there, 4.0 within the glass's 2.9 Å).
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks

    r, g = np.asarray(curve.r), np.asarray(curve.g)
    dr = r[1] - r[0]
    smooth = np.convolve(g, np.ones(smooth_bins) / smooth_bins, mode="same")
    top = smooth.max()
    peak = int(find_peaks(np.r_[0.0, smooth, 0.0], height=0.5 * top)[0][0] - 1)
    broad = gaussian_filter1d(g, sigma=max(0.1 / dr, 1.0), mode="nearest")
    crest = int(find_peaks(np.r_[0.0, broad, 0.0], height=0.5 * broad.max())[0][0] - 1)
    stop = min(int(np.searchsorted(r, 1.5 * r[crest])), len(g) - 1)
    dips = find_peaks(-broad[crest : stop + 1])[0]
    minimum = crest + int(dips[0] if len(dips) else np.argmin(broad[crest : stop + 1]))
    end = minimum if cutoff_A is None else int(np.searchsorted(r, cutoff_A))
    shells = ((r + dr / 2) ** 3 - (r - dr / 2) ** 3)[:end]  # ASE's bin volumes
    inside = float(np.sum(g[:end] * shells)) / 3
    return Shell(
        peak_A=float(r[peak]),
        peak_g=float(smooth[peak]),
        fwhm_A=_fwhm(r, smooth, peak),
        minimum_A=float(r[minimum]),
        coordination=4 * np.pi * density * inside,
    )


def _fwhm(r: np.ndarray, g: np.ndarray, peak: int) -> float:
    """Full width at half maximum of the peak at index ``peak`` (bin resolution)."""
    half = g[peak] / 2
    lo = peak
    while lo > 0 and g[lo - 1] > half:
        lo -= 1
    hi = peak
    while hi < len(g) - 1 and g[hi + 1] > half:
        hi += 1
    return float(r[hi] - r[lo] + (r[1] - r[0]))


def structure_of(
    frames: list[Atoms],
    rmax: float = 6.0,
    nbins: int = 200,
    cutoff_A: float | None = None,
) -> tuple[RDF, Shell]:
    """g(r) of ``frames`` and its first shell (coordination within ``cutoff_A``
    when given, else within the first minimum)."""
    curve = rdf_of(frames, rmax, nbins)
    return curve, first_shell(curve, number_density(frames), cutoff_A=cutoff_A)


def max_rmax(atoms: Atoms) -> float:
    """Half the smallest periodic height: beyond it g(r) sees the cell's images."""
    return 0.5 * min_height(atoms) if all(atoms.pbc) else math.inf
