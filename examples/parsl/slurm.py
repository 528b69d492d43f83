"""A Parsl config for a Slurm cluster: DFT on CPU nodes, MD and training on a GPU node.

Use it from a run's YAML:

    execution:
      engine: parsl
      config: slurm.py              # this file, relative to the YAML
      resources:
        dft:   {executor: cpu}
        md:    {executor: gpu}
        train: {executor: gpu}

Edit partition, account, walltime and worker_init (how a batch job activates the
environment where pfd is installed). The run's driver (``pfd run``) stays on the
login node or in a small job of its own; it only submits tasks and writes the
database, and resumes from it if it is killed.
"""

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import SrunLauncher
from parsl.providers import SlurmProvider

WORKER_INIT = "source /path/to/pfd/.venv/bin/activate; export OMP_NUM_THREADS=1"

config = Config(
    retries=2,  # a task whose worker dies (node failure, pre-emption) runs again
    executors=[
        HighThroughputExecutor(
            label="cpu",
            cores_per_worker=1,  # one DFT job per worker; GPAW uses 1 BLAS thread
            max_workers_per_node=32,
            provider=SlurmProvider(
                partition="cpu",
                account="my-account",
                nodes_per_block=1,
                init_blocks=0,
                max_blocks=4,
                walltime="04:00:00",
                launcher=SrunLauncher(),
                worker_init=WORKER_INIT,
            ),
        ),
        HighThroughputExecutor(
            label="gpu",
            # one worker per GPU, pinned with CUDA_VISIBLE_DEVICES
            available_accelerators=4,
            cores_per_worker=8,
            provider=SlurmProvider(
                partition="gpu",
                account="my-account",
                nodes_per_block=1,
                init_blocks=0,
                max_blocks=1,
                walltime="04:00:00",
                scheduler_options="#SBATCH --gpus-per-node=4",
                launcher=SrunLauncher(),
                worker_init=WORKER_INIT,
            ),
        ),
    ],
)
