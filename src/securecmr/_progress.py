"""Progress bars for long work (rich), silent for short inputs or when disabled."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["progress", "stage"]

T = TypeVar("T")


def _enabled(show: bool | None, total: int | None, min_total: int) -> bool:
    if show is not None:
        return show
    if os.environ.get("SECURECMR_NO_PROGRESS"):
        return False
    if total is not None and total < min_total:
        return False
    return sys.stderr.isatty()


def _plain(show: bool | None, total: int | None, min_total: int) -> bool:
    """Plain log lines instead of a bar: long work, not on a terminal, not switched off."""
    if show is not None or os.environ.get("SECURECMR_NO_PROGRESS"):
        return False
    return total is not None and total >= min_total and not sys.stderr.isatty()


def _rich_bar(unit: str) -> Any:
    """The one rich progress bar (on stderr, cleared when done) that both helpers show."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    description: str = "working",
    show: bool | None = None,
    min_total: int = 256,
    count: Callable[[T], int] | None = None,
    units: int | None = None,
    unit: str = "items",
) -> Iterator[T]:
    """Yield ``items``, drawing a progress bar on stderr when the work is long.

    ``show=None`` (default) draws only on a terminal and only when ``total >= min_total``; off a
    terminal (piped, logged) long work prints one plain line when it starts and one when it ends.
    With ``count`` (items per element, e.g. per batch) and ``units`` (their sum) the bar counts
    ``unit`` (images, texts, items), not batches.
    """
    shown_total = units if count is not None and units is not None else total
    if not _enabled(show, total, min_total):
        if not _plain(show, total, min_total):
            yield from items
            return
        start = time.monotonic()
        print(f"{description}: {shown_total} {unit}", file=sys.stderr, flush=True)
        yield from items
        took = time.monotonic() - start
        print(f"{description}: done, {shown_total} {unit} in {took:.1f} s", file=sys.stderr, flush=True)
        return
    with _rich_bar(unit) as bar:
        task = bar.add_task(description, total=shown_total)
        for item in items:
            yield item
            bar.advance(task, count(item) if count is not None else 1)


@contextlib.contextmanager
def stage(
    description: str,
    total: int,
    *,
    unit: str = "items",
    show: bool | None = None,
    log: bool = True,
) -> Iterator[Callable[[int], None]]:
    """A stage of long work counted in ``unit`` (items, not batches); yields ``advance(n)``.

    On a terminal it draws a bar; otherwise (piped, logged, CI) it prints one plain line when
    the stage starts and one when it ends, unless ``log=False`` or SECURECMR_NO_PROGRESS is set.
    """
    bar_on = (
        show
        if show is not None
        else (not os.environ.get("SECURECMR_NO_PROGRESS") and sys.stderr.isatty() and total > 0)
    )
    if bar_on:
        with _rich_bar(unit) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
        return
    plain = log and not os.environ.get("SECURECMR_NO_PROGRESS")
    done = [0]
    start = time.monotonic()
    if plain:
        print(f"{description}: {total} {unit}", file=sys.stderr, flush=True)

    def advance(n: int) -> None:
        done[0] += n

    yield advance
    if plain:
        took = time.monotonic() - start
        print(f"{description}: done, {done[0]} {unit} in {took:.1f} s", file=sys.stderr, flush=True)
