"""``securecmr monitor fit|report|unblock``: the query anomaly monitor of a store."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import group
from ._common import JSON, STORE, emit

__all__ = ["register"]

monitor_app = group("Learn normal query behaviour and report anomalous principals.")


def _open(store: Path) -> tuple[AbstractContextManager[Any], Any]:
    """(context manager to close, monitor): through the store when it has one, else the directory."""
    import securecmr

    from ..errors import StoreNotFoundError
    from ..monitor import StoreMonitor

    if hasattr(securecmr, "Store"):
        from ._common import open_store

        try:
            st = open_store(store)
        except StoreNotFoundError:
            st = None  # a bare monitor directory (simulations, exported logs)
        if st is not None:
            mon = getattr(st, "monitor", None)
            if mon is not None:
                return st, mon
            st.close()
    return nullcontext(), StoreMonitor.from_directory(store / "monitor")


@monitor_app.command("fit")
def fit_cmd(store: STORE, as_json: JSON = False) -> None:
    """Fit the anomaly detector on the store's query log (its history is taken as normal use)."""
    ctx, mon = _open(store)
    with ctx:
        det = mon.fit()
    emit(
        as_json,
        {"fitted": True, "windows": int(det.n_windows_), "principals": len(det.profiles_)},
        f"fitted on {det.n_windows_} windows from {len(det.profiles_)} principals",
    )


@monitor_app.command("report")
def report_cmd(
    store: STORE,
    as_json: JSON = False,
    all_principals: Annotated[
        bool, typer.Option("--all", help="List every principal, not only flagged ones.")
    ] = False,
) -> None:
    """List flagged principals with their scores (> 1 is anomalous) and reasons."""
    ctx, mon = _open(store)
    with ctx:
        entries = mon.report(all_principals=all_principals)
    if as_json:
        typer.echo(json.dumps({"flagged": entries}, indent=2))
        return
    if not entries:
        typer.echo("no anomalous principals")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("principal", "score", "flagged windows", "queries", "blocked", "reasons")
    for e in entries:
        table.add_row(
            e["principal"],
            f"{e['score']:.2f}",
            f"{e['flagged_windows']}/{e['windows']}",
            str(e["queries"]),
            "yes" if e["blocked"] else "",
            "; ".join(e["reasons"]),
        )
    Console().print(table)


@monitor_app.command("unblock")
def unblock_cmd(
    store: STORE,
    principal: Annotated[str, typer.Argument(metavar="PRINCIPAL", help="The principal to unblock.")],
    as_json: JSON = False,
) -> None:
    """Lift a block set by the query guard."""
    ctx, mon = _open(store)
    with ctx:
        mon.unblock(principal)
    emit(as_json, {"unblocked": principal}, f"unblocked {principal}")


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
