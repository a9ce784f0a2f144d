"""Entry point of the ``securecmr`` command.

Each command group lives in its own module exposing ``register(app: typer.Typer) -> None``;
add the module's name to ``_GROUPS`` (kept sorted) to wire it in.
"""

from __future__ import annotations

import importlib

import typer

from .._version import __version__

__all__ = ["app", "main"]

# Modules under securecmr.cli that register commands on the root app.
_GROUPS: list[str] = ["audit", "demo", "eval", "models", "monitor", "serve", "store", "users"]

app = typer.Typer(
    name="securecmr",
    help="Privacy-preserving cross-modal retrieval.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"securecmr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """securecmr: find images and video by text and text by image, privately."""


for _name in _GROUPS:
    importlib.import_module(f"securecmr.cli.{_name}").register(app)


def main() -> None:
    """Run the CLI; SecureCMRError becomes a one-line message and exit status 1."""
    from ..errors import SecureCMRError

    try:
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc != 0:  # click returns (not raises) typer.Exit codes here
            raise SystemExit(rc)
    except SecureCMRError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
