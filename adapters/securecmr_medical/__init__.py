"""securecmr_medical: on-premises medical image / report retrieval without PHI in the index.

Install with ``pip install 'securecmr[medical]'`` (pydicom). Pieces:

* free-text PHI de-identification: :class:`TextDeidentifier` (HIPAA Safe Harbor identifiers found
  in reports), its :class:`DeidReport` (categories and offsets, never the removed text), and
  :func:`evaluate_deidentifier` (synthetic PHI injected into real text);
* DICOM: :func:`read_dicom` (rescale + window to uint8; refuses instances that are not
  de-identified), :class:`DicomDeidentifier` (PS3.15 Annex E Basic Profile);
* loaders returning de-identified :class:`MedicalRecord` lists plus an :class:`IngestReport`:
  :func:`load_medpix`, :func:`load_iu_xray`, :func:`load_dicom_cases`, :func:`load_dicom_directory`;
* retrieval on a protected securecmr collection: :class:`MedicalRetriever`.
"""

from __future__ import annotations

from . import errors
from ._dicom import DicomDeidentifier, DicomImage, dataset_to_image, is_deidentified, read_dicom, to_display
from ._loaders import DicomCase, load_dicom_cases, load_dicom_directory, load_iu_xray, load_medpix
from ._records import IngestReport, MedicalRecord, SkippedItem
from ._retrieval import MedicalFeatures, MedicalRetriever, class_labels
from ._synthetic import DeidEvaluation, InjectedText, evaluate_deidentifier, inject_phi
from ._text import DeidReport, DeidResult, Redaction, TextDeidentifier, deidentify_text

__all__ = [
    "DeidEvaluation",
    "DeidReport",
    "DeidResult",
    "DicomCase",
    "DicomDeidentifier",
    "DicomImage",
    "IngestReport",
    "InjectedText",
    "MedicalFeatures",
    "MedicalRecord",
    "MedicalRetriever",
    "Redaction",
    "SkippedItem",
    "TextDeidentifier",
    "class_labels",
    "dataset_to_image",
    "deidentify_text",
    "errors",
    "evaluate_deidentifier",
    "inject_phi",
    "is_deidentified",
    "load_dicom_cases",
    "load_dicom_directory",
    "load_iu_xray",
    "load_medpix",
    "read_dicom",
    "to_display",
]
