"""Console output shared by the commands: errors without tracebacks, progress bars, tables."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from labelwise.errors import LabelwiseError

console = Console()
err_console = Console(stderr=True)


def fail(err: LabelwiseError) -> None:
    """Print a labelwise error as advice (no traceback) and exit with its code."""
    err_console.print(f"[bold red]error:[/] {escape(err.message)}", highlight=False, soft_wrap=True)
    shown = err.problems[:20]
    for p in shown:
        err_console.print(f"  - {p}", highlight=False, markup=False, soft_wrap=True)
    if len(err.problems) > len(shown):
        err_console.print(f"  ... and {len(err.problems) - len(shown)} more", highlight=False)
    raise SystemExit(err.exit_code)


class RateColumn(ProgressColumn):
    """Items per second over the last few updates, e.g. "312 images/s"."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "--" if speed is None else f"{speed:,.0f}"
        return Text(f"{shown} {self.unit}/s", style="cyan")


@contextmanager
def progress_bars(*, unit: str | None = None) -> Iterator:
    """Yield a ``progress(stage, done, total)`` callback drawing one Rich bar per stage;
    with ``unit`` (e.g. "images") the bars also show the rate."""
    rate = [RateColumn(unit)] if unit else [TaskProgressColumn()]
    with Progress(
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        *rate,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
        disable=not sys.stderr.isatty(),
    ) as bars:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update


class LabelwiseGroup(TyperGroup):
    """Turns a LabelwiseError from any command into a clean message and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LabelwiseError as err:
            fail(err)


class LabelwiseTyper(typer.Typer):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("cls", LabelwiseGroup)
        super().__init__(**kwargs)


def workspace_option() -> Path | None:
    return typer.Option(
        None, "--workspace", "-w", envvar="LABELWISE_WORKSPACE",
        help="Workspace folder (default: the current folder).", show_default=False,
    )
