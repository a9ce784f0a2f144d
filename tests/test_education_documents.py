"""Education adapter, documents: PDFs (generated with PyMuPDF), SRT / WebVTT transcripts, Rocchio, LPM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _education_helpers import SRT, VTT, damage_page_content, make_pdf
from securecmr_education import (
    Cue,
    PdfDocument,
    Rocchio,
    align_cues,
    load_lpm,
    parse_subtitles,
    read_subtitles,
    transcript_windows,
)
from securecmr_education.errors import EncryptedPDFError, PDFReadError, SubtitleError

from securecmr.errors import ConfigurationError, DocumentError, EmptyInputError, ShapeError

# ----------------------------------------------------------------------------- PDFs


def test_pages_text_render_and_figure_caption(tmp_path: Path) -> None:
    pdf = make_pdf(
        tmp_path / "cells.pdf",
        ["The golgi apparatus packages proteins", "Mitochondria make ATP"],
        picture=1,
        caption="Figure 1: a mitochondrion in section",
    )
    with PdfDocument(pdf, render_px=240) as doc:
        assert doc.page_count == 2 and doc.notes == ()
        pages = list(doc.pages())
    assert [p.number for p in pages] == [1, 2]
    assert pages[0].text == "The golgi apparatus packages proteins"
    assert pages[0].image is not None and pages[0].image.shape == (180, 240, 3)
    assert pages[0].image.dtype == np.uint8 and pages[0].figures == () and pages[0].notes == ()
    (fig,) = pages[1].figures
    assert fig.caption == "Figure 1: a mitochondrion in section"
    # the rendered figure is the picture: red left half, green right half
    h, w, _ = fig.image.shape
    assert fig.image[h // 2, w // 4, 0] > 180 and fig.image[h // 2, 3 * w // 4, 1] > 150


def test_page_without_text_keeps_its_image(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "scan.pdf", [None, "second page text"])
    with PdfDocument(pdf) as doc:
        first, second = doc.pages()
    assert first.text == "" and not first.has_text and first.image is not None
    assert first.image.reshape(-1, 3).min() < 100  # the drawn rectangle is rendered
    assert any("no text layer" in n for n in first.notes)
    assert second.has_text and second.notes == ()
    with PdfDocument(pdf, render_px=None) as doc:
        assert next(doc.pages()).image is None


def test_encrypted_pdf_needs_the_password(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "exam.pdf", ["answers to the exam"], password="s3cret")
    with pytest.raises(EncryptedPDFError, match="encrypted; pass password="):
        PdfDocument(pdf)
    with pytest.raises(EncryptedPDFError, match="does not open") as info:
        PdfDocument(pdf, password="wrong")
    assert isinstance(info.value, PermissionError) and "wrong" not in str(info.value)
    with PdfDocument(pdf, password="s3cret") as doc:
        assert next(doc.pages()).text == "answers to the exam"


@pytest.mark.parametrize("content", [b"", b"%PDF-1.4\nnot really a pdf\n", b"\x89PNG\r\n\x1a\nxxxx"])
def test_malformed_files_raise_a_clear_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(content)
    with pytest.raises(PDFReadError, match=r"broken\.pdf") as info:
        PdfDocument(bad)
    assert isinstance(info.value, DocumentError) and str(tmp_path) not in str(info.value)
    with pytest.raises(PDFReadError, match="no such file"):
        PdfDocument(tmp_path / "missing.pdf")


def test_damaged_page_is_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    good = make_pdf(tmp_path / "good.pdf", ["page one text", "page two text", "page three text"])
    bad = damage_page_content(good, tmp_path / "bad.pdf", page=1)
    with PdfDocument(bad) as doc:
        pages = list(doc.pages())
    assert [p.text for p in pages] == ["page one text", "", "page three text"]
    assert any("damaged page content" in n for n in pages[1].notes)
    assert pages[0].notes == () and pages[2].notes == ()


def test_truncated_pdf_is_repaired_or_refused(tmp_path: Path) -> None:
    good = make_pdf(tmp_path / "deck.pdf", [f"slide {i} text" for i in range(4)])
    data = good.read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(data[: len(data) // 2])
    try:
        doc = PdfDocument(cut)
    except PDFReadError:
        return  # refused with a clear error is documented behaviour too
    with doc:
        assert any("repaired" in n for n in doc.notes)
        pages = list(doc.pages())
    assert pages and pages[0].text == "slide 0 text"


def test_render_px_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        PdfDocument(tmp_path / "x.pdf", render_px=8)


# ----------------------------------------------------------------------------- subtitles


def test_srt_cues_markup_and_entities() -> None:
    t = parse_subtitles(SRT, name="l1.srt")
    assert t.format == "srt" and t.problems == () and t.overlaps == 0
    assert [(c.start, c.end) for c in t.cues] == [(1.0, 5.0), (5.5, 9.0), (40.0, 44.0)]
    assert t.cues[0].text == "Today: the golgi apparatus packages proteins."
    assert t.cues[1].text == "Vesicles bud from the trans face & travel to the membrane."
    assert t.cues[0].line == 2


def test_webvtt_header_notes_identifiers_settings_and_voices() -> None:
    t = parse_subtitles(VTT, name="l2.vtt")
    assert t.format == "vtt" and t.problems == ()
    assert [(c.start, c.end, c.text) for c in t.cues] == [
        (0.0, 4.0, "Neural networks learn weights by gradient descent"),
        (35.0, 39.5, "backpropagation computes the gradient layer by layer"),
    ]
    with pytest.raises(SubtitleError, match="must start with 'WEBVTT'"):
        parse_subtitles(SRT, name="x.vtt", format="vtt")


BROKEN = """1
00:00:01,000 --> 00:00:04,000
a good cue

2
00:00:05,000 -> 00:00:08,000
an arrow that is not one

3
00:01:75,000 --> 00:01:80,000
seconds out of range

4
00:00:20,000 --> 00:00:10,000
ends before it starts

5
no timing line at all

6
00:00:30,000 --> 00:00:33,000
another good cue
"""


def test_broken_timestamps_are_skipped_and_listed_or_strict_raises() -> None:
    t = parse_subtitles(BROKEN, name="b.srt")
    assert [c.text for c in t.cues] == ["a good cue", "another good cue"]
    assert [p.line for p in t.problems] == [5, 10, 14, 17]
    assert "ends (10.000 s) before it starts (20.000 s)" in t.problems[2].message
    assert "below 60" in t.problems[1].message
    with pytest.raises(SubtitleError, match=r"b\.srt, line 5") as info:  # the "->" cue
        parse_subtitles(BROKEN, name="b.srt", strict=True)
    assert info.value.line == 5


def test_a_file_without_any_valid_cue_raises() -> None:
    with pytest.raises(SubtitleError, match="no cue with valid timestamps"):
        parse_subtitles("1\n00:00:05,000 --> 00:00:01,000\nbackwards\n", name="x.srt")
    with pytest.raises(SubtitleError, match="no cue"):
        parse_subtitles("just some text\nwithout cues\n", name="x.srt")


def test_overlapping_and_unordered_cues_are_kept_sorted_and_counted() -> None:
    text = (
        "1\n00:00:10,000 --> 00:00:20,000\nsecond speaker\n\n"
        "2\n00:00:00,000 --> 00:00:12,000\nfirst speaker\n\n"
        "3\n00:00:11,000 --> 00:00:13,000\nthird overlaps both\n"
    )
    t = parse_subtitles(text, name="o.srt")
    assert [c.text for c in t.cues] == ["first speaker", "second speaker", "third overlaps both"]
    assert t.overlaps == 2
    # a cue spanning a boundary belongs to both windows
    assert align_cues(t.cues, [(0.0, 10.0), (10.0, 20.0)]) == [
        "first speaker",
        "first speaker second speaker third overlaps both",
    ]


def test_read_subtitles_files_and_encodings(tmp_path: Path) -> None:
    (tmp_path / "a.vtt").write_text(VTT, encoding="utf-8")
    assert len(read_subtitles(tmp_path / "a.vtt").cues) == 2
    (tmp_path / "b.srt").write_bytes(
        ("\ufeff" + SRT.replace("Today", "Caf\u00e9")).encode("cp1252", "replace")
    )
    t = read_subtitles(tmp_path / "b.srt")
    assert t.cues[0].text.startswith("Caf\u00e9") and "Latin-1" in t.problems[0].message
    with pytest.raises(SubtitleError, match="cannot read"):
        read_subtitles(tmp_path / "missing.srt")


def test_transcript_windows_skip_silence() -> None:
    cues = parse_subtitles(SRT).cues
    assert transcript_windows(cues, 30.0) == [(0.0, 30.0), (30.0, 44.0)]
    assert transcript_windows(cues, 10.0) == [(0.0, 10.0), (40.0, 44.0)]
    assert transcript_windows([Cue(3.0, 3.0, "instant", 1)], 5.0) == [(0.0, 3.001)]
    with pytest.raises(ConfigurationError):
        transcript_windows(cues, 0)


# ----------------------------------------------------------------------------- Rocchio


def test_rocchio_moves_towards_relevant_and_away_from_nonrelevant() -> None:
    rng = np.random.default_rng(0)
    q, r, n = (v / np.linalg.norm(v) for v in rng.standard_normal((3, 16)))
    out = Rocchio().refine(q, [r], [n])
    assert out.dtype == np.float32 and np.isclose(np.linalg.norm(out), 1.0, atol=1e-6)
    assert out @ r > q @ r and out @ n < q @ n
    expected = q + 0.75 * r - 0.15 * n
    assert np.allclose(out, expected / np.linalg.norm(expected), atol=1e-6)
    assert np.allclose(Rocchio().refine(q), q, atol=1e-6)  # no feedback: the query itself
    many = Rocchio().refine_many(
        np.stack([q, r]), [np.stack([r]), np.zeros((0, 16))], [np.zeros((0, 16))] * 2
    )
    assert np.allclose(many[0], Rocchio().refine(q, [r]), atol=1e-6) and np.allclose(many[1], r, atol=1e-6)


def test_rocchio_validation() -> None:
    q = np.ones(4)
    with pytest.raises(ConfigurationError):
        Rocchio(beta=-1).refine(q)
    with pytest.raises(ConfigurationError):
        Rocchio(alpha=0, beta=0).refine(q)
    with pytest.raises(ShapeError):
        Rocchio().refine(q, [np.ones(5)])
    with pytest.raises(ShapeError):
        Rocchio().refine(q, [np.zeros(4)])
    with pytest.raises(EmptyInputError):
        Rocchio(alpha=0.15, gamma=0.15).refine(q, [], [q])


# ----------------------------------------------------------------------------- LPM


def test_load_lpm(tmp_path: Path) -> None:
    csv = tmp_path / "figure_annotations.csv"
    csv.write_text(
        ",Input.save_dir,ocr,boundingBoxes\n"
        "0,data/bio-4/unordered/MoQW/slide_025.jpg,golgi apparatus sorts products,[]\n"
        "1,data/bio-4/unordered/MoQW/slide_003.jpg,,[]\n"
        '2,data/ml-1/MultimodalMachineLearning/09/slide_044.jpg,"attention  is all",'
        '"[{""height"":1,""label"":""Diagram"",""left"":1,""top"":1,""width"":1}]"\n',
        encoding="utf-8",
    )
    slides = load_lpm(tmp_path)
    assert [(s.course, s.lecture, s.slide, s.text, s.figures) for s in slides] == [
        ("bio-4", "bio-4/unordered/MoQW", 25, "golgi apparatus sorts products", 0),
        ("ml-1", "ml-1/MultimodalMachineLearning/09", 44, "attention is all", 1),
    ]
    assert slides[0].id == "bio-4/unordered/MoQW#slide=25"
    assert len(load_lpm(csv, min_words=4)) == 1
    with pytest.raises(EmptyInputError):
        load_lpm(csv, min_words=50)
    (tmp_path / "bad.csv").write_text("Input.save_dir,ocr\nslide_1.jpg,text\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="line 2"):
        load_lpm(tmp_path / "bad.csv")
