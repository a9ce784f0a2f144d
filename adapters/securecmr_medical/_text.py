"""Rule-based free-text PHI de-identification (HIPAA Safe Harbor identifiers found in reports).

Rules, not models (spaCy / presidio models cannot be installed offline): regular expressions for
dates, ages over 89, record numbers and other ids, SSNs, phone and fax numbers, e-mail
addresses, URLs, IP addresses and street addresses; names after titles (Dr., Mr., Mrs., Ms.,
...), in name contexts ("Patient:", "signed by", "Dictated by", ...), "First Last" with a first
name from a built-in list, "Last, First", and every later repeat of a name already found.

The report keeps category and span offsets only, never the removed text.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from securecmr.errors import ConfigurationError

from ._names import FIRST_NAMES
from .errors import EmptyReportError

__all__ = ["DeidReport", "DeidResult", "Redaction", "TextDeidentifier", "deidentify_text"]

CATEGORIES = (
    "ADDRESS",
    "AGE",
    "DATE",
    "EMAIL",
    "FAX",
    "ID",
    "IP",
    "NAME",
    "PHONE",
    "SSN",
    "URL",
)


@dataclass(frozen=True)
class Redaction:
    """One removed span: its category and offsets in the original text (the text is not kept)."""

    category: str
    start: int
    end: int


@dataclass(frozen=True)
class DeidReport:
    """What was removed from one text: categories and spans, never the removed strings."""

    redactions: tuple[Redaction, ...]
    length: int

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r.category for r in self.redactions).items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "counts": self.counts(),
            "spans": [{"category": r.category, "start": r.start, "end": r.end} for r in self.redactions],
        }

    def __repr__(self) -> str:
        return f"DeidReport(length={self.length}, counts={self.counts()})"


@dataclass(frozen=True)
class DeidResult:
    """De-identified text plus the report of what was removed."""

    text: str
    report: DeidReport

    def __repr__(self) -> str:  # the text is de-identified but may still be sensitive clinically
        return f"DeidResult(chars={len(self.text)}, report={self.report!r})"


# ---------------------------------------------------------------------------------------------
# patterns
_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan\.?|Feb\.?|Mar\.?|Apr\.?|Jun\.?|Jul\.?|Aug\.?|Sept?\.?|Oct\.?|Nov\.?|Dec\.?)"
)
_ORD = r"(?:st|nd|rd|th)?"
_DATE_PATTERNS = [
    r"\b\d{1,2}[/-]\d{1,2}[/-](?:\d{4}|\d{2})\b",
    r"\b\d{4}[/-]\d{1,2}[/-]\d{1,2}\b",
    r"\b\d{1,2}\.\d{1,2}\.\d{4}\b",
    rf"\b{_MONTH}\s+\d{{1,2}}{_ORD},?\s+\d{{4}}\b",
    rf"\b\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}\b",
    rf"\b{_MONTH},?\s+\d{{4}}\b",
    rf"\b{_MONTH}\s+\d{{1,2}}{_ORD}\b(?!\s*(?:mm|cm|mg|ml|%))",
    rf"\b\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH}\b",
    r"\b\d{1,2}/\d{4}\b",
]
_OLD = r"(?:9\d|1[0-4]\d)"
_AGE_PATTERNS = [
    rf"\b(?P<v>{_OLD})(?=(?:\s*|-)(?:years?|yrs?|yo|y/o|y\.o\.|year-old|-year|-yr)\b)",
    rf"(?i:\b(?:age|aged|age:)\s*)(?P<v>{_OLD})\b",
    rf"\b(?P<v>{_OLD})(?=\s*(?:-|\s)?(?:year|yr)s?(?:-|\s)old\b)",
    rf"\b(?P<v>{_OLD})(?=\s?(?:M|F|yo|YO)\b)",
]
_ID_KEY = (
    r"(?i:MRN|MR\s?#|MR\s?No\.?|Medical\s+Record(?:\s+(?:Number|No\.?|#))?|Record\s+(?:Number|No\.?|#)|"
    r"Acc(?:ession)?(?:\s+(?:Number|No\.?|#))?|Account(?:\s+(?:Number|No\.?|#))?|Patient\s+ID|"
    r"Pt\.?\s+ID|ID|Health\s+Plan(?:\s+(?:ID|Number|No\.?))?|Member\s+(?:ID|Number|No\.?)|"
    r"Beneficiary\s+(?:ID|Number|No\.?)|Licen[cs]e(?:\s+(?:Number|No\.?|#))?|"
    r"Serial(?:\s+(?:Number|No\.?|#))?|Device\s+ID|Certificate(?:\s+(?:Number|No\.?|#))?|VIN|"
    r"Encounter(?:\s+(?:ID|Number|No\.?|#))?|Case\s+(?:Number|No\.?|#)|Specimen(?:\s+(?:Number|No\.?|#))?)"
)
_ID_PATTERNS = [
    rf"\b{_ID_KEY}\s*(?:[:#=]|is)?\s*(?P<v>(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{{2,}})\b",
    r"\b(?P<v>(?=[A-Z0-9-]*\d{6})[A-Z]{0,4}-?\d[\d-]{5,}\d)\b",
]
_SSN = r"\b\d{3}-\d{2}-\d{4}\b"
_PHONE = (
    r"(?<![\w-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?:\s*(?:x|ext\.?)\s*\d{1,5})?\b"
)
_EMAIL = r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"
_URL = r"\b(?:https?://|www\.)[^\s<>\"')\]]+[^\s<>\"')\].,;:!?]"
_IP = r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b"
_STREET = (
    r"(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Boulevard|Blvd\.?|Lane|Ln\.?|Drive|Dr\.?|Court|Ct\.?|"
    r"Way|Place|Pl\.?|Terrace|Circle|Cir\.?|Highway|Hwy\.?|Parkway|Pkwy\.?|Square|Sq\.?|Trail)"
)
_CITY_STATE_ZIP = r"(?:,?\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+)*)?(?:,\s*[A-Z]{2})?(?:\s+\d{5}(?:-\d{4})?)?"
_ADDRESS_PATTERNS = [
    rf"\b\d{{1,6}}\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+\.?\s+){{1,4}}{_STREET}(?![a-z])"
    rf"(?:,?\s+(?:Apt\.?|Suite|Unit|#)\s*\w+)?{_CITY_STATE_ZIP}",
    r"\bP\.?\s?O\.?\s+Box\s+\d+\b",
    r"\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)*,\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?\b",
]
_NAME_TOKEN = r"[A-Z](?:[a-z]|['’][A-Z])[a-zA-Z'’-]*"
_TITLE = r"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Doctor|Drs)\.?\s+"
_NAME_CONTEXT = (
    r"(?:\b(?i:patient\s+name|patient|name|pt|attending|physician|radiologist|resident|"
    r"referring\s+physician|referring|provider|surgeon|nurse|technologist|"
    r"mother|father|wife|husband|son|daughter|spouse|guardian|next\s+of\s+kin|contact|cc)\s*:\s*|"
    r"\b(?i:dictated|signed|reviewed|read|seen|referred|examined|interpreted|transcribed|verified|"
    r"approved|performed|attended)\s+by\s*:?\s*|(?i:electronically\s+signed\s+by)\s*:?\s*)"
)
_NOT_SURNAME = frozenset(
    [
        "The",
        "This",
        "That",
        "And",
        "Of",
        "In",
        "On",
        "At",
        "With",
        "For",
        "From",
        "To",
        "A",
        "An",
        "Is",
        "Was",
        "Has",
        "Had",
        "Syndrome",
        "Disease",
        "Sign",
        "Hospital",
        "Clinic",
        "Center",
        "Medical",
        "University",
        "Department",
        "Street",
        "Avenue",
    ]
)


def _compile(patterns: list[str]) -> list[re.Pattern[str]]:
    return [re.compile(p) for p in patterns]


_DATE_RE = _compile(_DATE_PATTERNS)
_AGE_RE = _compile(_AGE_PATTERNS)
_ID_RE = _compile(_ID_PATTERNS)
_ADDRESS_RE = _compile(_ADDRESS_PATTERNS)
_SIMPLE = [
    ("SSN", re.compile(_SSN)),
    ("EMAIL", re.compile(_EMAIL)),
    ("URL", re.compile(_URL, re.IGNORECASE)),
    ("IP", re.compile(_IP)),
    ("PHONE", re.compile(_PHONE)),
]
_FAX_CONTEXT = re.compile(r"(?i)fax\w*\s*(?:no\.?|number|#)?\s*[:#]?\s*$")
_TITLE_NAME = re.compile(rf"{_TITLE}(?P<v>{_NAME_TOKEN}(?:\s+[A-Z]\.)?(?:\s+{_NAME_TOKEN}){{0,2}})")
_CONTEXT_NAME = re.compile(
    rf"{_NAME_CONTEXT}(?:{_TITLE})?(?P<v>{_NAME_TOKEN}(?:,?\s+[A-Z]\.)?(?:,?\s+{_NAME_TOKEN}){{0,2}})"
)
# lookaheads so that overlapping candidates ("Noncontributory Patricia Williams") are all tried
_FIRST_LAST = re.compile(rf"\b(?=(?P<v>(?P<first>[A-Z][a-z]+)(?:[ \t]+[A-Z]\.)?\s+(?P<last>{_NAME_TOKEN})))")
_LAST_FIRST = re.compile(rf"\b(?=(?P<v>(?P<last>{_NAME_TOKEN}),[ \t]+(?P<first>[A-Z][a-z]+)\b))")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]+")


def _parse_date(s: str) -> _dt.date | None:
    t = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", s.replace(",", " ").replace(" of ", " "))
    t = re.sub(r"\s+", " ", t).strip().replace("Sept", "Sep")
    t = re.sub(r"\b([A-Z][a-z]{2})[a-z]*\.?", r"\1", t)
    for fmt in (
        "%m/%d/%Y",
        "%m-%d-%Y",
        "%m/%d/%y",
        "%m-%d-%y",
        "%Y-%m-%d",
        "%Y/%m/%d",
        "%d.%m.%Y",
        "%b %d %Y",
        "%d %b %Y",
    ):
        try:
            return _dt.datetime.strptime(t, fmt).date()
        except ValueError:
            continue
    return None


class TextDeidentifier:
    """Remove HIPAA Safe Harbor identifiers from free text.

    Parameters
    ----------
    date_mode:
        ``"redact"`` (default) replaces every date with ``[DATE]``; ``"shift"`` moves full dates
        (day, month and year) back by a per-patient offset of 1-365 days derived from
        ``shift_key`` and the ``patient_key`` passed to :meth:`deidentify` (intervals between one
        patient's dates are kept); partial dates are still redacted.
    shift_key:
        Secret bytes for ``date_mode="shift"`` (never shown in a repr).
    extra_names:
        More given names to recognise (e.g. a site's own list).
    placeholder:
        Format of replacements; ``{category}`` is the category (``NAME``, ``DATE``, ...).
    """

    def __init__(
        self,
        *,
        date_mode: str = "redact",
        shift_key: bytes | None = None,
        extra_names: tuple[str, ...] = (),
        placeholder: str = "[{category}]",
    ) -> None:
        self.date_mode = date_mode
        self.shift_key = shift_key
        self.extra_names = extra_names
        self.placeholder = placeholder

    def __repr__(self) -> str:
        key = "set" if self.shift_key else "none"
        return f"TextDeidentifier(date_mode={self.date_mode!r}, shift_key=<{key}>)"

    # -- checks ----------------------------------------------------------------------------
    def _check(self) -> None:
        if self.date_mode not in ("redact", "shift"):
            raise ConfigurationError(f"date_mode must be 'redact' or 'shift', not {self.date_mode!r}")
        if self.date_mode == "shift" and not self.shift_key:
            raise ConfigurationError("date_mode='shift' needs shift_key (secret bytes)")
        if "{category}" not in self.placeholder:
            raise ConfigurationError("placeholder must contain '{category}'")

    # -- detection -------------------------------------------------------------------------
    def find(self, text: str) -> list[Redaction]:
        """Spans to remove (merged, sorted); categories only, no text."""
        self._check()
        spans: list[Redaction] = []

        def add(cat: str, m: re.Match[str], group: str | int = 0) -> None:
            s, e = m.span(group)
            if e > s:
                spans.append(Redaction(cat, s, e))

        for cat, rx in _SIMPLE:
            for m in rx.finditer(text):
                if cat == "PHONE" and _FAX_CONTEXT.search(text[max(0, m.start() - 20) : m.start()]):
                    cat_ = "FAX"
                else:
                    cat_ = cat
                add(cat_, m)
        for rx in _ADDRESS_RE:
            for m in rx.finditer(text):
                add("ADDRESS", m)
        for rx in _DATE_RE:
            for m in rx.finditer(text):
                add("DATE", m)
        for rx in _AGE_RE:
            for m in rx.finditer(text):
                add("AGE", m, "v")
        for rx in _ID_RE:
            for m in rx.finditer(text):
                add("ID", m, "v")
        spans.extend(self._names(text))
        return _merge(spans)

    def _names(self, text: str) -> list[Redaction]:
        firsts = FIRST_NAMES | frozenset(self.extra_names)
        found: list[Redaction] = []
        tokens: set[str] = set()

        def take(s: int, e: int) -> None:
            chunk = text[s:e]
            # drop trailing words that are not name-like ("Smith Hospital")
            found.append(Redaction("NAME", s, e))
            for w in _WORD.findall(chunk):
                if w[0].isupper() and w not in _NOT_SURNAME and len(w) > 1:
                    tokens.add(w)

        for rx in (_TITLE_NAME, _CONTEXT_NAME):
            for m in rx.finditer(text):
                s, e = m.span("v")
                words = list(re.finditer(_NAME_TOKEN, text[s:e]))
                keep = [w for w in words if w.group() not in _NOT_SURNAME]
                if keep:
                    take(s + keep[0].start(), s + keep[-1].end())
        for m in _FIRST_LAST.finditer(text):
            if m.group("first") in firsts and m.group("last") not in _NOT_SURNAME:
                take(*m.span("v"))
        for m in _LAST_FIRST.finditer(text):
            if m.group("first") in firsts and m.group("last") not in _NOT_SURNAME:
                take(*m.span("v"))
        if tokens:  # every later repeat of a name already found
            rx = re.compile(r"\b(?:" + "|".join(re.escape(t) for t in sorted(tokens)) + r")\b")
            for m in rx.finditer(text):
                found.append(Redaction("NAME", m.start(), m.end()))
        return found

    # -- rewriting -------------------------------------------------------------------------
    def deidentify(self, text: str, *, patient_key: str | None = None, item: str | None = None) -> DeidResult:
        """Return the de-identified text and the report.

        ``patient_key`` (any stable per-patient string; not stored) selects the date shift in
        ``"shift"`` mode. ``item`` names the text in error messages. Raises
        :class:`~securecmr_medical.errors.EmptyReportError` for empty or blank text.
        """
        if not isinstance(text, str):
            raise EmptyReportError(f"report {item or ''} is not text ({type(text).__name__}); pass a str")
        if not text.strip():
            where = f" {item!r}" if item else ""
            raise EmptyReportError(f"report{where} has no text; drop it or supply the report body")
        spans = self.find(text)
        offset = self._offset_days(patient_key) if self.date_mode == "shift" else 0
        out: list[str] = []
        pos = 0
        for r in spans:
            out.append(text[pos : r.start])
            out.append(self._replacement(r, text[r.start : r.end], offset))
            pos = r.end
        out.append(text[pos:])
        return DeidResult("".join(out), DeidReport(tuple(spans), len(text)))

    def _offset_days(self, patient_key: str | None) -> int:
        if patient_key is None:
            raise ConfigurationError("date_mode='shift' needs patient_key so one patient shifts consistently")
        digest = hmac.new(self.shift_key or b"", patient_key.encode("utf-8"), hashlib.sha256).digest()
        return 1 + int.from_bytes(digest[:4], "big") % 365

    def _replacement(self, r: Redaction, original: str, offset: int) -> str:
        if r.category == "DATE" and offset:
            d = _parse_date(original)
            if d is not None:
                return (d - _dt.timedelta(days=offset)).isoformat()
        if r.category == "AGE":
            return self.placeholder.format(category="AGE>89")
        return self.placeholder.format(category=r.category)


def _merge(spans: list[Redaction]) -> list[Redaction]:
    """Union of overlapping spans; the longest original span names the category."""
    if not spans:
        return []
    spans = sorted(spans, key=lambda r: (r.start, -(r.end - r.start)))
    merged: list[Redaction] = [spans[0]]
    for r in spans[1:]:
        last = merged[-1]
        if r.start < last.end:
            if r.end > last.end:
                cat = last.category if (last.end - last.start) >= (r.end - r.start) else r.category
                merged[-1] = Redaction(cat, last.start, r.end)
        else:
            merged.append(r)
    return merged


def deidentify_text(text: str, **params: object) -> DeidResult:
    """Shortcut: ``TextDeidentifier(**params).deidentify(text)`` with the default rules."""
    return TextDeidentifier(**params).deidentify(text)  # type: ignore[arg-type]
