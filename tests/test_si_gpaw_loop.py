"""A real loop: SevenNet-0 fine-tuned on GPAW labels of a 2-atom Si cell (slow)."""

from __future__ import annotations

import pytest
from ase.build import bulk
from ase.io import write

from pfd.config import load_config
from pfd.db import RunDB
from pfd.loop import run_finetune
from pfd.progress import Reporter

pytest.importorskip("gpaw")


@pytest.mark.slow
def test_gpaw_loop_on_si(make_config, tmp_path):
    write(tmp_path / "si.extxyz", bulk("Si", "diamond", 5.43))
    cfg = load_config(
        make_config(
            {
                "structures": [{"path": "si.extxyz"}],
                "labeler": {
                    "code": "gpaw",
                    "calculator": None,
                    "parameters": {"mode": {"ecut": 200.0}, "kpts": {"density": 1.5}},
                },
                "explore": {"temperatures_K": [600], "pressures_bar": [None]},
                # a fresh Adam moves every weight at first: train long enough
                "finetune": {"epochs": 15},
            }
        )
    )
    state = run_finetune(cfg, Reporter(quiet=True))
    db = RunDB(cfg.run_dir / "pfd.db")
    assert db.count(status="labelled") == 5
    row = next(db._db.select(status="labelled"))
    assert row.data["label_settings"]["code"] == "gpaw"
    assert (cfg.run_dir / "label" / row.uid / "gpaw.txt").exists()
    # on the new DFT frames, the loop's model beats the untouched foundation model
    from pfd.analysis.errors import evaluate
    from pfd.models.sevennet import SevenNetBackend

    new = [f.atoms for f in db.frames(iteration=1, status="labelled")]
    backend = SevenNetBackend(threads=2)
    zero_shot = evaluate(new, backend.calculator(backend.resolve("7net-0")))
    assert state.iterations[0].force_rmse_eV_A < 0.5 * zero_shot.force_rmse_eV_A
