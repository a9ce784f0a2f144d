"""Progress bars for long work (rich), silent for short inputs or when disabled."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["progress"]

T = TypeVar("T")


def _enabled(show: bool | None, total: int | None, min_total: int) -> bool:
    if show is not None:
        return show
    if os.environ.get("SECURECMR_NO_PROGRESS"):
        return False
    if total is not None and total < min_total:
        return False
    return sys.stderr.isatty()


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    description: str = "working",
    show: bool | None = None,
    min_total: int = 256,
) -> Iterator[T]:
    """Yield ``items``, drawing a progress bar on stderr when the work is long.

    ``show=None`` (default) draws only on a terminal and only when ``total >= min_total``.
    """
    if not _enabled(show, total, min_total):
        yield from items
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
