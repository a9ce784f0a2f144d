"""Errors raised by the education adapter; all derive from :mod:`securecmr.errors` classes.

::

    securecmr.errors.InputError
    └── DocumentError
        ├── PDFReadError                    not a PDF, empty, or damaged beyond repair
        ├── EncryptedPDFError (PermissionError)   password-protected and no (or a wrong) password
        ├── PageError                       one page could not be read or rendered
        └── SubtitleError                   an SRT / WebVTT file or cue that does not parse

Messages name the file (its name only, never its directory), the page or the line, and say what to
do; they never quote slide or transcript text.
"""

from __future__ import annotations

from securecmr.errors import DocumentError

__all__ = ["EncryptedPDFError", "PDFReadError", "PageError", "SubtitleError"]


class PDFReadError(DocumentError):
    """The file is not a PDF, is empty, or is damaged beyond what the renderer can repair."""


class EncryptedPDFError(DocumentError, PermissionError):
    """The PDF is encrypted and no password (or a wrong one) was given; pass ``password=``."""


class PageError(DocumentError):
    """One page could not be read or rendered (the rest of the deck is still indexed)."""

    def __init__(self, message: str, *, page: int | None = None) -> None:
        super().__init__(message)
        self.page = page


class SubtitleError(DocumentError):
    """A subtitle file (SRT or WebVTT) or one of its cues does not parse; ``line`` is 1-based."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line
