"""``python -m pfd.models._dp_pt ARGS``: DeePMD-kit's ``dp --pt ARGS``, runnable here.

The PyPI deepmd-kit wheel carries PyTorch custom ops compiled against one torch
version (2.11 for deepmd-kit 3.2.0); with any other torch, ``import deepmd.pt``
refuses to load them and stops. Those ops serve model compression and LAMMPS
only: training, fine-tuning and inference of DPA-2/DPA-3 run in plain PyTorch.
:func:`import_deepmd_pt` imports DeePMD's PyTorch backend without the ops when
they do not match the installed torch, and with them when they do.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def ops_match_torch() -> bool:
    """Whether deepmd-kit's compiled PyTorch ops were built for this torch."""
    import torch
    from deepmd.env import GLOBAL_CONFIG
    from packaging.version import Version

    built = GLOBAL_CONFIG.get("pt_version", "")
    return bool(built) and Version(torch.__version__).public == built


def import_deepmd_pt() -> bool:
    """Import ``deepmd.pt``; returns whether its compiled ops are in use."""
    if "deepmd.pt.cxx_op" in sys.modules:
        from deepmd.pt.cxx_op import ENABLE_CUSTOMIZED_OP

        return bool(ENABLE_CUSTOMIZED_OP)
    import deepmd.env

    if ops_match_torch():
        import deepmd.pt

        return True
    # cxx_op looks for the op library in deepmd.env.SHARED_LIB_DIR once, at
    # import: an empty directory there means "no ops", then the real one is put
    # back for the TensorFlow backend (the distilled student) in this process.
    real = deepmd.env.SHARED_LIB_DIR
    deepmd.env.SHARED_LIB_DIR = Path(tempfile.mkdtemp(prefix="pfd-no-pt-ops-"))
    try:
        import deepmd.pt.cxx_op
    finally:
        deepmd.env.SHARED_LIB_DIR.rmdir()
        deepmd.env.SHARED_LIB_DIR = real
    return False


def main(argv: list[str]) -> None:
    import_deepmd_pt()
    from deepmd.main import main as dp_main

    sys.argv = ["dp", "--pt", *argv]
    dp_main()


if __name__ == "__main__":
    main(sys.argv[1:])
