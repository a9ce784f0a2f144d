"""securecmr_education: course material searchable by a student's question, on securecmr's public API.

- Ingest (:class:`EducationIndex`): PDF decks and documents (text per page *and* the rendered page
  image, plus embedded figures with their captions; PyMuPDF), captioned pictures, lecture videos
  with SRT / WebVTT transcripts aligned to time segments (pooled keyframe vectors), transcripts on
  their own, and slide text (:func:`load_lpm`). Batches (:meth:`EducationIndex.ingest`) report every
  per-file, per-page and per-cue problem (:class:`IngestReport`) and never stop at a bad file.
- Results (:class:`EduResult`) point to course, deck and page, or lecture and time range.
- Access: items carry ``course``; :func:`create_course_collection` sets the policy
  ``item.course in user.courses`` and :func:`enroll` creates students and teachers of a school
  (the tenant) with their ``courses``.
- Relevance feedback: :class:`Rocchio` refines the query vector from judged results before hashing.

Needs the ``education`` extra (PyMuPDF) for PDFs only.
"""

from __future__ import annotations

from . import errors
from ._feedback import Rocchio
from ._index import DEFAULT_POLICY, EducationIndex, EduResult, create_course_collection, enroll
from ._lpm import LpmSlide, load_lpm
from ._pdf import Figure, PageContent, PdfDocument
from ._report import FileReport, IngestReport, Problem
from ._subtitles import (
    Cue,
    SubtitleProblem,
    Transcript,
    align_cues,
    parse_subtitles,
    read_subtitles,
    transcript_windows,
)

__all__ = [
    "DEFAULT_POLICY",
    "Cue",
    "EduResult",
    "EducationIndex",
    "Figure",
    "FileReport",
    "IngestReport",
    "LpmSlide",
    "PageContent",
    "PdfDocument",
    "Problem",
    "Rocchio",
    "SubtitleProblem",
    "Transcript",
    "align_cues",
    "create_course_collection",
    "enroll",
    "errors",
    "load_lpm",
    "parse_subtitles",
    "read_subtitles",
    "transcript_windows",
]
