"""Measure a de-identifier: inject known synthetic PHI into real report text and score it.

:func:`inject_phi` inserts names, dates, record numbers, phone/fax numbers, addresses, ages over
89 (and e-mail / SSN) at sentence boundaries of a real report and returns the gold spans.
:func:`evaluate_deidentifier` runs a :class:`TextDeidentifier` over such a corpus and reports

* ``phi_recall``: injected PHI instances whose every word is inside a redaction span;
* ``phi_token_recall``: the same per word;
* ``leaked_documents``: documents whose output still contains an injected string of 5+ characters
  as a whole word;
* ``clinical_token_retention``: words of the original report (outside injected PHI) that survive,
  i.e. are not touched by any redaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._text import Redaction, TextDeidentifier

__all__ = ["DeidEvaluation", "InjectedText", "evaluate_deidentifier", "inject_phi"]

# Synthetic identities (invented; any resemblance is coincidence). Surnames include ones that are
# also English words (Young, White, Hill) on purpose: they test the cost of name propagation.
_FIRST = [
    "John",
    "Mary",
    "Robert",
    "Patricia",
    "Michael",
    "Linda",
    "William",
    "Barbara",
    "David",
    "Elizabeth",
    "James",
    "Jennifer",
    "Richard",
    "Susan",
    "Joseph",
    "Margaret",
    "Thomas",
    "Dorothy",
    "Charles",
    "Helen",
    "Daniel",
    "Karen",
    "Walter",
    "Ruth",
    "Frank",
    "Gloria",
    "Eugene",
    "Edna",
    "Howard",
    "Mildred",
    "Vincent",
    "Agnes",
    "Harold",
    "Lucille",
    "Leonard",
    "Beatrice",
]
_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Nguyen",
    "Garcia",
    "Kowalski",
    "O'Brien",
    "McDonald",
    "Schneider",
    "Okafor",
    "Tanaka",
    "Fitzgerald",
    "Novak",
    "Haddad",
    "Petrov",
    "Lindqvist",
    "Abernathy",
    "Castellano",
    "Delacroix",
    "Hernandez",
    "Morrison",
    "Patel",
    "Rosenberg",
    "Sullivan",
    "Whitaker",
    "Yamamoto",
    "Zielinski",
    "Brennan",
    "Caldwell",
    "Donovan",
    "Young",
    "White",
    "Hill",
]
_STREETS = [
    "Oak",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lincoln",
    "Park",
    "Lake",
    "Hillcrest",
    "Sunset",
    "Ridge",
    "Meadow",
]
_SUFFIX = ["Street", "St.", "Avenue", "Ave.", "Road", "Drive", "Lane", "Boulevard", "Court", "Way"]
_CITIES = [
    "Springfield",
    "Riverside",
    "Franklin",
    "Greenville",
    "Bristol",
    "Clinton",
    "Fairview",
    "Salem",
    "Madison",
    "Georgetown",
]
_STATES = ["IL", "CA", "TX", "NY", "OH", "PA", "MA", "WA", "GA", "MI"]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


@dataclass(frozen=True)
class InjectedText:
    """A report with injected PHI and the gold spans (category, start, end) of what was injected."""

    text: str
    gold: tuple[Redaction, ...]
    original_spans: tuple[tuple[int, int], ...]  # where the original report's pieces now lie


def _date(rng: np.random.Generator) -> str:
    y, m, d = int(rng.integers(1925, 2024)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    style = int(rng.integers(0, 6))
    if style == 0:
        return f"{m:02d}/{d:02d}/{y}"
    if style == 1:
        return f"{y}-{m:02d}-{d:02d}"
    if style == 2:
        return f"{_MONTHS[m - 1]} {d}, {y}"
    if style == 3:
        return f"{d} {_MONTHS[m - 1]} {y}"
    if style == 4:
        return f"{m}/{d}/{y % 100:02d}"
    return f"{_MONTHS[m - 1][:3]} {d}, {y}"


def _phone(rng: np.random.Generator) -> str:
    a, b, c = int(rng.integers(200, 999)), int(rng.integers(200, 999)), int(rng.integers(0, 9999))
    style = int(rng.integers(0, 3))
    return (f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}")[style]


def _pick(rng: np.random.Generator, seq: Sequence[str]) -> str:
    return seq[int(rng.integers(0, len(seq)))]


def _sentences(rng: np.random.Generator) -> list[list[tuple[str, str | None]]]:
    """Templates as lists of (piece, category-or-None)."""
    first, last = _pick(rng, _FIRST), _pick(rng, _LAST)
    dr_first, dr_last = _pick(rng, _FIRST), _pick(rng, _LAST)
    title = _pick(rng, ("Mr.", "Mrs.", "Ms."))
    mrn = str(int(rng.integers(10**6, 10**9)))
    acc = f"A{int(rng.integers(10**5, 10**7))}"
    age = str(int(rng.integers(90, 105)))
    addr = (
        f"{int(rng.integers(1, 9999))} {_pick(rng, _STREETS)} {_pick(rng, _SUFFIX)}, "
        f"{_pick(rng, _CITIES)}, {_pick(rng, _STATES)} {int(rng.integers(10000, 99999))}"
    )
    email = f"{first.lower()}.{last.lower().replace(chr(39), '')}@example.org"
    ssn = f"{int(rng.integers(100, 899))}-{int(rng.integers(10, 99))}-{int(rng.integers(1000, 9999))}"
    return [
        [
            ("Patient: ", None),
            (f"{first} {last}", "NAME"),
            (". MRN: ", None),
            (mrn, "ID"),
            (". DOB: ", None),
            (_date(rng), "DATE"),
            (".", None),
        ],
        [(f"{title} ", None), (last, "NAME"), (" is a ", None), (age, "AGE"), ("-year-old patient.", None)],
        [
            ("Seen in clinic on ", None),
            (_date(rng), "DATE"),
            (". Home address: ", None),
            (addr, "ADDRESS"),
            (".", None),
        ],
        [
            ("Contact phone ", None),
            (_phone(rng), "PHONE"),
            ("; fax ", None),
            (_phone(rng), "FAX"),
            (".", None),
        ],
        [
            ("Dictated by Dr. ", None),
            (f"{dr_first} {dr_last}", "NAME"),
            (" on ", None),
            (_date(rng), "DATE"),
            (". Accession number ", None),
            (acc, "ID"),
            (".", None),
        ],
        [
            (f"{first} {last}", "NAME"),
            (" was reviewed again; age ", None),
            (age, "AGE"),
            (". Email ", None),
            (email, "EMAIL"),
            (", SSN ", None),
            (ssn, "SSN"),
            (".", None),
        ],
    ]


_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n+")


def inject_phi(text: str, rng: np.random.Generator, *, n_sentences: int = 3) -> InjectedText:
    """Insert ``n_sentences`` synthetic PHI sentences at sentence boundaries of ``text``."""
    cuts = [0] + [m.end() for m in _BOUNDARY.finditer(text)] + [len(text)]
    cuts = sorted(set(cuts))
    templates = _sentences(rng)
    chosen = rng.choice(len(templates), size=min(n_sentences, len(templates)), replace=False)
    where = sorted(int(x) for x in rng.choice(cuts, size=len(chosen), replace=True))
    out: list[str] = []
    gold: list[Redaction] = []
    original: list[tuple[int, int]] = []
    pos = 0
    length = 0
    for cut, t in zip(where, chosen, strict=True):
        piece = text[pos:cut]
        original.append((length, length + len(piece)))
        out.append(piece)
        length += len(piece)
        pos = cut
        sep = "" if (length == 0 or out[-1].endswith((" ", "\n"))) else " "
        out.append(sep)
        length += len(sep)
        for chunk, cat in templates[int(t)]:
            if cat is not None:
                gold.append(Redaction(cat, length, length + len(chunk)))
            out.append(chunk)
            length += len(chunk)
        out.append(" ")
        length += 1
    piece = text[pos:]
    original.append((length, length + len(piece)))
    out.append(piece)
    return InjectedText("".join(out), tuple(gold), tuple(original))


@dataclass
class DeidEvaluation:
    """Scores of one evaluation run (ratios measured within the run)."""

    n_documents: int
    n_phi: int
    n_phi_tokens: int
    n_clinical_tokens: int
    phi_recall: float
    phi_token_recall: float
    clinical_token_retention: float
    recall_by_category: dict[str, float] = field(default_factory=dict)
    leaked_documents: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_TOKEN = re.compile(r"\w+")


def _covered(s: int, e: int, spans: Sequence[Redaction]) -> bool:
    return any(r.start <= s and e <= r.end for r in spans)


def _touched(s: int, e: int, spans: Sequence[Redaction]) -> bool:
    return any(r.start < e and s < r.end for r in spans)


def evaluate_deidentifier(
    texts: Iterable[str],
    deidentifier: TextDeidentifier | None = None,
    *,
    seed: int = 0,
    n_sentences: int = 3,
) -> DeidEvaluation:
    """Inject synthetic PHI into each text, de-identify, and score recall and retention."""
    deid = deidentifier or TextDeidentifier()
    rng = np.random.default_rng(seed)
    n_docs = n_phi = hit_phi = n_tok = hit_tok = n_clin = kept_clin = leaked = 0
    per_cat: dict[str, list[int]] = {}
    for text in texts:
        if not text.strip():
            continue
        inj = inject_phi(text, rng, n_sentences=n_sentences)
        result = deid.deidentify(inj.text)
        spans = result.report.redactions
        n_docs += 1
        leak = False
        for g in inj.gold:
            toks = [
                (g.start + m.start(), g.start + m.end()) for m in _TOKEN.finditer(inj.text[g.start : g.end])
            ]
            ok = [_covered(s, e, spans) for s, e in toks]
            n_tok += len(ok)
            hit_tok += sum(ok)
            n_phi += 1
            found = all(ok)
            hit_phi += found
            c = per_cat.setdefault(g.category, [0, 0])
            c[0] += found
            c[1] += 1
            gold_text = inj.text[g.start : g.end]
            # whole-word match ("Patel" in "Patella" is no leak); short numbers recur by chance
            if len(gold_text) >= 5 and re.search(rf"(?<!\w){re.escape(gold_text)}(?!\w)", result.text):
                leak = True
        leaked += leak
        for a, b in inj.original_spans:
            for m in _TOKEN.finditer(inj.text[a:b]):
                n_clin += 1
                kept_clin += not _touched(a + m.start(), a + m.end(), spans)
    return DeidEvaluation(
        n_documents=n_docs,
        n_phi=n_phi,
        n_phi_tokens=n_tok,
        n_clinical_tokens=n_clin,
        phi_recall=hit_phi / n_phi if n_phi else float("nan"),
        phi_token_recall=hit_tok / n_tok if n_tok else float("nan"),
        clinical_token_retention=kept_clin / n_clin if n_clin else float("nan"),
        recall_by_category={k: v[0] / v[1] for k, v in sorted(per_cat.items())},
        leaked_documents=leaked,
    )
