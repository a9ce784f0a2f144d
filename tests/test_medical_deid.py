"""Free-text PHI de-identification: rules, report hygiene, and the injected-PHI benchmark."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
from securecmr_medical import TextDeidentifier, evaluate_deidentifier, inject_phi
from securecmr_medical.errors import EmptyReportError

from securecmr.errors import ConfigurationError, EmptyInputError

# Small report snippets written for the tests (radiology style, no real patient data).
SNIPPETS = [
    "CT of the chest reveals an obstructing mass and resultant left upper lobe collapse. "
    "Mediastinal lymphadenopathy is present. No pleural effusion.",
    "Frontal and lateral views of the chest. The heart size is normal. The lungs are clear. "
    "No pneumothorax or focal airspace consolidation.",
    "MRI of the brain shows a 2.3 cm enhancing mass in the right frontal lobe with surrounding "
    "vasogenic edema and 4 mm of midline shift. Differential includes glioblastoma and metastasis.",
    "Axial T2-weighted images demonstrate a lobulated cystic lesion in the pancreatic tail. "
    "The main pancreatic duct is not dilated.",
    "Noncontrast CT of the abdomen shows a 7 mm obstructing calculus at the left ureterovesical "
    "junction with mild hydronephrosis.",
    "The prostate is enlarged with several calcifications noted within. No dominant prostate mass "
    "is evident. Bladder wall thickening with a diverticulum on the right.",
    "Sagittal MR of the lumbar spine shows an L4-L5 disc extrusion with severe canal stenosis. "
    "Conus terminates at L1.",
    "Chest radiograph: bilateral hilar adenopathy and reticulonodular opacities, consistent with "
    "sarcoidosis stage II. Follow-up CT recommended in 3 months.",
]


def test_categories_are_removed_and_clinical_text_kept() -> None:
    text = (
        "Patient: Walter Kowalski, MRN: 48213377, DOB 03/14/1931. Seen by Dr. Okafor on March 3, 2019. "
        "Mr. Kowalski is a 94-year-old man; call (555) 201-4477, fax: 555-201-4478, e-mail wk@example.org. "
        "Home: 42 Cedar Lane, Springfield, IL 62704. Portal https://portal.example.org/a?b=1 from "
        "10.2.33.4, SSN 123-45-6789. " + SNIPPETS[0]
    )
    result = TextDeidentifier().deidentify(text)
    for secret in (
        "Walter",
        "Kowalski",
        "48213377",
        "03/14/1931",
        "Okafor",
        "March 3, 2019",
        "94",
        "201-4477",
        "201-4478",
        "wk@example.org",
        "Cedar Lane",
        "62704",
        "portal.example.org",
        "10.2.33.4",
        "123-45-6789",
    ):
        assert secret not in result.text, secret
    assert SNIPPETS[0] in result.text
    counts = result.report.counts()
    for cat in ("NAME", "ID", "DATE", "AGE", "PHONE", "FAX", "EMAIL", "ADDRESS", "URL", "IP", "SSN"):
        assert counts.get(cat, 0) >= 1, cat


def test_ages_up_to_89_are_kept_over_89_removed() -> None:
    d = TextDeidentifier()
    assert "73-year-old" in d.deidentify("73-year-old male with hematuria.").text
    assert "89 year old" in d.deidentify("An 89 year old woman.").text
    for t in ("A 91-year-old woman.", "Age: 102.", "She is 95 years old.", "aged 90, stable"):
        out = d.deidentify(t).text
        assert not re.search(r"\b(9\d|1[0-4]\d)\b", out), out
        assert "[AGE>89]" in out


def test_report_holds_offsets_not_text_and_repr_is_clean(caplog: pytest.LogCaptureFixture) -> None:
    text = "Dictated by Dr. Zielinski on 2020-01-05. " + SNIPPETS[1]
    result = TextDeidentifier().deidentify(text)
    spans = result.report.to_dict()["spans"]
    assert all(set(s) == {"category", "start", "end"} for s in spans)
    assert [text[s["start"] : s["end"]] for s in spans] == ["Zielinski", "2020-01-05"]
    logging.getLogger("t").warning("%r %r %s", result, result.report, result.report.to_dict())
    assert "Zielinski" not in caplog.text and "2020-01-05" not in caplog.text


def test_date_shift_is_consistent_per_patient_and_keyed() -> None:
    d = TextDeidentifier(date_mode="shift", shift_key=b"k" * 32)
    a = d.deidentify("Scan on 2020-03-10, follow-up 2020-03-20.", patient_key="p1").text
    b = d.deidentify("Seen 03/10/2020.", patient_key="p1").text
    dates = re.findall(r"\d{4}-\d{2}-\d{2}", a)
    assert "2020-03-10" not in a and len(dates) == 2
    import datetime as dt

    d0, d1 = (dt.date.fromisoformat(x) for x in dates)
    assert (d1 - d0).days == 10  # intervals kept
    assert dates[0] in b  # same patient, same shift
    other = TextDeidentifier(date_mode="shift", shift_key=b"z" * 32).deidentify(
        "2020-03-10", patient_key="p1"
    )
    c = d.deidentify("2020-03-10", patient_key="p2").text
    assert len({dates[0], other.text, c}) >= 2
    assert "k" * 32 not in repr(d)
    with pytest.raises(ConfigurationError):
        TextDeidentifier(date_mode="shift").deidentify("x")
    with pytest.raises(ConfigurationError):
        d.deidentify("on 2020-01-01")  # no patient_key


def test_no_false_positive_names_on_clinical_text() -> None:
    d = TextDeidentifier()
    for s in SNIPPETS:
        assert d.deidentify(s).text == s


@pytest.mark.parametrize("bad", ["", "   \n\t"])
def test_empty_report_is_a_specific_error(bad: str) -> None:
    with pytest.raises(EmptyReportError, match="case-7") as info:
        TextDeidentifier().deidentify(bad, item="case-7")
    assert isinstance(info.value, EmptyInputError)


def test_inject_phi_gold_spans_point_at_the_injected_strings() -> None:
    rng = np.random.default_rng(3)
    inj = inject_phi(SNIPPETS[2], rng, n_sentences=6)
    assert len(inj.gold) >= 10
    cats = {g.category for g in inj.gold}
    assert {"NAME", "DATE", "ID", "PHONE", "ADDRESS", "AGE"} <= cats
    kept = "".join(inj.text[a:b] for a, b in inj.original_spans)
    assert re.sub(r"\s+", " ", kept).strip() == re.sub(r"\s+", " ", SNIPPETS[2]).strip()


def test_recall_and_retention_on_injected_corpus() -> None:
    ev = evaluate_deidentifier(SNIPPETS * 10, seed=0, n_sentences=4)
    assert ev.n_phi >= 300
    assert ev.phi_recall >= 0.99
    assert ev.clinical_token_retention >= 0.97
    assert ev.leaked_documents == 0
