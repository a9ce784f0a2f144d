"""A command group of the ``securecmr`` CLI with plain help (no rich markup, no type tags)."""

from __future__ import annotations

import typer

__all__ = ["group"]


def group(help_text: str) -> typer.Typer:
    """A sub-command group: bare ``securecmr GROUP`` prints its help."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None, add_completion=False)
