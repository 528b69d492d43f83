"""``pfd``: the typer application and its one-line error handling."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any

import typer

# DeePMD-kit's TensorFlow ops thread with OpenMP inside TensorFlow's own
# threads: with OMP_NUM_THREADS unset (all cores) a student ran 1.5-2x slower
# than with 1 (0.096 vs 0.062 ms/atom-step, 512 Si atoms, 2 cores). Torch
# models take their threads from model.threads (torch.set_num_threads), DFT
# codes and trainers from their own environment, so 1 here costs them nothing.
os.environ.setdefault("OMP_NUM_THREADS", "1")

app = typer.Typer(
    name="pfd",
    help="Pre-train, fine-tune, distill: material-specific force fields from "
    "universal ones.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state = {"debug": False, "verbose": False}


@app.callback()
def main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks on errors.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Show the output of DFT codes, trainers and libraries on the "
            "terminal instead of the run's logs/pfd.log.",
        ),
    ] = False,
) -> None:
    _state["debug"] = debug
    _state["verbose"] = verbose or debug


def verbose() -> bool:
    """Whether ``pfd --verbose`` (or ``--debug``) asked for every stream."""
    return _state["verbose"]


def friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known errors into one line on stderr and a non-zero exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pfd.errors import PFDError

        try:
            return func(*args, **kwargs)
        except PFDError as err:
            if _state["debug"]:
                raise
            typer.echo(f"Error: {err}", err=True)
            sys.exit(1)
        except OSError as err:
            if _state["debug"]:
                raise
            where = f" ({err.filename})" if err.filename else ""
            typer.echo(
                f"Error: {err.strerror or err}{where}; free some space or fix the "
                "permissions and run again: what was already computed is kept",
                err=True,
            )
            sys.exit(1)
        except KeyboardInterrupt:
            typer.echo("Interrupted: run the same command again to resume.", err=True)
            sys.exit(130)
        except Exception as err:
            if _state["debug"]:
                raise
            from pfd.logs import last_log

            first = str(err).splitlines()[0] if str(err) else ""
            log = last_log()
            where = f"; libraries' output: {log}" if log else ""
            typer.echo(
                f"Error: unexpected {type(err).__name__}: {first} "
                f"(rerun with 'pfd --debug ...' for the traceback{where})",
                err=True,
            )
            sys.exit(2)

    return wrapper


def _register() -> None:
    from pfd.cli import distill, init, recover, report, run, status, test

    for module in (init, run, distill, report, status, recover, test):
        app.command(module.NAME, help=module.__doc__)(friendly(module.command))


_register()
