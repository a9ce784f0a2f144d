"""``securecmr bundle OUT``: an offline install folder (wheels, models, checksums, install script)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def bundle_cmd(
    out: Annotated[Path, typer.Argument(help="New or empty folder to write.")],
    models: Annotated[
        Path | None, typer.Option("--models", help="Exported models (default $SECURECMR_HOME/models).")
    ] = None,
    extra: Annotated[
        list[str] | None, typer.Option("--extra", help="securecmr extras to include (default: serve).")
    ] = None,
) -> None:
    """Write wheels for this platform (pinned by requirements/lock.txt), the verified models, SHA256SUMS
    and a one-line install.sh, for installing on a machine without network."""
    from .._bundle import make_bundle

    dest = make_bundle(
        out, models=models, extras=tuple(extra or ["serve"]), on_step=lambda m: typer.echo(f"• {m}", err=True)
    )
    typer.echo(str(dest))


def register(app: typer.Typer) -> None:
    app.command("bundle")(bundle_cmd)
