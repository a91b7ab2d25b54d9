"""The command line's one progress bar (on stderr) and the stage callbacks the long-running functions take."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(quiet: bool = False, label: str = "{task.description}") -> Progress:
    """A transient bar on stderr: label, bar, done/total, elapsed time (disabled when quiet)."""
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True, disable=quiet)


@dataclass
class StageCallbacks:
    """`on_stage(name, total)` starts a new bar, `on_item(_)` advances it: what analyze/report take."""

    on_stage: Callable[[str, int], None]
    on_item: Callable[[object], None]


@contextmanager
def stages(quiet: bool = False) -> Iterator[StageCallbacks]:
    """A progress bar per stage of a long computation, as the (on_stage, on_model) callbacks it reports to."""
    with progress_bar(quiet) as progress:
        current: dict[str, object] = {}

        def on_stage(name: str, total: int) -> None:
            if "task" in current:
                progress.remove_task(current["task"])
            current["task"] = progress.add_task(name, total=total)

        def on_item(_item: object) -> None:
            if "task" in current:
                progress.advance(current["task"])

        yield StageCallbacks(on_stage, on_item)
