"""``securecmr audit verify|head|export|records``: check the audit chain (optionally against a
head kept elsewhere), print its signed head, export it as JSON lines for a SIEM, or read the newest
records as a table."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ._app import group
from ._common import JSON, STORE, emit, iso, open_store, plural, table

__all__ = ["register"]

audit_app = group("Verify, export and read the tamper-evident audit log.")


@audit_app.command("verify")
def verify_cmd(
    store: STORE,
    as_json: JSON = False,
    head: Annotated[
        Path | None,
        typer.Option("--head", help="A head saved by 'audit head': fail unless the log extends it."),
    ] = None,
) -> None:
    """Exit 0 if every record and checkpoint verifies; else name the first bad record and exit 1."""
    from ..errors import AuditIntegrityError

    with open_store(store, readonly=True) as st:
        try:
            report = st.audit.verify(head=head)
        except AuditIntegrityError as exc:
            if as_json:
                typer.echo(
                    json.dumps({"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}})
                )
            else:
                typer.echo(f"FAILED: {exc}", err=True)
            raise typer.Exit(1) from None
    emit(
        as_json,
        report.to_dict(),
        f"OK: {plural(report.records, 'record')} (from #{report.first_seq}), "
        f"{plural(report.checkpoints, 'checkpoint')}, head {report.head[:16]}",
    )


@audit_app.command("head")
def head_cmd(
    store: STORE,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
    as_json: JSON = False,  # the head is JSON either way
) -> None:
    """Print the signed head of the audit log (JSON: store id, record count, chain hash, time, MAC).

    Keep it outside the store (another machine, a SIEM): 'audit verify STORE --head FILE' fails
    unless the log still extends it, which catches a rollback of the whole store directory."""
    with open_store(store, readonly=True) as st:
        doc = st.audit.head()
    text = json.dumps(doc, sort_keys=True)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote the audit head ({plural(doc['records'], 'record')}) to {out}", err=True)


@audit_app.command("export")
def export_cmd(
    store: STORE,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
    as_json: JSON = False,
) -> None:
    """Verify the log, then write it as JSON lines (keyed fingerprints only, no raw queries or ids)."""
    with open_store(store, readonly=True) as st:
        if out is None:
            n = st.audit.export(sys.stdout)
        else:
            with open(out, "w", encoding="utf-8") as fh:
                n = st.audit.export(fh)
    if as_json and out is not None:
        emit(True, {"exported": n, "file": str(out)}, "")
    else:
        typer.echo(f"exported {plural(n, 'record')}", err=True)


@audit_app.command("records")
def records_cmd(
    store: STORE,
    last: Annotated[int, typer.Option("--last", "-n", help="How many of the newest records.", min=1)] = 20,
    action: Annotated[str | None, typer.Option("--action", help="Only records of this action.")] = None,
    principal: Annotated[
        str | None, typer.Option("--principal", help="Only records of this principal.")
    ] = None,
    as_json: JSON = False,
) -> None:
    """The newest audit records (not verified: run 'audit verify' for that)."""
    with open_store(store, readonly=True) as st:
        recs = [
            r
            for r in st.audit.records()
            if (action is None or r.get("action") == action)
            and (principal is None or r.get("principal") == principal)
        ][-last:]
    shown = [{**r, "time": iso(r.get("time"))} for r in recs]
    emit(
        as_json,
        shown,
        lambda: (
            table(
                ["seq", "time", "principal", "action", "collection", "outcome", "reason"],
                [
                    [
                        r["seq"],
                        r["time"],
                        r.get("principal") or "",
                        r["action"],
                        r.get("collection") or "",
                        r["outcome"],
                        r.get("reason") or "",
                    ]
                    for r in shown
                ],
            )
            if shown
            else "no records"
        ),
    )


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
