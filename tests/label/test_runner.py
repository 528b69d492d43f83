from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from pfd.config import LabelerConfig
from pfd.db import RunDB
from pfd.label import make_labeler
from pfd.label.runner import label_frames
from pfd.structures import perturb


def _db_with_frames(tmp_path: Path, n: int) -> RunDB:
    db = RunDB(tmp_path / "pfd.db")
    rng = np.random.default_rng(3)
    base = bulk("Cu", "fcc", 3.6, cubic=True)
    for k in range(n):
        db.add_pending(
            perturb(base, rng, 0.05, 0.02),
            uid=f"f{k}",
            iteration=1,
            stage="explore",
            source="test",
        )
    return db


def _labeler(calculator: str, **parameters):
    return make_labeler(
        LabelerConfig(code="ase", calculator=calculator, parameters=parameters)
    )


def test_labels_are_stored_with_settings_and_match_emt(tmp_path: Path):
    from ase.calculators.emt import EMT

    db = _db_with_frames(tmp_path, 4)
    stats = label_frames(
        db,
        _labeler("ase.calculators.emt:EMT"),
        1,
        tmp_path / "jobs",
        workers=2,
        timeout_s=60,
        max_attempts=2,
    )
    assert stats.labelled == 4
    assert stats.failed == 0
    frames = db.frames(status="labelled")
    assert len(frames) == 4
    for frame in frames:
        ref = frame.atoms.copy()
        ref.calc = EMT()
        assert frame.atoms.get_potential_energy() == pytest.approx(
            ref.get_potential_energy(), abs=1e-6
        )
        np.testing.assert_allclose(
            frame.atoms.get_forces(), ref.get_forces(), atol=1e-6
        )
        assert frame.atoms.get_stress().shape == (6,)
    row = db._db.get(uid="f0")
    assert row.data["label_settings"]["code"] == "ase.calculators.emt:EMT"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("raise", "SCF did not converge (injected)"),
        ("nan", "non-finite forces"),
        ("crash", "worker exited with code 9"),
    ],
)
def test_failed_label_costs_one_frame(tmp_path: Path, mode: str, reason: str):
    db = _db_with_frames(tmp_path, 6)
    labeler = _labeler("pfd.testing:FlakyEMT", mode=mode, every=2)
    stats = label_frames(
        db, labeler, 1, tmp_path / "jobs", workers=2, timeout_s=60, max_attempts=2
    )
    failed = db.frames(status="failed")
    assert 0 < len(failed) < 6
    assert stats.labelled + stats.failed == 6
    assert stats.retried == len(failed)  # each failure retried once, then given up
    for frame in failed:
        assert frame.attempts == 2
        assert reason in db._db.get(id=frame.id).reason
    assert db.count(status="pending") == 0


def test_timeout_marks_frame_failed(tmp_path: Path):
    db = _db_with_frames(tmp_path, 2)
    labeler = _labeler("pfd.testing:FlakyEMT", mode="hang", every=1)
    label_frames(
        db, labeler, 1, tmp_path / "jobs", workers=2, timeout_s=3, max_attempts=1
    )
    failed = db.frames(status="failed")
    assert len(failed) == 2
    assert "timed out after 3 s" in db._db.get(id=failed[0].id).reason


def test_finished_job_is_read_back_not_recomputed(tmp_path: Path):
    log = tmp_path / "calls.log"
    db = _db_with_frames(tmp_path, 3)
    labeler = _labeler("pfd.testing:CountingEMT", log=str(log))
    label_frames(
        db, labeler, 1, tmp_path / "jobs", workers=2, timeout_s=60, max_attempts=1
    )
    assert len(log.read_text().splitlines()) == 3
    # the driver "died" after the jobs finished but before storing one label
    db2 = RunDB(tmp_path / "pfd2.db")
    for frame in db.frames():
        db2.add_pending(
            frame.atoms, uid=frame.uid, iteration=1, stage="explore", source=""
        )
    label_frames(
        db2, labeler, 1, tmp_path / "jobs", workers=2, timeout_s=60, max_attempts=1
    )
    assert db2.count(status="labelled") == 3
    assert len(log.read_text().splitlines()) == 3  # no new calculation


def test_launcher_prefixes_every_job(tmp_path: Path):
    """`labeler.launcher` (e.g. 'mpirun -n 32') wraps each job's command."""
    db = _db_with_frames(tmp_path, 2)
    stats = label_frames(
        db,
        _labeler("ase.calculators.emt:EMT"),
        1,
        tmp_path / "jobs",
        workers=2,
        timeout_s=60,
        max_attempts=1,
        launcher="env PFD_LAUNCHED=yes",
    )
    assert stats.labelled == 2
    (tmp_path / "b").mkdir()
    db2 = _db_with_frames(tmp_path / "b", 1)
    label_frames(
        db2,
        _labeler("ase.calculators.emt:EMT"),
        1,
        tmp_path / "jobs2",
        workers=1,
        timeout_s=60,
        max_attempts=1,
        launcher="no-such-mpirun -n 4",
    )
    (failed,) = db2.frames(status="failed")
    assert "cannot start the DFT job" in db2._db.get(id=failed.id).reason
    assert "no-such-mpirun" in db2._db.get(id=failed.id).reason


def test_label_one_reads_back_its_frame_and_relabels_another(tmp_path: Path):
    """A report's EOS job reused by name must not hand back another volume's label."""
    from ase.calculators.emt import EMT

    from pfd.label.runner import label_one

    log = tmp_path / "calls.log"
    labeler = _labeler("pfd.testing:CountingEMT", log=str(log))
    jobdir = tmp_path / "dft" / "eos-0"
    a = bulk("Cu", "fcc", 3.6, cubic=True)
    b = a.copy()
    b.set_cell(a.cell * 1.02, scale_atoms=True)  # the same key, another strain
    first = label_one(labeler, a, jobdir)
    again = label_one(labeler, a, jobdir)
    assert len(log.read_text().splitlines()) == 1  # read back, not recomputed
    assert again.get_potential_energy() == first.get_potential_energy()

    other = label_one(labeler, b, jobdir)
    assert len(log.read_text().splitlines()) == 2
    b.calc = EMT()
    assert abs(other.get_potential_energy() - b.get_potential_energy()) < 1e-8
    kept = tmp_path / "dft" / "eos-0.replaced-1" / "output.extxyz"
    assert kept.exists()  # the earlier DFT result is moved aside, not deleted
