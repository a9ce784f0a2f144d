"""SRT and WebVTT transcripts: parsing (strict or lenient) and alignment of cues to time segments.

Handling, as documented in the education guide:

* a cue whose timing line does not parse (bad separator, minutes or seconds >= 60, missing
  ``-->``) or that ends before it starts is *broken*: ``strict=True`` raises :class:`SubtitleError`
  naming the line; the default skips it and lists it in :attr:`Transcript.problems`;
* a file with no valid cue at all always raises :class:`SubtitleError`;
* overlapping cues are kept (two speakers, roll-up captions) and counted in
  :attr:`Transcript.overlaps`; cues out of order are sorted by start time;
* cues with no text, WebVTT ``NOTE`` / ``STYLE`` / ``REGION`` blocks and cue settings are dropped;
  markup (``<i>``, ``<v Speaker>``, ``<c.class>``, inline timestamps) and HTML entities are removed;
* a file that is not UTF-8 is decoded as Latin-1 and says so in ``problems``.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from securecmr.errors import ConfigurationError

from .errors import SubtitleError

__all__ = [
    "Cue",
    "SubtitleProblem",
    "Transcript",
    "align_cues",
    "parse_subtitles",
    "read_subtitles",
    "transcript_windows",
]

_TS = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*{_TS}\s*-->\s*{_TS}(?:\s+.*)?$")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: ``[start, end]`` seconds and its plain text; ``line`` is its timing line."""

    start: float
    end: float
    text: str
    line: int


@dataclass(frozen=True)
class SubtitleProblem:
    """A cue (or the file) that was skipped or needed a fallback: 1-based ``line`` and why."""

    line: int | None
    message: str


@dataclass(frozen=True)
class Transcript:
    """Parsed cues sorted by start time, plus what was skipped (``problems``) and how many cues
    overlap the previous one (``overlaps``)."""

    name: str
    format: str
    cues: tuple[Cue, ...]
    problems: tuple[SubtitleProblem, ...]
    overlaps: int

    @property
    def end(self) -> float:
        return max((c.end for c in self.cues), default=0.0)

    def __repr__(self) -> str:
        return (
            f"Transcript({self.name!r}, format={self.format!r}, cues={len(self.cues)}, "
            f"problems={len(self.problems)}, overlaps={self.overlaps})"
        )


def _seconds(h: str | None, m: str, s: str, frac: str | None) -> float:
    mm, ss = int(m), int(s)
    if mm >= 60 or ss >= 60:
        raise ValueError("minutes and seconds must be below 60")
    ms = 0.0 if not frac else int(frac) / (10 ** len(frac))
    return (int(h) if h else 0) * 3600 + mm * 60 + ss + ms


def _timing(line: str) -> tuple[float, float] | None:
    """``(start, end)`` of a timing line, ``None`` when the line is no timing line at all; raises
    ValueError when it is one but broken."""
    if "-->" not in line:
        return None
    m = _TIMING.match(line)
    if m is None:
        raise ValueError("the timestamps do not parse (expected HH:MM:SS,mmm --> HH:MM:SS,mmm)")
    g = m.groups()
    start, end = _seconds(*g[:4]), _seconds(*g[4:])
    if end < start:
        raise ValueError(f"the cue ends ({end:.3f} s) before it starts ({start:.3f} s)")
    return start, end


def _clean(lines: Sequence[str]) -> str:
    text = " ".join(_TAG.sub(" ", ln) for ln in lines)
    return _SPACE.sub(" ", html.unescape(text)).strip()


def _decode(data: bytes) -> tuple[str, SubtitleProblem | None]:
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        return data.decode("latin-1"), SubtitleProblem(None, "not UTF-8; decoded as Latin-1")


def parse_subtitles(
    text: str, *, name: str = "<subtitles>", format: str | None = None, strict: bool = False
) -> Transcript:
    """Parse SRT or WebVTT text (``format`` ``"srt"`` / ``"vtt"``; ``None`` = WebVTT when the text
    starts with ``WEBVTT``, else SRT). See the module docstring for how broken cues are handled."""
    if not isinstance(text, str):
        raise ConfigurationError("parse_subtitles takes the file's text (use read_subtitles for a path)")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    is_vtt = lines[0].strip().startswith("WEBVTT") if lines else False
    fmt = format or ("vtt" if is_vtt else "srt")
    if fmt not in ("srt", "vtt"):
        raise ConfigurationError(f"format must be 'srt' or 'vtt', not {format!r}")
    if fmt == "vtt" and not is_vtt:
        raise SubtitleError(f"{name}: a WebVTT file must start with 'WEBVTT'", line=1)
    # blocks: runs of non-blank lines, with the 1-based number of their first line
    blocks: list[tuple[int, list[str]]] = []
    cur: list[str] = []
    first = 0
    for i, ln in enumerate(lines, start=1):
        if ln.strip():
            if not cur:
                first = i
            cur.append(ln)
        elif cur:
            blocks.append((first, cur))
            cur = []
    if cur:
        blocks.append((first, cur))
    if fmt == "vtt" and blocks and blocks[0][1][0].strip().startswith("WEBVTT"):
        blocks = blocks[1:]  # the header block
    cues: list[Cue] = []
    problems: list[SubtitleProblem] = []
    for start_line, block in blocks:
        head = block[0].strip()
        if fmt == "vtt" and head.split(" ")[0] in ("NOTE", "STYLE", "REGION"):
            continue
        # the timing line is the first or (after an index / cue identifier) the second line
        timing_at = 0 if "-->" in block[0] else (1 if len(block) > 1 and "-->" in block[1] else -1)
        line_no = start_line + max(timing_at, 0)
        try:
            if timing_at < 0:
                raise ValueError("no timing line ('-->') in this cue")
            span = _timing(block[timing_at])
        except ValueError as exc:
            if strict:
                raise SubtitleError(f"{name}, line {line_no}: {exc}", line=line_no) from None
            problems.append(SubtitleProblem(line_no, f"cue skipped: {exc}"))
            continue
        if span is None:  # unreachable: the line holds '-->'
            continue
        body = _clean(block[timing_at + 1 :])
        if body:
            cues.append(Cue(span[0], span[1], body, line_no))
    if not cues:
        detail = f" ({len(problems)} broken cue(s), first at line {problems[0].line})" if problems else ""
        raise SubtitleError(
            f"{name}: no cue with valid timestamps and text{detail}",
            line=problems[0].line if problems else None,
        )
    ordered = sorted(cues, key=lambda c: (c.start, c.end, c.line))
    overlaps = 0
    latest_end = float("-inf")
    for c in ordered:
        if c.start < latest_end:
            overlaps += 1
        latest_end = max(latest_end, c.end)
    return Transcript(name=name, format=fmt, cues=tuple(ordered), problems=tuple(problems), overlaps=overlaps)


def read_subtitles(path: str | os.PathLike[str], *, strict: bool = False) -> Transcript:
    """Read an ``.srt`` or ``.vtt`` file (by extension, else by content) with :func:`parse_subtitles`."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise SubtitleError(
            f"{p.name}: cannot read the file ({exc.strerror or type(exc).__name__})"
        ) from None
    text, note = _decode(data)
    ext = p.suffix.lower()
    fmt = "vtt" if ext == ".vtt" else ("srt" if ext == ".srt" else None)
    t = parse_subtitles(text, name=p.name, format=fmt, strict=strict)
    if note is not None:
        t = Transcript(t.name, t.format, t.cues, (note, *t.problems), t.overlaps)
    return t


def align_cues(cues: Sequence[Cue], windows: Sequence[tuple[float, float]]) -> list[str]:
    """The transcript text of each ``[start, end)`` window: every cue that overlaps it, in order.

    A cue that spans a window boundary belongs to both windows; a zero-length cue belongs to the
    window containing its start.
    """
    out: list[list[str]] = [[] for _ in windows]
    for c in cues:
        for j, (ws, we) in enumerate(windows):
            if (c.start < we and c.end > ws) or (c.start == c.end and ws <= c.start < we):
                out[j].append(c.text)
    return [" ".join(parts) for parts in out]


def transcript_windows(
    cues: Sequence[Cue], window_s: float, *, start: float = 0.0
) -> list[tuple[float, float]]:
    """Fixed ``window_s`` windows from ``start`` to the last cue's end, keeping only windows that
    some cue overlaps (for lectures indexed from the transcript alone)."""
    if window_s <= 0:
        raise ConfigurationError(f"window_s must be > 0, got {window_s}")
    if not cues:
        return []
    end = max(max(c.end for c in cues), max(c.start for c in cues) + 1e-3)
    windows: list[tuple[float, float]] = []
    i = 0
    while (t := start + i * window_s) < end:
        i += 1
        w = (t, min(t + window_s, end))
        if any(
            (c.start < w[1] and c.end > w[0]) or (c.start == c.end and w[0] <= c.start < w[1]) for c in cues
        ):
            windows.append(w)
    return windows
