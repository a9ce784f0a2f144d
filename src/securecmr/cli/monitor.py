"""``securecmr monitor fit|report|unblock``: the query anomaly monitor of a store."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import group
from ._common import JSON, STORE, emit, iso

__all__ = ["register"]

monitor_app = group("Learn normal query behaviour and report anomalous principals.")


def _open(store: Path, *, readonly: bool = False) -> tuple[AbstractContextManager[Any], Any]:
    """(context manager to close, monitor): through the store when it has one, else the directory."""
    import securecmr

    from ..errors import StoreNotFoundError
    from ..monitor import StoreMonitor

    if hasattr(securecmr, "Store"):
        from ._common import open_store

        try:
            st = open_store(store, readonly=readonly)
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
    """What protects the store (the fitted detector, or the explicit rules until it is fitted) and
    the principals it flagged. Works at any time."""
    from ._common import table

    ctx, mon = _open(store, readonly=True)
    with ctx:
        status = mon.status(all_principals=all_principals)
    for e in status["flagged"]:
        for key in ("first_flagged", "throttled_until"):
            if key in e:
                e[key] = iso(e[key])
    if as_json:
        typer.echo(json.dumps(status, indent=2, sort_keys=True))
        return
    entries = status["flagged"]
    if status["fitted"]:
        det = status["detector"]
        typer.echo(
            f"active: anomaly detector (fitted on {det['windows']} windows of {det['principals']} principals)"
        )
    else:
        r = status["rules"]
        typer.echo(
            "active: explicit rules (the detector is not fitted; "
            f"{status['queries_logged']} queries logged)\n"
            f"  rate      at most {r['max_searches']} searches per {r['window_seconds']:.0f} s "
            "per principal\n"
            f"  k         at most {r['max_k']} hits per search (larger k is capped)\n"
            f"  coverage  throttled after seeing {r['max_coverage']:.0%} of a collection "
            f"(at least {r['min_coverage_items']} items) within {r['coverage_seconds']:.0f} s\n"
            f"  refused   throttled after {r['max_refused']} refused searches "
            f"per {r['window_seconds']:.0f} s\n"
            f"  throttle  {r['cooldown_seconds']:.0f} s"
        )
    if not entries:
        typer.echo("no anomalous principals" if not all_principals else "no principals")
        return
    if status["fitted"]:
        rows = [
            [e["principal"], f"{e['score']:.2f}", f"{e['flagged_windows']}/{e['windows']}", e["queries"],
             "yes" if e["blocked"] else "", "; ".join(e["reasons"])]
            for e in entries
        ]  # fmt: skip
        typer.echo(table(["principal", "score", "flagged windows", "queries", "blocked", "reasons"], rows))
    else:
        rows = [
            [e["principal"], e["queries"], f"{e['coverage']:.0%}", e["refused_in_window"], e["capped_k"],
             e["throttled_until"] or "", "; ".join(e["reasons"])]
            for e in entries
        ]  # fmt: skip
        typer.echo(
            table(
                ["principal", "queries", "coverage", "refused", "capped k", "throttled until", "reasons"],
                rows,
            )
        )


@monitor_app.command("rules")
def rules_cmd(
    store: STORE,
    max_searches: Annotated[
        int | None, typer.Option("--max-searches", help="Searches per principal per window.", min=1)
    ] = None,
    window_seconds: Annotated[
        float | None, typer.Option("--window-seconds", help="The rate and refusal window.", min=1)
    ] = None,
    max_k: Annotated[
        int | None, typer.Option("--max-k", help="Hits per search (larger k is capped).", min=1)
    ] = None,
    max_coverage: Annotated[
        float | None, typer.Option("--max-coverage", help="Share of a collection one principal may see.")
    ] = None,
    min_coverage_items: Annotated[
        int | None, typer.Option("--min-coverage-items", help="Distinct items before coverage counts.", min=1)
    ] = None,
    coverage_seconds: Annotated[
        float | None, typer.Option("--coverage-seconds", help="The coverage window.", min=1)
    ] = None,
    max_refused: Annotated[
        int | None,
        typer.Option("--max-refused", help="Refused searches per window before a throttle.", min=1),
    ] = None,
    cooldown_seconds: Annotated[
        float | None, typer.Option("--cooldown-seconds", help="How long a throttle lasts.", min=0)
    ] = None,
    as_json: JSON = False,
) -> None:
    """Show the explicit rules that guard the store until the detector is fitted; with options,
    change them (kept with the store)."""
    import dataclasses

    from ..monitor import MonitorRules

    given: dict[str, Any] = {
        k: v
        for k, v in {
            "max_searches": max_searches,
            "window_seconds": window_seconds,
            "max_k": max_k,
            "max_coverage": max_coverage,
            "min_coverage_items": min_coverage_items,
            "coverage_seconds": coverage_seconds,
            "max_refused": max_refused,
            "cooldown_seconds": cooldown_seconds,
        }.items()
        if v is not None
    }
    ctx, mon = _open(store, readonly=not given)
    with ctx:
        rules: MonitorRules = mon.rules
        if given:
            rules = dataclasses.replace(rules, **given)
            mon.set_rules(rules)
    data = rules.to_dict()
    emit(as_json, data, lambda: "\n".join(f"{k:<19} {v}" for k, v in data.items()))


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
