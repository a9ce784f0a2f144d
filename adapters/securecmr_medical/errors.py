"""Errors raised by the medical adapter; all derive from :mod:`securecmr.errors` classes.

::

    securecmr.errors.InputError
    ├── EmptyInputError
    │   └── EmptyReportError            a report with no text
    └── DocumentError
        ├── DicomReadError              not a DICOM file, or unreadable
        ├── MissingPixelDataError       a DICOM instance without Pixel Data
        ├── UnsupportedTransferSyntaxError   compressed pixel data and no decoder installed
        ├── NotDeidentifiedError        an instance that is not de-identified (refused)
        └── MissingImageError (FileNotFoundError)  a case whose image file is missing

Messages name the item (file name or record id) and say what to do; they never contain
patient data.
"""

from __future__ import annotations

from securecmr.errors import DocumentError, EmptyInputError

__all__ = [
    "DicomReadError",
    "EmptyReportError",
    "MissingImageError",
    "MissingPixelDataError",
    "NotDeidentifiedError",
    "UnsupportedTransferSyntaxError",
]


class EmptyReportError(EmptyInputError):
    """A report (or caption) with no text."""


class DicomReadError(DocumentError):
    """The file is not DICOM or cannot be parsed."""


class MissingPixelDataError(DocumentError):
    """The DICOM instance has no Pixel Data (7FE0,0010) (e.g. an RT plan or a structured report)."""


class UnsupportedTransferSyntaxError(DocumentError):
    """The pixel data is compressed with a transfer syntax no installed decoder handles."""


class NotDeidentifiedError(DocumentError):
    """The instance is not marked de-identified (PatientIdentityRemoved != YES) or has burned-in
    annotation; de-identify it first or pass ``allow_identified=True`` explicitly."""


class MissingImageError(DocumentError, FileNotFoundError):
    """A case refers to an image file that does not exist."""
