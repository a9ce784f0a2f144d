"""``securecmr audit verify|head|export``: check the audit chain (optionally against a head kept
elsewhere), print its signed head, or export it as JSON lines for a SIEM."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

audit_app = typer.Typer(help="Verify and export the tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("verify")
def verify_cmd(
    store: Annotated[Path, typer.Argument(help="The store directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    head: Annotated[
        Path | None,
        typer.Option(
            "--head", help="A head saved by `securecmr audit head`: fail unless the log extends it."
        ),
    ] = None,
) -> None:
    """Exit 0 if every record and checkpoint verifies; else name the first bad record and exit 1."""
    from ..errors import AuditIntegrityError
    from .users import open_store

    with open_store(store) as st:
        try:
            report = st.audit.verify(head=head)
        except AuditIntegrityError as exc:
            if as_json:
                typer.echo(json.dumps({"ok": False, "error": str(exc)}))
            else:
                typer.echo(f"FAILED: {exc}", err=True)
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    else:
        typer.echo(
            f"OK: {report.records} records (from #{report.first_seq}), {report.checkpoints} checkpoints, "
            f"head {report.head[:16]}"
        )


@audit_app.command("head")
def head_cmd(
    store: Annotated[Path, typer.Argument(help="The store directory.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Print the signed head of the audit log (JSON: store id, record count, chain hash, time, MAC).

    Keep it outside the store (another machine, a SIEM, paper): `securecmr audit verify STORE
    --head FILE` fails unless the log still extends it, which catches a rollback of the whole
    store directory to an older copy."""
    from .users import open_store

    with open_store(store) as st:
        doc = st.audit.head()
    text = json.dumps(doc, sort_keys=True)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote the audit head ({doc['records']} records) to {out}", err=True)


@audit_app.command("export")
def export_cmd(
    store: Annotated[Path, typer.Argument(help="The store directory.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Verify the log, then write it as JSON lines (keyed fingerprints only, no raw queries or ids)."""
    from .users import open_store

    with open_store(store) as st:
        if out is None:
            n = st.audit.export(sys.stdout)
        else:
            with open(out, "w", encoding="utf-8") as fh:
                n = st.audit.export(fh)
    typer.echo(f"exported {n} records", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
