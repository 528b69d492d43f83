"""A Parsl config for a PBS Pro / Torque cluster (see slurm.py for how to use it)."""

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import MpiExecLauncher
from parsl.providers import PBSProProvider

WORKER_INIT = "source /path/to/pfd/.venv/bin/activate; export OMP_NUM_THREADS=1"

config = Config(
    retries=2,
    executors=[
        HighThroughputExecutor(
            label="cpu",
            cores_per_worker=1,
            max_workers_per_node=64,
            provider=PBSProProvider(
                queue="workq",
                account="my-account",
                select_options="ncpus=64",
                nodes_per_block=1,
                init_blocks=0,
                max_blocks=4,
                walltime="04:00:00",
                launcher=MpiExecLauncher(),
                worker_init=WORKER_INIT,
            ),
        ),
        HighThroughputExecutor(
            label="gpu",
            available_accelerators=4,
            cores_per_worker=8,
            provider=PBSProProvider(
                queue="gpu",
                account="my-account",
                select_options="ngpus=4:ncpus=32",
                nodes_per_block=1,
                init_blocks=0,
                max_blocks=1,
                walltime="04:00:00",
                launcher=MpiExecLauncher(),
                worker_init=WORKER_INIT,
            ),
        ),
    ],
)
