"""Entry point of the ``securecmr`` command.

Each command group lives in its own module exposing ``register(app: typer.Typer) -> None``;
add the module's name to ``_GROUPS`` (kept sorted) to wire it in.

No usage mistake shows a traceback: click's usage errors print one line and a hint and exit 2;
securecmr errors print the message in CLI terms and exit 1; with ``--json`` either is a JSON
document on stdout. Set ``SECURECMR_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x carries its own copy of click
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - older typer on plain click
    from click import exceptions as _cx  # type: ignore[no-redef]

from .._version import __version__

__all__ = ["app", "main"]

# Modules under securecmr.cli that register commands on the root app.
_GROUPS: list[str] = ["audit", "bundle", "demo", "eval", "models", "monitor", "serve", "store", "users"]


def _fail(as_json: bool, code: int, kind: str, message: str, hint: str | None) -> int:
    if as_json:
        err: dict[str, Any] = {"type": kind, "message": message}
        if hint:
            err["hint"] = hint
        typer.echo(json.dumps({"ok": False, "exit_code": code, "error": err}))
    else:
        typer.echo(f"error: {message}", err=True)
        if hint:
            typer.echo(f"hint: {hint}", err=True)
    return code


def _usage_hint(exc: _cx.UsageError) -> str:
    path = exc.ctx.command_path if exc.ctx is not None else "securecmr"
    return f"see '{path} --help'"


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    typer.echo(f"warning: {message}", err=True)  # no internal source path


class _Root(TyperGroup):
    """The root group: turns every error into a short message and an exit status."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        code = self._run(argv, prog_name or "securecmr", **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(self, argv: list[str], prog_name: str, **extra: Any) -> int:
        from ..errors import SecureCMRError
        from ._common import cli_hint, cli_message

        as_json = "--json" in argv
        debug = bool(os.environ.get("SECURECMR_DEBUG"))
        old_show = warnings.showwarning
        if not debug:
            warnings.showwarning = _show_warning
        try:
            rv = super().main(args=argv, prog_name=prog_name, standalone_mode=False, **extra)
            return rv if isinstance(rv, int) else 0
        except _cx.NoArgsIsHelpError as exc:  # a bare group: its help, not an error
            typer.echo(exc.ctx.get_help() if exc.ctx is not None else str(exc), err=True)
            return 2
        except _cx.UsageError as exc:  # wrong, missing or unknown options and arguments
            return _fail(as_json, 2, "UsageError", exc.format_message(), _usage_hint(exc))
        except typer.Exit as exc:
            return int(exc.exit_code)
        except typer.Abort:
            return _fail(as_json, 1, "Aborted", "aborted", None)
        except KeyboardInterrupt:
            return _fail(as_json, 130, "Interrupted", "interrupted", None)
        except SecureCMRError as exc:
            if debug:
                raise
            return _fail(as_json, 1, type(exc).__name__, cli_message(exc), cli_hint(exc))
        except OSError as exc:  # a file the command was pointed at
            if debug:
                raise
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            return _fail(as_json, 1, type(exc).__name__, f"{exc.strerror or exc}{where}", None)
        except Exception as exc:  # a bug: say so in one line, the traceback on request
            if debug:
                raise
            return _fail(
                as_json,
                1,
                "InternalError",
                f"internal error ({type(exc).__name__}): {cli_message(exc)}",
                "rerun with SECURECMR_DEBUG=1 for the traceback and report it",
            )
        finally:
            warnings.showwarning = old_show


app = typer.Typer(
    cls=_Root,
    name="securecmr",
    help="Privacy-preserving cross-modal retrieval.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
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
    """Run the CLI (the ``securecmr`` console script)."""
    app()


if __name__ == "__main__":
    main()
