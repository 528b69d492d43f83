"""What a running loop shows: one line per event, a live bar for long steps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from pfd.logs import TerminalStream


class Reporter:
    """Prints progress to a rich console (plain text when not a terminal).

    The default console writes to the terminal even while third-party output
    is sent to a log file (:func:`pfd.logs.third_party_to`).
    """

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(file=TerminalStream(), log_path=False)
        self.quiet = quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.log(message)

    @contextmanager
    def bar(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A progress bar; the yielded function sets how many of ``total`` are done."""
        if self.quiet or not self.console.is_terminal:
            self.info(f"{description} ({total})")
            yield lambda done: None
            return
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        ) as progress:
            task = progress.add_task(description, total=total)
            yield lambda done: progress.update(task, completed=done)
