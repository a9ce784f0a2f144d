"""``securecmr collection fit STORE NAME``: learn a hasher from a collection's own pairs (Collection.fit)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import COLLECTION, JSON, STORE, emit, open_store

__all__ = ["fit_cmd"]


def fit_cmd(
    store: STORE,
    name: COLLECTION,
    method: Annotated[
        str,
        typer.Option("--method", help="unsupervised (pairs only), supervised, cca, cca-itq or zero-shot."),
    ] = "unsupervised",
    labels_from: Annotated[
        str | None,
        typer.Option("--labels-from", help="Attribute holding the class (supervised); default: item labels."),
    ] = None,
    holdout: Annotated[float, typer.Option("--holdout", help="Fraction of pairs held apart.")] = 0.2,
    force: Annotated[
        bool, typer.Option("--force", help="Switch even if the new hasher is not better.")
    ] = False,
    as_json: JSON = False,
) -> None:
    """Fit a hasher on the collection's kept features, compare it with the current one on held-apart
    pairs (MAP both ways) and switch to it, re-coding every item, when it is better."""
    with open_store(store) as s:
        report = s.collection(name).fit(
            method=method, labels_from=labels_from, holdout=holdout, force=force, show_progress=not as_json
        )
    emit(as_json, report.as_dict(), str(report))
