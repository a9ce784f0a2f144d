"""Ingest reports: what each file stored and every per-file / per-page / per-cue problem."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FileReport", "IngestReport", "Problem"]


@dataclass(frozen=True)
class Problem:
    """Something that was skipped or degraded: the ``file`` (name only), ``where`` in it (``"page
    3"``, ``"line 12"``, ``"t=95.0s"`` or ``None`` for the whole file), the error class name and a
    message. ``fatal`` problems mean nothing of the file was stored."""

    file: str
    where: str | None
    error: str
    message: str
    fatal: bool = False


@dataclass
class FileReport:
    """One file (or in-memory source): its ``kind`` (``pdf``, ``image``, ``lecture``, ``slides``),
    the ids stored, and its problems."""

    file: str
    kind: str
    ids: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def items(self) -> int:
        return len(self.ids)

    @property
    def failed(self) -> bool:
        """True when nothing of the file was stored because of a problem."""
        return any(p.fatal for p in self.problems)

    def note(self, where: str | None, error: str, message: str, *, fatal: bool = False) -> None:
        self.problems.append(Problem(self.file, where, error, message, fatal))

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "items": self.items,
            "problems": [asdict(p) for p in self.problems],
        }

    def __repr__(self) -> str:
        return (
            f"FileReport({self.file!r}, kind={self.kind!r}, items={self.items}, "
            f"problems={len(self.problems)}, failed={self.failed})"
        )


@dataclass
class IngestReport:
    """A batch: one :class:`FileReport` per file, in the order the files were taken."""

    files: list[FileReport] = field(default_factory=list)

    @property
    def items(self) -> int:
        return sum(f.items for f in self.files)

    @property
    def problems(self) -> list[Problem]:
        return [p for f in self.files for p in f.problems]

    @property
    def failed(self) -> list[FileReport]:
        return [f for f in self.files if f.failed]

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "failed": len(self.failed), "files": [f.to_dict() for f in self.files]}

    def __repr__(self) -> str:
        return (
            f"IngestReport(files={len(self.files)}, items={self.items}, "
            f"problems={len(self.problems)}, failed={len(self.failed)})"
        )
