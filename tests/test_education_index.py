"""Education adapter on the real ``securecmr.Store``: decks, pictures, lectures, batches with bad files,
course policies per school, relevance feedback. Deterministic stand-in encoders (see the helpers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _education_helpers import SRT, VTT, BagOfWords, MeanColour, damage_page_content, make_pdf
from securecmr_education import (
    DEFAULT_POLICY,
    EducationIndex,
    EduResult,
    create_course_collection,
    enroll,
)
from securecmr_education.errors import EncryptedPDFError, PDFReadError, SubtitleError
from test_surveillance import BLUE, GREEN, RED, make_video

import securecmr
from securecmr.encoders import VideoEncoder
from securecmr.errors import ConfigurationError

PASS = "correct horse battery staple 42"


@pytest.fixture()
def store(tmp_path: Path) -> Any:
    s = securecmr.Store.create(tmp_path / "store", passphrase=PASS)
    yield s
    s.close()


def make_index(collection: Any, **kwargs: Any) -> EducationIndex:
    video = VideoEncoder(MeanColour(), window_s=30.0, scene_threshold=0.05)
    kwargs.setdefault("render_px", 160)
    return EducationIndex(
        collection, text_encoder=BagOfWords(), image_encoder=MeanColour(), video_encoder=video, **kwargs
    )


BIO = [
    "The golgi apparatus packages proteins into vesicles",
    "Mitochondria produce ATP through cellular respiration",
    "Ribosomes translate messenger RNA into proteins",
]


def test_pdf_pages_are_items_with_text_and_image(store: Any, tmp_path: Path) -> None:
    coll = create_course_collection(store, "material", bits=256)
    assert coll.policy == DEFAULT_POLICY == "item.course in user.courses"
    index = make_index(coll)
    pdf = make_pdf(tmp_path / "cells.pdf", BIO, picture=2, caption="Figure 3: a ribosome")
    report = index.add_pdf(pdf, course="bio-101", ref_base="vault://bio/cells.pdf")
    assert report.items == 4 and report.problems == [] and not report.failed  # 3 pages + 1 figure
    hits = index.search(text="how does the golgi apparatus package proteins?", k=3)
    top = hits[0]
    assert (top.kind, top.course, top.source, top.page, top.modality) == (
        "page",
        "bio-101",
        "cells",
        1,
        "text",
    )
    assert top.ref == "vault://bio/cells.pdf#page=1" and top.where() == "bio-101 / cells p.1"
    # the rendered page is indexed too: searching by that page's picture finds it by its image code
    img_hits = index.search(image=np.full((40, 40, 3), 255, np.uint8), k=10, modality="image")
    assert {h.kind for h in img_hits} == {"page", "figure"} and all(h.modality == "image" for h in img_hits)
    fig = next(h for h in index.search(text="Figure 3: a ribosome", k=5) if h.kind == "figure")
    assert (fig.page, fig.where()) == (3, "bio-101 / cells p.3 (figure)")
    assert fig.text is None  # text is kept only with store_text=True


def test_sealed_at_rest_and_store_text(store: Any, tmp_path: Path) -> None:
    coll = create_course_collection(store, "material", bits=256)
    index = make_index(coll, store_text=True, max_text_chars=30)
    pdf = make_pdf(tmp_path / "cells.pdf", BIO)
    index.add_pdf(pdf, course="bio-101", ref_base="vault://bio/cells.pdf")
    top = index.search(text="golgi apparatus packages proteins", k=1)[0]
    assert top.text == BIO[0][:30]
    store.close()
    for f in (tmp_path / "store").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"golgi" not in data and b"vault://bio" not in data and b"bio-101" not in data


def test_lecture_video_with_transcript_segments(store: Any, tmp_path: Path) -> None:
    index = make_index(create_course_collection(store, "material", bits=256))
    video = make_video(tmp_path / "lecture1.avi", [(RED, 3.0), (GREEN, 3.0)])
    srt = tmp_path / "lecture1.srt"
    srt.write_text(SRT, encoding="utf-8")
    report = index.add_lecture(course="bio-101", video=video, transcript=srt)
    # two scene segments [0, 3) and [3, 6), then the transcript after the video's end (cue at 40 s)
    assert report.items == 3 and not report.failed
    hits = index.search(text="vesicles travel to the membrane", k=3)
    assert (hits[0].kind, hits[0].source, hits[0].start, hits[0].end) == ("lecture", "lecture1", 3.0, 6.0)
    assert hits[0].ref == f"{video}#t=3.000,6.000" and hits[0].where() == "bio-101 / lecture1 0:03-0:06"
    late = index.search(text="mitochondria make ATP oxidative phosphorylation", k=1)[0]
    assert (late.start, late.end, late.modality) == (40.0, 44.0, "text")
    # video codes: a red picture finds the red segment
    red = index.search(image=np.full((8, 8, 3), RED, np.uint8), k=1, modality="video")[0]
    assert (red.start, red.end) == (0.0, 3.0)


def test_transcript_only_lecture_and_errors(store: Any, tmp_path: Path) -> None:
    index = make_index(create_course_collection(store, "material", bits=256))
    vtt = tmp_path / "ml-week2.vtt"
    vtt.write_text(VTT, encoding="utf-8")
    report = index.add_lecture(course="ml-1", transcript=vtt)
    assert report.items == 2 and report.file == "ml-week2.vtt"
    hit = index.search(text="backpropagation gradient", k=1)[0]
    assert (hit.source, hit.start, hit.end) == ("ml-week2", 30.0, 39.5)
    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:09,000 --> 00:00:02,000\nbackwards\n", encoding="utf-8")
    with pytest.raises(SubtitleError, match="no cue"):
        index.add_lecture(course="ml-1", transcript=bad)
    with pytest.raises(ConfigurationError):
        index.add_lecture(course="ml-1")
    with pytest.raises(ConfigurationError):
        index.add_lecture(course=" ", transcript=vtt)


def test_damaged_video_keeps_segments_and_indexes_the_rest_of_the_transcript(
    store: Any, tmp_path: Path
) -> None:
    index = make_index(create_course_collection(store, "material", bits=256))
    video = make_video(tmp_path / "full.avi", [(RED, 3.0), (GREEN, 3.0), (BLUE, 3.0)])
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 5 // 10])
    srt = tmp_path / "cut.srt"
    srt.write_text(SRT, encoding="utf-8")
    report = index.add_lecture(course="bio-101", video=cut, transcript=srt)
    damage = [p for p in report.problems if p.error == "VideoDecodeError"]
    assert len(damage) == 1 and "rest of the transcript is indexed as text only" in damage[0].message
    assert not report.failed and report.items >= 2
    late = index.search(text="mitochondria make ATP oxidative phosphorylation", k=1)[0]
    assert late.end == 44.0 and late.modality == "text"


def test_batch_reports_bad_files_and_indexes_the_rest(store: Any, tmp_path: Path) -> None:
    index = make_index(create_course_collection(store, "material", bits=256))
    course = tmp_path / "bio-101"
    course.mkdir()
    make_pdf(course / "01-cells.pdf", BIO)
    make_pdf(course / "02-locked.pdf", ["secret exam answers"], password="pw")
    make_pdf(course / "03-locked-ok.pdf", ["Photosynthesis happens in chloroplasts"], password="pw2")
    make_pdf(course / "04-scan.pdf", [None, "Enzymes lower activation energy"])
    damage_page_content(
        make_pdf(tmp_path / "src.pdf", ["cell membrane lipids", "x", "osmosis and diffusion"]),
        course / "05-damaged.pdf",
        page=1,
    )
    (course / "06-broken.pdf").write_bytes(b"%PDF-1.7\ngarbage")
    (course / "07-empty.pdf").write_bytes(b"")
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), BLUE, np.uint8)).save(course / "08-diagram.png")
    (course / "08-diagram.txt").write_text("A diagram of the nuclear envelope", encoding="utf-8")
    (course / "09-corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (course / "10-talk.srt").write_text(SRT.replace("00:00:05,500 -->", "00:00:05,500 ->"), encoding="utf-8")
    (course / "11-notes.docx").write_bytes(b"PK\x03\x04")
    report = index.ingest(course, course="bio-101", passwords={"03-locked-ok.pdf": "pw2"})
    by_file = {f.file: f for f in report.files}
    assert list(by_file) == [
        "01-cells.pdf",
        "02-locked.pdf",
        "03-locked-ok.pdf",
        "04-scan.pdf",
        "05-damaged.pdf",
        "06-broken.pdf",
        "07-empty.pdf",
        "08-diagram.png",
        "09-corrupt.png",
        "10-talk.srt",
        "11-notes.docx",
    ]
    assert by_file["01-cells.pdf"].items == 3 and by_file["03-locked-ok.pdf"].items == 1
    assert {f.file for f in report.failed} == {
        "02-locked.pdf",
        "06-broken.pdf",
        "07-empty.pdf",
        "09-corrupt.png",
        "11-notes.docx",
    }
    assert by_file["02-locked.pdf"].problems[0].error == "EncryptedPDFError"
    assert by_file["06-broken.pdf"].problems[0].error == "PDFReadError"
    assert by_file["09-corrupt.png"].problems[0].error == "ImageDecodeError"
    scan = by_file["04-scan.pdf"]
    assert scan.items == 2 and [(p.where, p.error) for p in scan.problems] == [("page 1", "PageNote")]
    damaged = by_file["05-damaged.pdf"]
    assert damaged.items == 3 and any(
        p.where == "page 2" and "damaged" in p.message for p in damaged.problems
    )
    talk = by_file["10-talk.srt"]
    assert talk.items == 2 and [p.where for p in talk.problems] == ["10-talk.srt line 5"]
    assert report.items == 3 + 1 + 2 + 3 + 1 + 2
    # everything that was stored is searchable; results name deck and page
    assert index.search(text="photosynthesis chloroplasts", k=1)[0].where() == "bio-101 / 03-locked-ok p.1"
    assert index.search(text="osmosis and diffusion", k=1)[0].page == 3
    diagram = index.search(text="nuclear envelope diagram", k=1)[0]
    assert (diagram.kind, diagram.source) == ("image", "08-diagram.png")
    # a second run reports duplicates per file instead of aborting
    again = index.ingest(course / "01-cells.pdf", course="bio-101")
    assert again.files[0].failed and "already indexed" in again.files[0].problems[0].message
    assert report.to_dict()["failed"] == 5


def test_single_file_errors_raise(store: Any, tmp_path: Path) -> None:
    index = make_index(create_course_collection(store, "material", bits=256))
    with pytest.raises(EncryptedPDFError):
        index.add_pdf(make_pdf(tmp_path / "l.pdf", ["x y"], password="pw"), course="c")
    (tmp_path / "b.pdf").write_bytes(b"nope")
    with pytest.raises(PDFReadError):
        index.add_pdf(tmp_path / "b.pdf", course="c")
    assert len(index.collection) == 0  # type: ignore[arg-type]


def test_course_policy_per_school(store: Any, tmp_path: Path) -> None:
    # school "north": an admin creates the collection, a teacher uploads two courses
    admin = store.session(store.create_user("head", role="admin", tenant="north"))
    create_course_collection(admin, "material", bits=256)
    teacher = enroll(store, "t.lee", school="north", courses=["bio-101", "ml-1"], role="curator")
    uploads = make_index(store.session(teacher).collection("material"))
    uploads.add_pdf(make_pdf(tmp_path / "cells.pdf", BIO), course="bio-101")
    uploads.add_pdf(
        make_pdf(tmp_path / "nets.pdf", ["Neural networks learn proteins of weights"]), course="ml-1"
    )
    ana = make_index(
        store.session(enroll(store, "ana", school="north", courses=["bio-101"])).collection("material")
    )
    ben = make_index(
        store.session(enroll(store, "ben", school="north", courses=["ml-1"])).collection("material")
    )
    q = "how are proteins made"
    assert {h.course for h in ana.search(text=q, k=10)} == {"bio-101"}
    assert {h.course for h in ben.search(text=q, k=10)} == {"ml-1"}
    # another school's student sees no collection at all, and a student cannot upload
    other = store.session(enroll(store, "cy", school="south", courses=["bio-101"]))
    with pytest.raises(securecmr.errors.CollectionNotFoundError):
        other.collection("material")
    with pytest.raises(securecmr.errors.PermissionDeniedError):
        ana.add_pdf(make_pdf(tmp_path / "x.pdf", ["x"]), course="bio-101")
    with pytest.raises(ConfigurationError):
        enroll(store, "dee", school="north", courses=[])


def test_relevance_feedback_refines_the_query(store: Any, tmp_path: Path) -> None:
    coll = create_course_collection(store, "material", bits=256)
    index = make_index(coll, store_text=True, render_px=None)
    pages = [
        "cell membrane transport proteins channels",
        "cell membrane lipid bilayer",
        "cell division mitosis phases",
        "cell division meiosis gametes",
        "membrane channels move ions",
        "mitosis prophase metaphase anaphase",
    ]
    index.add_pdf(make_pdf(tmp_path / "cell.pdf", pages), course="bio-101")
    first = index.search(text="cell", k=6)
    mitosis = [h for h in first if h.text and "mitosis" in h.text]
    other = [h for h in first if h.text and "membrane" in h.text]
    assert [h.page for h in mitosis] == [3, 6] and first[-1].page == 6
    refined = index.search(text="cell", k=6, relevant=mitosis, nonrelevant=other)
    before = {h.page: h.score for h in first}
    after = {h.page: h.score for h in refined}
    assert after[3] > before[3] and after[6] > before[6]  # towards the pages marked relevant
    assert after[1] < before[1] and after[2] < before[2]  # away from those marked not relevant
    assert [h.page for h in refined].index(6) < 5
    # plain texts and vectors work as judgements too
    vec = index.query_vector(text="meiosis gametes")
    assert index.search(text="cell", k=1, relevant=[vec])[0].page == 4
    assert index.search(text="cell", k=1, relevant=["membrane ions channels"])[0].page in (1, 5)
    plain = make_index(coll)
    with pytest.raises(ConfigurationError, match="store_text=True"):
        plain.search(text="cell", relevant=[EduResult.from_hit(_FakeHit())])


class _FakeHit:
    id, score, modality, ref = "x", 1.0, "text", None
    attrs: dict[str, Any] = {"kind": "page", "course": "c", "deck": "d", "page": 1}  # noqa: RUF012


def test_video_with_an_unparsable_transcript_is_indexed_without_it(store: Any, tmp_path: Path) -> None:
    index = make_index(create_course_collection(store, "material", bits=256))
    video = make_video(tmp_path / "talk.avi", [(RED, 2.0), (BLUE, 2.0)])
    bad = tmp_path / "talk.vtt"
    bad.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:00.500\nbackwards\n", encoding="utf-8")
    report = index.add_lecture(course="bio-101", video=video, transcript=bad)
    assert report.items == 2 and not report.failed
    (problem,) = report.problems
    assert problem.error == "SubtitleError" and "indexed without its transcript" in problem.message
    with pytest.raises(SubtitleError):
        index.add_lecture(
            course="bio-101", video=video, transcript=bad, lecture="again", strict_subtitles=True
        )
