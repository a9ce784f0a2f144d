"""``securecmr users add|revoke``: manage the users of a store (needs the store passphrase)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["open_store", "register"]

users_app = typer.Typer(help="Create and revoke users (tokens are printed once).", no_args_is_help=True)


def open_store(path: Path) -> Any:
    """``securecmr.Store.open(path, passphrase=...)``; the passphrase comes from SECURECMR_PASSPHRASE
    or an interactive prompt (never from a command-line argument, which would land in shell history)."""
    import securecmr

    passphrase = os.environ.get("SECURECMR_PASSPHRASE")
    if not passphrase:
        passphrase = typer.prompt("store passphrase", hide_input=True)
    return securecmr.Store.open(path, passphrase=passphrase)


def _parse_attrs(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a repeated key, or a comma-separated value, becomes a list; numbers,
    true/false and JSON values are parsed (``clearance=2``, ``departments=neuro,onco``)."""
    from ..errors import ConfigurationError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"--attr expects KEY=VALUE, got {pair!r}")
        key = key.strip()
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = [v.strip() for v in raw.split(",")] if "," in raw else raw
        if key in out:
            prev = out[key] if isinstance(out[key], list) else [out[key]]
            value = prev + (value if isinstance(value, list) else [value])
        out[key] = value
    return out


@users_app.command("add")
def add_cmd(
    store: Annotated[Path, typer.Argument(help="The store directory.")],
    name: Annotated[str, typer.Argument(help="The user's name.")],
    role: Annotated[str, typer.Option("--role", help="admin, curator, reader, auditor or a custom role.")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="The user's tenant.")] = None,
    attr: Annotated[
        list[str] | None, typer.Option("--attr", help="KEY=VALUE user attribute for policies (repeatable).")
    ] = None,
    ttl_hours: Annotated[float, typer.Option("--ttl-hours", help="Token lifetime in hours.")] = 24.0 * 90,
) -> None:
    """Create a user and print their token once (store it safely: only its hash is kept)."""
    attrs = _parse_attrs(attr or [])
    with open_store(store) as st:
        token = st.create_user(name, role=role, tenant=tenant, attrs=attrs or None, ttl_hours=ttl_hours)
    typer.echo(token)


@users_app.command("revoke")
def revoke_cmd(
    store: Annotated[Path, typer.Argument(help="The store directory.")],
    name: Annotated[str, typer.Argument(help="The user to revoke.")],
) -> None:
    """Revoke every token of a user."""
    with open_store(store) as st:
        st.revoke_user(name)
    typer.echo(f"revoked {name}")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
