"""Executors: where the loop's tasks (DFT labels, MD trajectories, trainings) run.

The loop and the run database stay in the driver process; it submits tasks and
waits on futures. ``local`` (the default) needs no set-up: a pool of threads
each driving one DFT process, spawned processes for MD, training in the driver.
``parsl`` sends each kind of task to the Parsl executor named in
``execution.resources`` (e.g. HighThroughputExecutor + SlurmProvider), with
Parsl's retries when a worker dies.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from pfd._proc import die_with_parent
from pfd.config import ExecutionConfig
from pfd.errors import PFDError

KINDS = ("dft", "md", "train")


class Executor(Protocol):
    """Runs a picklable function as a task of a kind (``dft``, ``md``, ``train``).

    Every side-by-side job of pfd (DFT labels, MD, teacher MD, report DFT) goes
    through one; steps take it as an argument, the caller chooses and closes it.
    """

    name: str

    def submit(self, kind: str, fn: Callable[..., Any], *args: Any) -> Future: ...

    def slots(self, kind: str) -> int:
        """How many tasks of this kind run at once (for sizing threads)."""
        ...

    def close(self) -> None: ...


class LocalExecutor:
    """Threads for DFT jobs (each starts its own process), spawned processes for
    MD when ``md_workers > 1`` (else one thread), one thread for trainings.

    The MD worker processes die with the driver (even by SIGKILL, on Linux): a
    resumed run must not find the last run's trajectories still computing.
    Usable as a context manager (closed on exit).
    """

    name = "local"

    def __init__(self, dft_workers: int = 1, md_workers: int = 1) -> None:
        self.workers = {
            "dft": max(1, dft_workers),
            "md": max(1, md_workers),
            "train": 1,
        }
        self._pools: dict[str, Any] = {}

    def _pool(self, kind: str):
        if kind not in self._pools:
            if kind == "md" and self.workers["md"] > 1:
                self._pools[kind] = process_pool(self.workers["md"])
            else:
                self._pools[kind] = ThreadPoolExecutor(self.workers[kind])
        return self._pools[kind]

    def submit(self, kind: str, fn: Callable[..., Any], *args: Any) -> Future:
        return self._pool(kind).submit(fn, *args)

    def slots(self, kind: str) -> int:
        return self.workers[kind]

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        self._pools.clear()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def process_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` spawned Python processes that die with this one.

    Each asks for SIGKILL when the thread that started it ends (pools start
    their workers on the first submissions: submit from the main thread). The
    resource tracker multiprocessing starts beside them ends by itself once the
    driver and these workers, which hold its pipe, are gone.
    """
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent,
        initargs=(signal.SIGKILL, os.getpid()),
    )


@contextlib.contextmanager
def given_or_local(
    executor: Executor | None, *, dft_workers: int = 1, md_workers: int = 1
) -> Iterator[Executor]:
    """``executor``, or a :class:`LocalExecutor` of these sizes for the block."""
    if executor is not None:
        yield executor
        return
    with LocalExecutor(dft_workers, md_workers) as local:
        yield local


class ParslExecutor:
    """Tasks as Parsl python apps on the executors named in ``resources``."""

    name = "parsl"

    def __init__(self, cfg: ExecutionConfig, run_dir: Path) -> None:
        if importlib.util.find_spec("parsl") is None:
            raise PFDError(
                "execution.engine 'parsl' needs Parsl; pip install parsl "
                "(or 'pfd[parsl]'), or use engine: local"
            )
        import parsl

        config = load_parsl_config(cfg.config)
        config.run_dir = str(run_dir / "parsl")
        labels = {ex.label for ex in config.executors}
        for kind in KINDS:
            label = cfg.resources[kind].executor
            if label not in labels:
                raise PFDError(
                    f"execution.resources.{kind}.executor '{label}' is not an executor "
                    f"of the Parsl config ({', '.join(sorted(labels))}); fix the label"
                )
        self._executors = {ex.label: ex for ex in config.executors}
        self.cfg = cfg
        self.dfk = parsl.load(config)
        self._apps: dict[tuple[str, Callable], Callable] = {}

    def submit(self, kind: str, fn: Callable[..., Any], *args: Any) -> Future:
        from parsl import python_app

        key = (kind, fn)
        if key not in self._apps:
            label = self.cfg.resources[kind].executor
            self._apps[key] = python_app(
                fn, executors=[label], data_flow_kernel=self.dfk
            )
        return self._apps[key](*args)

    def slots(self, kind: str) -> int:
        ex = self._executors[self.cfg.resources[kind].executor]
        workers = getattr(ex, "max_workers_per_node", None)
        return int(workers) if workers else 1

    def close(self) -> None:
        self.dfk.cleanup()

    def __enter__(self) -> ParslExecutor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def load_parsl_config(spec: str | None):
    """A Parsl ``Config`` from a Python file defining ``config``, or a preset name."""
    from parsl.config import Config

    if spec is None or spec == "local-htex":
        from parsl.executors import HighThroughputExecutor
        from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD
        from parsl.providers import LocalProvider

        # this Python's scripts, whether or not its environment is activated
        bindir = Path(sys.executable).parent
        return Config(
            executors=[
                HighThroughputExecutor(
                    label="local",
                    interchange_launch_cmd=[str(bindir / "interchange.py")],
                    launch_cmd=str(bindir / DEFAULT_LAUNCH_CMD),
                    max_workers_per_node=2,
                    cores_per_worker=1,
                    provider=LocalProvider(init_blocks=1, max_blocks=1),
                    heartbeat_period=2,
                    heartbeat_threshold=6,
                )
            ],
            retries=2,
        )
    path = Path(spec)
    if not path.is_file():
        raise PFDError(
            f"Parsl config '{spec}' not found: give a .py file that defines "
            "'config = Config(...)' or the preset 'local-htex'"
        )
    module_spec = importlib.util.spec_from_file_location("pfd_parsl_config", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:
        raise PFDError(f"Parsl config file '{path}' failed to load: {err}") from err
    config = getattr(module, "config", None)
    if not isinstance(config, Config):
        raise PFDError(
            f"Parsl config file '{path}' defines no 'config = parsl.config.Config(...)'"
        )
    return config


def make_executor(
    cfg: ExecutionConfig, run_dir: Path, dft_workers: int, md_workers: int
) -> Executor:
    """The executor for ``execution.engine`` (local: pools of these sizes)."""
    if cfg.engine == "parsl":
        return ParslExecutor(cfg, run_dir)
    return LocalExecutor(dft_workers, md_workers)
