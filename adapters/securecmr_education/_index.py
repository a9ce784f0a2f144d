"""Index course material (PDF decks, captioned images, lecture videos with transcripts, slide text)
into a securecmr collection and search it by a student's question, with optional Rocchio feedback."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import securecmr
from securecmr._progress import progress
from securecmr.errors import (
    ConfigurationError,
    DuplicateItemError,
    EmptyInputError,
    InputError,
    VideoDecodeError,
)

from ._feedback import Rocchio
from ._pdf import PdfDocument
from ._report import FileReport, IngestReport
from ._subtitles import Transcript, align_cues, read_subtitles, transcript_windows
from .errors import SubtitleError

__all__ = [
    "DEFAULT_POLICY",
    "EduResult",
    "EducationIndex",
    "create_course_collection",
    "enroll",
]

DEFAULT_POLICY = "item.course in user.courses"

PDF_EXTS = (".pdf",)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")
SUBTITLE_EXTS = (".srt", ".vtt")


class CollectionLike(Protocol):
    """The part of securecmr collections (and session-guarded ones) the index uses."""

    def add(self, items: Sequence[Any], **kwargs: Any) -> Any: ...

    def search(self, **kwargs: Any) -> list[Any]: ...


def create_course_collection(
    store: Any,
    name: str,
    *,
    policy: str | None = DEFAULT_POLICY,
    bits: int = 64,
    protection: str = "salted+encrypted",
    hasher: Any = None,
    ttl_hours: float | None = None,
) -> Any:
    """Create a collection for course material with a record-level ``policy`` (default: students see
    items of the courses in their ``courses`` attribute). ``store`` is a :class:`securecmr.Store` or
    a school admin's session (``store.session(token)``), which puts it in the school's tenant."""
    return store.create_collection(
        name, bits=bits, protection=protection, hasher=hasher, ttl_hours=ttl_hours, policy=policy
    )


def enroll(
    store: Any, name: str, *, school: str, courses: Iterable[str], role: str = "reader", **kwargs: Any
) -> str:
    """Create a user of tenant ``school`` whose ``courses`` attribute feeds the course policy and
    return the token (shown once). Students are ``reader`` s; teachers who upload material
    ``curator`` s (both limited to their courses by the policy)."""
    listed = sorted({str(c) for c in courses})
    if not listed:
        raise ConfigurationError("give at least one course")
    return str(store.create_user(name, role=role, tenant=school, attrs={"courses": listed}, **kwargs))


@dataclass(frozen=True)
class EduResult:
    """A search result: where the answer is (``course``, ``source`` = deck / image / lecture name,
    ``page`` for slides and figures, ``start``/``end`` seconds for lectures), its score, the matching
    code's modality, the sealed ``ref`` and, when indexed with ``store_text=True``, its ``text``."""

    id: str | int
    score: float
    kind: str
    course: str | None
    source: str | None
    page: int | None
    start: float | None
    end: float | None
    modality: str
    ref: str | None
    text: str | None = None

    @classmethod
    def from_hit(cls, hit: Any) -> EduResult:
        a = dict(getattr(hit, "attrs", {}) or {})
        kind = str(a.get("kind", "item"))
        source = a.get("lecture") if kind == "lecture" else (a.get("deck") or a.get("source"))
        text = a.get("text") if a.get("text") is not None else a.get("caption")
        return cls(
            id=hit.id,
            score=float(hit.score),
            kind=kind,
            course=a.get("course"),
            source=None if source is None else str(source),
            page=None if a.get("page") is None else int(a["page"]),
            start=None if a.get("start") is None else float(a["start"]),
            end=None if a.get("end") is None else float(a["end"]),
            modality=str(getattr(hit, "modality", "")),
            ref=getattr(hit, "ref", None),
            text=None if text is None else str(text),
        )

    def where(self) -> str:
        """``course / deck p.12``, ``course / deck p.3 figure 2`` or ``course / lecture 12:00-12:30``."""
        source = self.source or ""
        if self.course and source.startswith(f"{self.course}/"):  # e.g. LPM lectures "bio-4/unordered/x"
            source = source[len(self.course) + 1 :]
        head = f"{self.course} / {source}"
        if self.start is not None and self.end is not None:
            return f"{head} {_clock(self.start)}-{_clock(self.end)}"
        if self.page is not None:
            return f"{head} p.{self.page}" + (" (figure)" if self.kind == "figure" else "")
        return head

    def __repr__(self) -> str:
        return f"EduResult({self.where()!r}, score={self.score:.3f}, kind={self.kind!r})"


def _clock(t: float) -> str:
    s = round(t)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class _Pending:
    id: str
    attrs: dict[str, Any]
    ref: str | None
    text: str | None = None
    image: Any = None
    video: np.ndarray | None = None


def _check_label(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string")
    return value.strip()


class EducationIndex:
    """Course material in a securecmr collection (or a session-guarded one).

    Parameters: ``text_encoder`` / ``image_encoder`` / ``video_encoder`` (built-in ones are loaded on
    first use from ``model_dir``, ``int8``, ``num_threads``); ``render_px`` (longer side of rendered
    PDF pages, ``None`` = text only); ``figures`` (index embedded PDF pictures with their captions);
    ``window_s`` (lecture segment length; video segments also cut at scene changes);
    ``store_text`` (keep page / transcript text, at most ``max_text_chars``, sealed in the item's
    attrs, for display and feedback); ``batch_items`` (items per ``collection.add``);
    ``feedback`` (the :class:`Rocchio` used when ``search`` gets judged results).
    """

    def __init__(
        self,
        collection: CollectionLike,
        *,
        text_encoder: Any = None,
        image_encoder: Any = None,
        video_encoder: Any = None,
        render_px: int | None = 512,
        figures: bool = True,
        window_s: float = 30.0,
        store_text: bool = False,
        max_text_chars: int = 1000,
        batch_items: int = 32,
        feedback: Rocchio | None = None,
        model_dir: str | Path | None = None,
        int8: bool = False,
        num_threads: int | None = 1,
    ) -> None:
        if batch_items < 1:
            raise ConfigurationError("batch_items must be >= 1")
        if window_s <= 0:
            raise ConfigurationError(f"window_s must be > 0, got {window_s}")
        if max_text_chars < 1:
            raise ConfigurationError("max_text_chars must be >= 1")
        self.collection = collection
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.video_encoder = video_encoder
        self.render_px = render_px
        self.figures = figures
        self.window_s = window_s
        self.store_text = store_text
        self.max_text_chars = max_text_chars
        self.batch_items = batch_items
        self.feedback = feedback if feedback is not None else Rocchio()
        self.model_dir = model_dir
        self.int8 = int8
        self.num_threads = num_threads

    def __repr__(self) -> str:
        return (
            f"EducationIndex(render_px={self.render_px}, window_s={self.window_s}, "
            f"store_text={self.store_text})"
        )

    # ------------------------------------------------------------------ encoders
    def _text_enc(self) -> Any:
        if self.text_encoder is None:
            self.text_encoder = securecmr.load_text_encoder(
                self.model_dir, int8=self.int8, num_threads=self.num_threads
            )
        return self.text_encoder

    def _image_enc(self) -> Any:
        if self.image_encoder is None:
            self.image_encoder = securecmr.load_image_encoder(
                self.model_dir, int8=self.int8, num_threads=self.num_threads
            )
        return self.image_encoder

    def _video_enc(self) -> Any:
        if self.video_encoder is None:
            self.video_encoder = securecmr.VideoEncoder(self._image_enc(), window_s=self.window_s)
        return self.video_encoder

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit text vectors; texts over the encoder's token limit are encoded from their start."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*exceed \d+ tokens", category=UserWarning)
            return np.asarray(self._text_enc().encode(list(texts)), dtype=np.float32)

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        """Image vectors in the shared (text) space."""
        return np.asarray(self._image_enc().encode(list(images), output="zeroshot"), dtype=np.float32)

    # ------------------------------------------------------------------ storing
    def _store(self, pending: list[_Pending], report: FileReport) -> None:
        if not pending:
            return
        texts = [p.text for p in pending if p.text]
        images = [p.image for p in pending if p.image is not None]
        tv = iter(self.encode_texts(texts)) if texts else iter(())
        iv = iter(self.encode_images(images)) if images else iter(())
        items = []
        for p in pending:
            vectors: dict[str, np.ndarray] = {}
            if p.text:
                vectors["text"] = next(tv)
            if p.image is not None:
                vectors["image"] = next(iv)
            if p.video is not None:
                vectors["video"] = p.video
            attrs = dict(p.attrs)
            if self.store_text and p.text:
                attrs["text"] = p.text[: self.max_text_chars]
            items.append(securecmr.Item(p.id, attrs=attrs, ref=p.ref, vectors=vectors))
        self.collection.add(items)
        report.ids.extend(p.id for p in pending)
        pending.clear()

    def _flush_if_full(self, pending: list[_Pending], report: FileReport) -> None:
        if len(pending) >= self.batch_items:
            self._store(pending, report)

    # ------------------------------------------------------------------ PDFs
    def add_pdf(
        self,
        path: str | os.PathLike[str],
        *,
        course: str,
        deck: str | None = None,
        password: str | None = None,
        ref_base: str | None = None,
    ) -> FileReport:
        """Index a PDF: one item per page (its text and its rendered image) and one per figure
        (picture and caption). ``deck`` defaults to the file name without extension.

        Raises :class:`PDFReadError` / :class:`EncryptedPDFError` when the file cannot be opened
        (nothing is stored). Page-level problems (no text layer, damaged content, a page that fails)
        are listed in the report and the other pages are stored.
        """
        course = _check_label("course", course)
        p = Path(path)
        deck = _check_label("deck", deck) if deck is not None else p.stem
        base = ref_base if ref_base is not None else os.fspath(p)
        report = FileReport(p.name, "pdf")
        with PdfDocument(p, password=password, render_px=self.render_px, figures=self.figures) as doc:
            for note in doc.notes:
                report.note(None, "PDFRepaired", note)
            title = doc.title
            pending: list[_Pending] = []
            for page in doc.pages():
                where = f"page {page.number}"
                if page.error is not None:
                    report.note(where, "PageError", page.error)
                    continue
                for note in page.notes:
                    report.note(where, "PageNote", note)
                if not page.text and page.image is None:
                    continue
                attrs: dict[str, Any] = {
                    "kind": "page",
                    "course": course,
                    "deck": deck,
                    "page": page.number,
                    "pages": doc.page_count,
                    "has_text": page.has_text,
                }
                if title:
                    attrs["title"] = title
                pending.append(
                    _Pending(
                        f"{course}/{deck}#page={page.number}",
                        attrs,
                        f"{base}#page={page.number}",
                        page.text or None,
                        page.image,
                    )
                )
                for fig in page.figures:
                    fa: dict[str, Any] = {
                        "kind": "figure",
                        "course": course,
                        "deck": deck,
                        "page": page.number,
                        "figure": fig.index,
                    }
                    if self.store_text and fig.caption:
                        fa["caption"] = fig.caption[: self.max_text_chars]
                    pending.append(
                        _Pending(
                            f"{course}/{deck}#page={page.number}&figure={fig.index}",
                            fa,
                            f"{base}#page={page.number}",
                            fig.caption or None,
                            fig.image,
                        )
                    )
                self._flush_if_full(pending, report)
            self._store(pending, report)
        if not report.ids:
            report.note(None, "EmptyInputError", "no page could be indexed", fatal=True)
        return report

    # ------------------------------------------------------------------ images
    def add_image(
        self,
        image: Any,
        *,
        course: str,
        caption: str | None = None,
        name: str | None = None,
        ref: str | None = None,
    ) -> FileReport:
        """Index one picture (a path, an RGB array or a PIL image) with an optional caption; both
        modalities go into one item. Raises ``ImageDecodeError`` for an unreadable picture."""
        course = _check_label("course", course)
        if name is None:
            if not isinstance(image, str | os.PathLike):
                raise ConfigurationError("name= is required for an in-memory image")
            name = Path(image).name
        name = _check_label("name", name)
        if ref is None and isinstance(image, str | os.PathLike):
            ref = os.fspath(image)
        text = " ".join(caption.split()) if caption else None
        attrs: dict[str, Any] = {"kind": "image", "course": course, "source": name}
        if self.store_text and text:
            attrs["caption"] = text[: self.max_text_chars]
        report = FileReport(name, "image")
        self._store([_Pending(f"{course}/{name}", attrs, ref, text, image)], report)
        return report

    # ------------------------------------------------------------------ lectures
    def add_lecture(
        self,
        *,
        course: str,
        video: str | os.PathLike[str] | None = None,
        transcript: str | os.PathLike[str] | Transcript | None = None,
        lecture: str | None = None,
        ref_base: str | None = None,
        strict_subtitles: bool = False,
    ) -> FileReport:
        """Index a lecture: time segments of the video (``window_s`` long, cut at scene changes such as
        slide changes; pooled keyframe vector) each with the transcript text of the cues that
        overlap it. With only a transcript, fixed ``window_s`` windows of text are indexed.

        Transcript problems (broken cues skipped, or a whole file that does not parse when a video is
        given) and video damage are listed in the report; after a damaged video the rest of the
        transcript is still indexed as text-only windows. Raises ``SubtitleError`` when only a
        transcript is given and it does not parse (or any cue is broken with ``strict_subtitles=True``),
        ``VideoDecodeError`` when only a video is given and
        no frame decodes.
        """
        course = _check_label("course", course)
        if video is None and transcript is None:
            raise ConfigurationError("give video=, transcript= or both")
        src = Path(video) if video is not None else None
        if isinstance(transcript, Transcript):
            sub_name = transcript.name
        else:
            sub_name = Path(os.fspath(transcript)).name if transcript is not None else ""
        lecture = _check_label(
            "lecture",
            lecture if lecture is not None else (src.stem if src is not None else Path(sub_name).stem),
        )
        report = FileReport(src.name if src is not None else sub_name, "lecture")
        cues: tuple[Any, ...] = ()
        if transcript is not None:
            try:
                t = (
                    transcript
                    if isinstance(transcript, Transcript)
                    else read_subtitles(transcript, strict=strict_subtitles)
                )
            except SubtitleError as exc:
                if src is None or strict_subtitles:
                    raise
                report.note(
                    f"line {exc.line}" if exc.line else None,
                    "SubtitleError",
                    f"{exc}; the video is indexed without its transcript",
                )
            else:
                cues = t.cues
                for prob in t.problems:
                    report.note(
                        f"{t.name} line {prob.line}" if prob.line else t.name, "SubtitleError", prob.message
                    )
                if t.overlaps:
                    report.note(
                        t.name,
                        "OverlappingCues",
                        f"{t.overlaps} cue(s) overlap the previous one; each is kept in every "
                        "segment it overlaps",
                    )
        base = ref_base if ref_base is not None else (os.fspath(src) if src is not None else lecture)
        pending: list[_Pending] = []

        def segment(start: float, end: float, vector: np.ndarray | None, keyframes: Sequence[float]) -> None:
            text = align_cues(cues, [(start, end)])[0] if cues else ""
            if not text and vector is None:
                return
            attrs: dict[str, Any] = {
                "kind": "lecture",
                "course": course,
                "lecture": lecture,
                "start": round(start, 3),
                "end": round(end, 3),
                "has_video": vector is not None,
                "has_transcript": bool(text),
            }
            if keyframes:
                attrs["keyframes"] = [round(k, 3) for k in keyframes]
            pending.append(
                _Pending(
                    f"{course}/{lecture}#t={round(start * 1000):010d}",
                    attrs,
                    f"{base}#t={start:.3f},{end:.3f}",
                    text or None,
                    None,
                    vector,
                )
            )
            self._flush_if_full(pending, report)

        video_end = 0.0
        if src is not None:
            try:
                for seg in self._video_enc().iter_segments(src, window_s=self.window_s):
                    segment(seg.start, seg.end, seg.vector, seg.keyframe_times)
                    video_end = seg.end
            except VideoDecodeError as exc:
                if not cues and not pending and not report.ids:
                    raise
                msg = (
                    f"the video is damaged after {video_end:.1f} s ({exc}); the rest of the transcript "
                    "is indexed as text only"
                    if cues
                    else f"the video is damaged after {video_end:.1f} s ({exc}); the rest is not indexed"
                )
                report.note(f"t={video_end:.1f}s", "VideoDecodeError", msg)
        if cues:  # transcript-only windows: no video, or the transcript after the (damaged) video's end
            rest = list(cues) if src is None else [c for c in cues if c.start >= video_end]
            if rest:
                first = 0.0 if src is None else max(video_end, rest[0].start)
                for ws, we in transcript_windows(rest, self.window_s, start=first):
                    segment(ws, we, None, ())
        self._store(pending, report)
        if not report.ids:
            report.note(None, "EmptyInputError", "nothing to index in this lecture", fatal=True)
        return report

    # ------------------------------------------------------------------ slide text
    def add_slide_texts(
        self, slides: Iterable[Any], *, ref_base: str = "", show_progress: bool | None = None
    ) -> FileReport:
        """Index slides known only by their text (e.g. :func:`load_lpm` rows): objects with
        ``course``, ``lecture`` (the deck), ``slide`` (page number) and ``text``; one item each."""
        rows = list(slides)
        if not rows:
            raise EmptyInputError("no slides to index")
        report = FileReport("<slides>", "slides")
        pending: list[_Pending] = []
        for s in progress(
            rows,
            total=len(rows),
            description="indexing slides",
            show=show_progress,
            min_total=self.batch_items * 4,
        ):
            text = " ".join(str(s.text).split())
            if not text:
                report.note(f"{s.lecture} slide {s.slide}", "EmptyInputError", "slide without text skipped")
                continue
            course = _check_label("course", s.course)
            attrs = {
                "kind": "page",
                "course": course,
                "deck": str(s.lecture),
                "page": int(s.slide),
                "has_text": True,
            }
            pending.append(
                _Pending(
                    f"{s.lecture}#page={int(s.slide)}",
                    attrs,
                    f"{ref_base}{s.lecture}#page={int(s.slide)}",
                    text,
                )
            )
            self._flush_if_full(pending, report)
        self._store(pending, report)
        return report

    # ------------------------------------------------------------------ batches
    def ingest(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        course: str,
        passwords: dict[str, str] | None = None,
        ref_base: Callable[[Path], str] | None = None,
        strict_subtitles: bool = False,
    ) -> IngestReport:
        """Index files and folders (walked recursively, sorted) for one course and report per file.

        ``.pdf`` -> :meth:`add_pdf` (``passwords`` by file name); pictures -> :meth:`add_image`, with the
        caption from a ``<stem>.txt`` beside them; videos -> :meth:`add_lecture` with a ``<stem>.srt`` or
        ``<stem>.vtt`` beside them; a subtitle file without a video is indexed on its own. A file that
        cannot be indexed is reported (``fatal``) and the batch goes on; other files are reported as
        unsupported.
        """
        _check_label("course", course)
        given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        files: list[Path] = []
        for g in given:
            p = Path(g)
            files.extend(sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p])
        stems = {(f.parent, f.stem.lower()): f for f in files if f.suffix.lower() in VIDEO_EXTS}
        used: set[Path] = set()
        out = IngestReport()
        for f in files:
            ext = f.suffix.lower()
            if f in used:
                continue
            base = ref_base(f) if ref_base is not None else None
            try:
                if ext in PDF_EXTS:
                    out.files.append(
                        self.add_pdf(f, course=course, password=(passwords or {}).get(f.name), ref_base=base)
                    )
                elif ext in IMAGE_EXTS:
                    cap = _sidecar(f, (".txt",))
                    if cap is not None:
                        used.add(cap)
                    caption = cap.read_text(encoding="utf-8", errors="replace") if cap is not None else None
                    out.files.append(self.add_image(f, course=course, caption=caption, ref=base))
                elif ext in VIDEO_EXTS:
                    sub = _sidecar(f, SUBTITLE_EXTS)
                    if sub is not None:
                        used.add(sub)
                    out.files.append(
                        self.add_lecture(
                            course=course,
                            video=f,
                            transcript=sub,
                            ref_base=base,
                            strict_subtitles=strict_subtitles,
                        )
                    )
                elif ext in SUBTITLE_EXTS:
                    if (f.parent, f.stem.lower()) in stems:
                        continue  # taken with its video
                    out.files.append(
                        self.add_lecture(
                            course=course, transcript=f, ref_base=base, strict_subtitles=strict_subtitles
                        )
                    )
                elif ext == ".txt" and _sidecar(f, IMAGE_EXTS) is not None:
                    continue  # a caption, taken with its picture
                else:
                    rep = FileReport(f.name, "unsupported")
                    rep.note(
                        None, "UnsupportedFile", f"{ext or 'no extension'} files are not indexed", fatal=True
                    )
                    out.files.append(rep)
            except (InputError, DuplicateItemError, OSError) as exc:
                rep = FileReport(f.name, _kind_of(ext))
                msg = str(exc) if not isinstance(exc, OSError) else f"cannot read the file ({exc.strerror})"
                if isinstance(exc, DuplicateItemError):
                    msg = "already indexed (delete its items first to re-index it)"
                rep.note(None, type(exc).__name__, msg, fatal=True)
                out.files.append(rep)
        return out

    # ------------------------------------------------------------------ search
    def query_vector(self, *, text: str | None = None, image: Any = None) -> np.ndarray:
        """The unit query vector of a question (text) or an example picture."""
        if (text is None) == (image is None):
            raise ConfigurationError("give exactly one of text= or image=")
        if text is not None:
            if not isinstance(text, str) or not text.strip():
                raise EmptyInputError("the question is empty")
            return self.encode_texts([text])[0]
        return self.encode_images([image])[0]

    def feedback_vectors(self, judged: Sequence[Any]) -> np.ndarray:
        """Vectors of judged results: :class:`EduResult` s carrying text (``store_text=True``), texts,
        1-D vectors, or pictures (paths, arrays, PIL images)."""
        texts: list[tuple[int, str]] = []
        images: list[tuple[int, Any]] = []
        out: list[np.ndarray | None] = [None] * len(judged)
        for i, j in enumerate(judged):
            if isinstance(j, EduResult):
                if not j.text:
                    raise ConfigurationError(
                        "this result carries no text to learn from; index with store_text=True, or pass "
                        "the text (or vector) of the result the student saw"
                    )
                texts.append((i, j.text))
            elif isinstance(j, str):
                texts.append((i, j))
            elif isinstance(j, np.ndarray) and j.ndim == 1:
                out[i] = j.astype(np.float32)
            else:
                images.append((i, j))
        if texts:
            for (i, _), v in zip(texts, self.encode_texts([t for _, t in texts]), strict=True):
                out[i] = v
        if images:
            for (i, _), v in zip(images, self.encode_images([x for _, x in images]), strict=True):
                out[i] = v
        return np.stack([v for v in out if v is not None]) if judged else np.zeros((0, 0), np.float32)

    def search(
        self,
        *,
        text: str | None = None,
        image: Any = None,
        k: int = 10,
        modality: str | None = None,
        relevant: Sequence[Any] = (),
        nonrelevant: Sequence[Any] = (),
    ) -> list[EduResult]:
        """The ``k`` best items for a question (``text``) or a picture (``image``), best first.

        ``relevant`` / ``nonrelevant``: results the student judged (see :meth:`feedback_vectors`); the
        query is refined with :attr:`feedback` (Rocchio) in the embedding space and then hashed.
        ``modality`` restricts matching to one code kind (``"text"``, ``"image"``, ``"video"``).
        """
        q = self.query_vector(text=text, image=image)
        if len(relevant) or len(nonrelevant):
            rel = self.feedback_vectors(list(relevant)) if len(relevant) else np.zeros((0, q.shape[0]))
            non = self.feedback_vectors(list(nonrelevant)) if len(nonrelevant) else np.zeros((0, q.shape[0]))
            q = self.feedback.refine(q, rel, non)
        kwargs: dict[str, Any] = {
            "vector": q,
            "k": k,
            "query_modality": "text" if text is not None else "image",
        }
        if modality is not None:
            kwargs["modality"] = modality
        return [EduResult.from_hit(h) for h in self.collection.search(**kwargs)]


def _sidecar(f: Path, exts: Sequence[str]) -> Path | None:
    for ext in exts:
        for cand in (f.with_suffix(ext), f.with_suffix(ext.upper())):
            if cand.is_file() and cand != f:
                return cand
    return None


def _kind_of(ext: str) -> str:
    if ext in PDF_EXTS:
        return "pdf"
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS or ext in SUBTITLE_EXTS:
        return "lecture"
    return "unsupported"
