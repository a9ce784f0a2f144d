"""Exports and disclosures of footage, each one recorded in the audit log before it is handed out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from securecmr.errors import ConfigurationError

from ._merge import TimeRange

__all__ = ["AuditLike", "FootageExport", "disclose"]


class AuditLike(Protocol):
    """What disclosure needs from an audit log (``securecmr.audit.AuditLog``, ``store.audit``)."""

    def append(self, action: str, *, principal: str | None, **fields: Any) -> Any: ...


@dataclass(frozen=True)
class FootageExport:
    """One disclosed time range: where the footage is (``refs``) and what it covers."""

    camera: str
    site: str
    start: float
    end: float
    wall_start: float | None
    wall_end: float | None
    refs: tuple[str, ...]


def disclose(
    ranges: Iterable[TimeRange],
    *,
    audit: AuditLike,
    principal: str,
    recipient: str,
    reason: str,
    collection: str | None = None,
    action: str = "export",
) -> list[FootageExport]:
    """Record the disclosure of each range in ``audit`` (action ``export``, the segment ids as keyed
    result ids, camera/site/times/recipient in the detail), then return the footage references.

    The audit record is written first: if writing it fails, nothing is returned. ``reason`` and
    ``recipient`` are required (a disclosure without them is refused).
    """
    if not principal or not recipient.strip() or not reason.strip():
        raise ConfigurationError("a disclosure needs a principal, a recipient and a reason")
    out: list[FootageExport] = []
    for r in ranges:
        if not r.refs:
            raise ConfigurationError(
                "this time range carries no footage reference; search with an account allowed to "
                "read refs (the store unseals them only for authorised users)"
            )
        audit.append(
            action, principal=principal, collection=collection, result_ids=list(r.ids), reason=reason,
            detail={"camera": r.camera, "site": r.site, "start": r.start, "end": r.end,
                    "wall_start": r.wall_start, "wall_end": r.wall_end, "recipient": recipient,
                    "segments": len(r.ids)},
        )
        out.append(FootageExport(camera=r.camera, site=r.site, start=r.start, end=r.end,
                                 wall_start=r.wall_start, wall_end=r.wall_end, refs=r.refs))
    return out
