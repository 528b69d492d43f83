"""Run one labelling job in its own process: ``python -m pfd.label.worker JOBDIR``.

JOBDIR holds ``labeler.pkl`` and ``input.extxyz``; the worker writes
``output.extxyz`` on success or ``error.txt`` (one line) on failure. It dies
with the driver (SIGTERM) while calculating, but not while writing a result.
"""

from __future__ import annotations

import pickle
import sys
import traceback
from pathlib import Path

from ase.io import read, write

from pfd._proc import finish_first


def main(jobdir: str) -> int:
    job = Path(jobdir)
    try:
        labeler = pickle.loads((job / "labeler.pkl").read_bytes())
        atoms = read(job / "input.extxyz")
        result = labeler.calculate(atoms, str(job))
        with finish_first():  # a DFT result in hand is saved, even if the driver died
            tmp = job / "output.tmp.extxyz"
            write(tmp, result)
            tmp.replace(job / "output.extxyz")
    except Exception as err:
        (job / "error.txt").write_text(f"{type(err).__name__}: {err}".splitlines()[0])
        (job / "traceback.txt").write_text(traceback.format_exc())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
