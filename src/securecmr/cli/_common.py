"""Shared pieces of the ``securecmr`` commands: arguments, store opening, output and errors.

Every command takes ``--json``; with it, its result (and any error) is one JSON document on
stdout. Times are ISO 8601 (UTC). Tables have a header row. Errors are reworded in CLI terms
(flags, not keyword arguments) by :func:`cli_message`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "COLLECTION",
    "JSON",
    "STORE",
    "cli_hint",
    "cli_message",
    "emit",
    "iso",
    "open_store",
    "parse_pairs",
    "passphrase",
    "plural",
    "session_collection",
    "table",
    "usage",
]

STORE = Annotated[Path, typer.Argument(metavar="STORE", help="The store directory.", show_default=False)]
COLLECTION = Annotated[str, typer.Argument(metavar="COLLECTION", help="The collection's name.")]
JSON = Annotated[bool, typer.Option("--json", help="Print the result (or the error) as JSON on stdout.")]


def usage(message: str) -> Exception:
    """A usage mistake found by a command itself (exit status 2, like click's own)."""
    try:
        from typer._click.exceptions import UsageError
    except ImportError:  # pragma: no cover - older typer on plain click
        from click.exceptions import UsageError  # type: ignore[assignment]
    return UsageError(message)


def passphrase(
    var: str = "SECURECMR_PASSPHRASE", prompt: str = "store passphrase", confirm: bool = False
) -> str:
    """From ``var`` or a hidden prompt; never from the command line (it would land in shell history)."""
    value = os.environ.get(var)
    if not value:
        value = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return str(value)


def open_store(path: Path, *, readonly: bool = False) -> Any:
    """``securecmr.Store.open(path)`` with the passphrase from SECURECMR_PASSPHRASE or a prompt."""
    import securecmr

    from ..errors import StoreNotFoundError

    if not Path(path).exists():
        raise StoreNotFoundError(
            f"{path} does not exist; create a store with 'securecmr store create {path}'"
        )
    return securecmr.Store.open(path, passphrase=passphrase(), readonly=readonly)


def session_collection(store: Any, name: str) -> Any:
    """The collection as seen by the SECURECMR_TOKEN user (checked and audited), or None without a token."""
    token = os.environ.get("SECURECMR_TOKEN")
    return store.session(token).collection(name) if token else None


def iso(ts: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC (``2026-12-03T16:48:38Z``); None stays None."""
    if ts is None:
        return None
    moment = _dt.datetime.fromtimestamp(float(ts), tz=_dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with a header row, columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit(as_json: bool, data: Any, text: str | Callable[[], str]) -> None:
    """Print ``data`` as JSON (``--json``) or ``text`` for people."""
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        typer.echo(text() if callable(text) else text)


def parse_pairs(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a repeated key, or a comma-separated value, becomes a list; numbers,
    true/false and JSON values are parsed (``clearance=2``, ``departments=neuro,onco``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise usage(f"{flag} expects KEY=VALUE, got {pair!r}")
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


# Python-API phrases in error messages, and what a CLI user types instead.
_REWORD: list[tuple[str, str]] = [
    (r"; use Store\.open\b", ""),
    (r"create one with Store\.create", "create one with 'securecmr store create'"),
    (r"create it with create_collection", "create it with 'securecmr collection create'"),
    (r"session\.collections\(\) lists yours", "'securecmr collection list' lists them"),
    (
        r"give exactly one of text=, image=, video=, vector=, code=",
        "give exactly one of QUERY, --text, --image or --video",
    ),
    (r"give ids or where=, not both", "give item ids or --where, not both"),
    (r"\(add one with store\.add_role\)", "(custom roles are defined in Python with store.add_role)"),
    (r"run store\.monitor\.fit\(\) / `securecmr monitor fit`", "run 'securecmr monitor fit'"),
    (r"store\.monitor\.fit\(\)", "'securecmr monitor fit'"),
    (r"change it with update_user", "change it with 'securecmr users update'"),
    (r"exist_ok=True", "--exist-ok"),
    (r"; close it, open with readonly=True, or pass timeout= to wait", "; retry when it is done"),
    (r"open it for writing to change it", "this command needs write access"),
    (r"\bttl_hours\b", "--ttl-hours"),
    (r"\bbits must\b", "--bits must"),
    (r"\bk must\b", "-k must"),
    (r"\bwhere=", "--where "),
    (r"\bprotection\b(?= [{'\"])", "--protection"),
    (r"milvus_uri=", "--milvus-uri"),
    (r'index_backend="milvus"', "--index-backend milvus"),
    (r"Store\.open_or_create", "--exist-ok"),
]


def cli_message(exc: BaseException) -> str:
    """The error's message with Python-API advice reworded for the command line."""
    msg = str(exc) or type(exc).__name__
    for pattern, repl in _REWORD:
        msg = re.sub(pattern, repl, msg)
    return msg


_HINTS: dict[str, str] = {
    "StoreNotFoundError": "check the path, or create a store with 'securecmr store create STORE'",
    "StoreExistsError": "pass --exist-ok to use the existing store",
    "StoreLockedError": "another process is writing to this store; retry when it is done",
    "CollectionNotFoundError": "'securecmr collection list STORE' shows the collections",
    "CollectionExistsError": "pass --exist-ok to use the existing collection",
    "UserExistsError": "'securecmr users update' changes a user; --exist-ok leaves it as it is",
    "UserNotFoundError": "'securecmr users list STORE' shows the users",
    "DecryptionError": "check SECURECMR_PASSPHRASE",
    "AuthenticationError": "check SECURECMR_TOKEN, or ask an admin for a new token",
    "ModelNotFoundError": "export the encoders with 'securecmr models export'",
    "MissingDependencyError": "install the extra the message names",
    "ManifestError": "fix the line it names; nothing was ingested",
    "PolicyError": "see docs/guides/access.md for the policy language",
    "NotFittedError": "run 'securecmr monitor fit STORE' once the store has query history",
}


def cli_hint(exc: BaseException) -> str | None:
    for cls in type(exc).__mro__:
        hint = _HINTS.get(cls.__name__)
        if hint is not None:
            return hint
    return None
