"""The command line's one progress bar (on stderr) and the stage callbacks the long-running functions take."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Items per second of a task, once there is a rate to show."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "", style="dim")


def progress_bar(quiet: bool = False, label: str | None = None, rate: bool = False) -> Progress:
    """A transient bar on stderr: label (else the task's description), bar, done/total, elapsed time; with
    `rate`, items per second and the time left; then the description when a label is given (disabled when
    quiet)."""
    columns: list[ProgressColumn] = [
        TextColumn(f"[bold]{label or '{task.description}'}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    if rate:
        columns += [RateColumn(), TextColumn("left"), TimeRemainingColumn()]
    if label:
        columns.append(TextColumn("{task.description}"))
    return Progress(*columns, console=Console(stderr=True), transient=True, disable=quiet)


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
