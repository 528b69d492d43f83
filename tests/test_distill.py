"""Distillation for real: an EMT teacher, a tiny DeePMD se_e2_a student (TensorFlow)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from tests.conftest import merge

pytest.importorskip("deepmd")
pytest.importorskip("dpdata")

TINY = {
    "model": {"backend": "pfd.testing:EMTBackend", "checkpoint": "foundation.json"},
    "labeler": {"parameters": {"asap_cutoff": True}},
    "explore": {"temperatures_K": [300, 900], "pressures_bar": [None, 1000]},
    "select": {"method": "random"},
    "distill": {
        "enabled": True,
        "steps": 40,
        "sample_every": 2,
        "max_frames": 150,
        # the teacher's MD also on a vacancy and a (100) slab (no DFT cost)
        "variants": {"vacancies": True, "surfaces": [[1, 0, 0]], "min_atoms": 8},
        "committee": 2,  # the student and one member
        "committee_steps": 600,
        "student": {
            "rcut_A": 4.5,
            "embedding": [8, 16],
            "axis_neuron": 4,
            "fitting": [16, 16],
            "steps": 1500,
        },
    },
}


def _pfd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pfd", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def distilled(tmp_path_factory) -> Path:
    """One finished run with a student: fine-tune (EMT stand-in), then distil."""
    import yaml
    from ase.build import bulk
    from ase.io import write

    from tests.conftest import BASE_CONFIG

    tmp = tmp_path_factory.mktemp("distill")
    write(tmp / "cu.extxyz", bulk("Cu", "fcc", 3.6, cubic=True))
    (tmp / "pfd.yaml").write_text(yaml.safe_dump(merge(BASE_CONFIG, TINY)))
    proc = _pfd("run", "pfd.yaml", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (tmp / "terminal.txt").write_text(proc.stdout + proc.stderr)
    return tmp / "run"


#: what TensorFlow, DeePMD-kit's loader, Numba and Python warnings print
NOISE = ("implib-gen", "libcudart", "W0000", "oneDNN", "cpu_feature_guard",
         "tensorflow", "Warning", "OMP_NUM_THREADS", "\x1b[")  # fmt: skip


def test_terminal_shows_only_pfd_lines(distilled: Path):
    """Fine-tuning and distillation (a TensorFlow student): pfd's lines only."""
    terminal = (distilled.parent / "terminal.txt").read_text()
    assert "converged;" in terminal
    assert "round_1: training the se_e2_a student" in terminal
    for noise in NOISE:
        assert noise not in terminal, noise
    assert (distilled / "logs" / "pfd.log").is_file()  # where the rest went


def test_student_learns_the_teacher(distilled: Path):
    from pfd.analysis.errors import predict
    from pfd.calculators import load_calculator

    student = distilled / "student" / "graph_c.pb"
    assert student.is_file()
    assert (distilled / "student" / "graph.pb").is_file()
    test = read(distilled / "distill" / "test.extxyz", ":")
    preds = predict(test, load_calculator(student, type_map=["Cu"]))
    ref = np.concatenate([p.forces[0].ravel() for p in preds])
    got = np.concatenate([p.forces[1].ravel() for p in preds])
    assert np.all(np.isfinite(got))
    # a model that learned nothing predicts ~0 forces: error ~ RMS of the forces
    rmse = np.sqrt(np.mean((got - ref) ** 2))
    assert rmse < 0.5 * np.sqrt(np.mean(ref**2)), rmse
    check = json.loads((distilled / "student" / "check.json").read_text())
    assert check["vs_teacher"]["force_rmse_eV_A"] == pytest.approx(rmse, rel=1e-3)
    assert check["vs_dft"]["force_rmse_ratio"] > 0
    assert check["n_train"] + check["n_test"] <= 150
    assert check["learned"] is True
    # the variants the teacher's MD ran are held out too, each scored on its own
    made = {a.info["variant"] for a in read(distilled / "distill/variants.extxyz", ":")}
    assert made == {"vacancy-Cu0", "slab-100"}
    by_variant = check["vs_teacher_by_variant"]
    assert set(by_variant) == made | {"bulk"}
    assert sum(v["n_frames"] for v in by_variant.values()) == len(test)
    assert check["teacher_force_rms_eV_A"] == pytest.approx(
        np.sqrt(np.mean(ref**2)), rel=1e-3
    )


def test_status_says_when_the_student_learned_nothing(distilled: Path):
    """A student stuck at ~zero forces (seen on a Si6 cluster at a high learning
    rate) is named in 'pfd status' with the fix, not shipped silently."""
    from pfd.cli.status import _student_line

    check = json.loads((distilled / "student" / "check.json").read_text())
    assert "NOT LEARNED" not in _student_line(check)
    assert "slab-100" in _student_line(check)  # the student's error per variant
    stuck = check | {"learned": False}
    assert "NOT LEARNED" in _student_line(stuck)
    assert "start_lr" in _student_line(stuck)


def test_outputs_for_use_elsewhere(distilled: Path):
    import dpdata

    work = distilled / "distill"
    spec = json.loads((distilled / "student" / "input.json").read_text())
    assert spec["model"]["descriptor"]["type"] == "se_e2_a"
    assert spec["loss"]["limit_pref_v"] > 0  # the virial is trained: NPT works
    assert (distilled / "student" / "lcurve.out").read_text().count("\n") > 2
    systems = dpdata.MultiSystems(type_map=["Cu"])
    for sub in (work / "deepmd" / "train_round_1").iterdir():
        systems.append(dpdata.LabeledSystem(str(sub), fmt="deepmd/npy"))
    n_train = json.loads((distilled / "student" / "check.json").read_text())["n_train"]
    assert systems.get_nframes() == n_train
    assert all("virials" in s.data for s in systems)
    frames = read(work / "teacher_labelled.extxyz", ":")
    assert {a.info["subset"] for a in frames} == {"train", "test"}
    # wider than fine-tuning: half the lowest and 1.2x the highest temperature
    sources = {a.info["source"].split()[1] for a in frames}
    assert {"150K", "1080K"} <= sources


def test_student_in_pfd_test(distilled: Path):
    proc = _pfd(
        "test",
        str(distilled / "student" / "graph_c.pb"),
        str(distilled / "dft.extxyz"),
        "-o",
        "student.json",
        cwd=distilled,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((distilled / "student.json").read_text())
    assert result["all"]["n_frames"] == len(read(distilled / "dft.extxyz", ":"))
    # the run's committee: its max force deviation beside the errors
    assert "max force deviation per frame" in proc.stdout
    assert "committee of 2 (graph_c.pb, member_2.pb)" in proc.stdout
    committee = result["committee"]
    devs = committee["max_force_deviation_eV_A"]
    assert len(devs) == result["all"]["n_frames"]
    assert min(devs) > 0  # two students from other seeds never agree exactly
    assert committee["by_subset"]["all"]["max_eV_A"] == pytest.approx(max(devs))
    check = json.loads((distilled / "student" / "check.json").read_text())
    assert committee["threshold_eV_A"] == check["committee"]["threshold_eV_A"]


def test_student_runs_in_lammps(distilled: Path):
    from pfd.students.lammps import lammps_binary, run_lammps

    if lammps_binary() is None:
        pytest.skip("LAMMPS (lmp) not installed")
    lammps = distilled / "student" / "lammps"
    proc = run_lammps(lammps, 20, log="smoke.log")
    assert proc.returncode == 0, proc.stdout[-2000:]
    log = (lammps / "smoke.log").read_text()
    assert "pair_style      deepmd ../graph_c.pb ../member_2.pb out_freq 100" in log
    devi = np.loadtxt(lammps / "model_devi.out", ndmin=2)  # the committee's
    assert devi[0, 0] == 0
    assert devi[0, 4] > 0  # max_devi_f
    assert "Loop time" in log
    thermo = log.split("Step")[1].split("Loop time")[0].split("\n")[1:-1]
    temps = [float(line.split()[1]) for line in thermo if line.strip()]
    assert all(np.isfinite(temps))
    assert temps[-1] > 0
    # the report's LAMMPS speed: the same student, timed per size
    from ase.build import bulk

    from pfd.students.lammps import student_lammps_speed

    cells = [bulk("Cu", "fcc", 3.6, cubic=True).repeat(k) for k in (1, 3)]
    ms = student_lammps_speed(distilled / "student" / "graph_c.pb", cells, 5, 1)
    assert set(ms) == {4, 108}
    assert all(0 < v < 100 for v in ms.values())
    # two MPI ranks sharing the cores (mpirun from deepmd-kit[lmp]'s MPICH)
    two = student_lammps_speed(distilled / "student" / "graph_c.pb", cells[1:], 5, 2, 2)
    assert set(two) == {108}
    assert 0 < two[108] < 100


def test_rerun_reuses_everything(distilled: Path):
    trained = distilled / "distill" / "round_1" / "graph_c.pb"
    member = distilled / "distill" / "committee_2" / "graph_c.pb"
    before = trained.stat().st_mtime_ns, member.stat().st_mtime_ns
    proc = _pfd("distill", str(distilled), cwd=distilled)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "teacher MD" not in proc.stderr
    assert "training the" not in proc.stderr
    assert (trained.stat().st_mtime_ns, member.stat().st_mtime_ns) == before


def test_bad_input(distilled: Path, tmp_path: Path):
    proc = _pfd("distill", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 1
    assert "not a pfd run directory" in proc.stderr
    # a run directory whose fine-tuning never finished: no teacher
    (tmp_path / "config.json").write_text(
        (distilled / "config.json").read_text().replace(str(distilled), str(tmp_path))
    )
    proc = _pfd("distill", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 1
    assert "no fine-tuned teacher" in proc.stderr
    # a type map without the structure's element
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "structures: [{path: x.xyz}]\ndistill: {student: {type_map: [Ag]}}\n"
    )
    proc = _pfd("distill", str(distilled), "--config", str(cfg), cwd=tmp_path)
    assert proc.returncode == 1
    assert "lacks Cu" in proc.stderr
    # settings that would make the teacher data inconsistent
    cfg.write_text("structures: [{path: x.xyz}]\ndistill: {steps: 41}\n")
    proc = _pfd("distill", str(distilled), "--config", str(cfg), cwd=tmp_path)
    assert proc.returncode == 1
    assert "changed since the teacher data" in proc.stderr
    # teacher MD that samples nothing: no data, no training
    fresh = tmp_path / "fresh"
    skip = shutil.ignore_patterns("distill", "student")
    shutil.copytree(distilled, fresh, ignore=skip)
    cfg.write_text(
        "structures: [{path: x.xyz}]\ndistill: {steps: 3, sample_every: 5}\n"
    )
    proc = _pfd("distill", str(fresh), "--config", str(cfg), cwd=tmp_path)
    assert proc.returncode == 1
    assert "too few for a student" in proc.stderr


def test_speed_benchmark_smoke(distilled: Path, tmp_path: Path):
    """benchmarks/speed.py on tiny sizes, so that it cannot rot."""
    from pfd.students.lammps import lammps_binary

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import speed

    out = tmp_path / "speed.json"
    args = [str(distilled), "--teacher-sizes", "4", "--student-sizes", "4", "1300"]
    args += ["--steps", "2", "--lammps-steps", "4", "--no-foundation"]
    result = speed.main([*args, "--json", str(out)])
    rows = {(r["model"], r["engine"], r["natoms"]) for r in result["rows"]}
    assert ("teacher", "ASE", 4) in rows
    assert ("student", "ASE", 1372) in rows
    assert all(r["ms_atom_step"] > 0 for r in result["rows"])
    assert result["speedup"]["ASE"] > 0
    if lammps_binary():
        assert ("student", "LAMMPS", 1372) in rows
    assert json.loads(out.read_text())["threads"] == 2


def test_student_sel_and_energy_zero(distilled: Path):
    """sel is counted before training; the energy bias is refitted after it."""
    from pfd.analysis.errors import predict
    from pfd.calculators import load_calculator

    spec = json.loads((distilled / "student" / "input.json").read_text())
    sel = spec["model"]["descriptor"]["sel"]
    assert isinstance(sel, list)
    assert sel[0] % 4 == 0
    assert sel[0] > 12  # fcc Cu: 12 nearest neighbours alone
    log = (distilled / "distill" / "round_1" / "dp.log").read_text()
    assert "Change energy bias" in log
    train = read(distilled / "distill" / "train.extxyz", ":")
    preds = predict(train, load_calculator(distilled / "student" / "graph.pb"))
    de = np.array([(p.energy[1] - p.energy[0]) / p.natoms for p in preds])
    n = np.array([p.natoms for p in preds], dtype=float)
    # the least-squares shift of the total energies (a bias per atom, frames of
    # several sizes: the variants) leaves no offset in sum_i n_i (E_i - E'_i)
    offset = np.sum(n**2 * de) / np.sum(n**2)
    assert abs(offset) < 0.1 * np.sqrt(np.mean(de**2)) + 1e-4, offset


def test_moved_run_keeps_its_student(distilled: Path, tmp_path: Path):
    """check.json records paths inside the run: a copied run finds its student."""
    from pfd.distillation import student_model

    check = json.loads((distilled / "student" / "check.json").read_text())
    assert check["student"] == "student/graph_c.pb"
    assert check["vs_dft"]["data"] == "dft.extxyz"
    moved = tmp_path / "elsewhere"
    shutil.copytree(distilled / "student", moved / "student")
    assert student_model(moved) == moved / "student" / "graph_c.pb"
    assert student_model(tmp_path) is None
    from pfd.students.committee import recorded_committee

    assert check["committee"]["members"] == [
        "student/graph_c.pb",
        "student/member_2.pb",
    ]
    assert recorded_committee(moved).members[1] == moved / "student" / "member_2.pb"


def test_committee_threshold_from_held_out_frames(distilled: Path):
    """The flag threshold: 2x the 95th percentile of the held-out frames' deviation;
    frames far from the teacher's MD deviate more than those held out."""
    from pfd.students.committee import committee_deviation, recorded_committee

    committee = recorded_committee(distilled)
    held_out = read(distilled / "distill" / "test.extxyz", ":")
    dev = committee_deviation(committee.members, held_out)
    assert committee.threshold_eV_A == pytest.approx(2 * np.percentile(dev, 95))
    hot = [a.copy() for a in held_out[:5]]
    for k, atoms in enumerate(hot):  # atoms shaken far beyond the MD's range
        atoms.rattle(0.3, seed=k)
    assert np.median(committee_deviation(committee.members, hot)) > np.median(dev)


def test_committee_benchmark_smoke(distilled: Path, capsys, monkeypatch):
    """benchmarks/committee.py on the tiny run (its committee reused), so that it
    cannot rot."""
    for var in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS"):
        monkeypatch.setenv(var, "2")  # restored after: the benchmark sets them
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import committee

    data = ["--data", str(distilled / "distill" / "test.extxyz")]
    data += ["--data", str(distilled / "dft.extxyz")]
    result = committee.main([str(distilled), "--members", "2", "--steps", "600", *data])
    printed = capsys.readouterr().out
    assert "top 20% by deviation vs top 20% by force RMSE" in printed
    assert len(result["frames"]) == len(read(distilled / "dft.extxyz", ":")) + len(
        read(distilled / "distill" / "test.extxyz", ":")
    )
    assert all(r["max_devi_f_eV_A"] > 0 for r in result["frames"])
    assert set(result["train_seconds"]) == {"member_2"}
