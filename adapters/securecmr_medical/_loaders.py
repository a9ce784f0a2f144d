"""Loaders: MedPix 2.0, IU X-Ray report JSON, and hospital cases (DICOM files plus report text).

Every loader de-identifies text before it leaves the loader and returns ``(records, report)``:
items that cannot be ingested (missing image, empty report, DICOM without pixel data or with an
undecodable transfer syntax, not de-identified DICOM) are skipped and listed in the
:class:`IngestReport`; ``strict=True`` raises the first such error instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from securecmr.errors import ConfigurationError, DocumentError, InputError

from ._dicom import DicomDeidentifier, _pydicom, dataset_to_image
from ._records import IngestReport, MedicalRecord
from ._text import TextDeidentifier
from .errors import DicomReadError, MissingImageError

__all__ = ["DicomCase", "load_dicom_cases", "load_dicom_directory", "load_iu_xray", "load_medpix"]

MEDPIX_SPLITS = ("train", "dev", "test")
_CASE_FIELDS = ("Title", "History", "Exam", "Findings", "Discussion")


def _root(path: str | os.PathLike[str], must: str) -> Path:
    root = Path(path)
    if not (root / must).is_file():
        raise ConfigurationError(f"{root} does not look like the dataset folder: {must} is missing")
    return root


def _clean(value: Any) -> str:
    if value is None:
        return ""
    s = str(value).strip()
    return "" if s in ("N/A", "null", "None") else s


def load_medpix(
    root: str | os.PathLike[str],
    *,
    split: str | None = None,
    text: str = "caption",
    deidentifier: TextDeidentifier | None = None,
    strict: bool = False,
) -> tuple[list[MedicalRecord], IngestReport]:
    """Load MedPix 2.0 (``Descriptions.json``, ``Case_topic.json``, ``images/``, ``splits/``).

    One record per image: ``text`` is the image caption (``text="caption"``) or the caption plus
    the case title, history, exam and findings (``text="case"``), de-identified with the case id
    as patient key; ``image`` is the JPEG path; labels are ``region:<Location Category>`` and
    ``modality:<CT|MR>``; ``attrs`` has ``case``, ``split``, ``modality``, ``region``, ``plane``.
    """
    if split is not None and split not in MEDPIX_SPLITS:
        raise ConfigurationError(f"split must be one of {MEDPIX_SPLITS} or None, not {split!r}")
    if text not in ("caption", "case"):
        raise ConfigurationError(f"text must be 'caption' or 'case', not {text!r}")
    base = _root(root, "Descriptions.json")
    deid = deidentifier or TextDeidentifier()
    descriptions = json.loads((base / "Descriptions.json").read_text(encoding="utf-8"))
    cases: dict[str, Mapping[str, Any]] = {}
    if (base / "Case_topic.json").is_file():
        cases = {
            c["U_id"]: c.get("Case") or {} for c in json.loads((base / "Case_topic.json").read_text("utf-8"))
        }
    split_of: dict[str, str] = {}
    uid_file = base / "splits" / "uid_list.json"
    if uid_file.is_file():
        for name, uids in json.loads(uid_file.read_text("utf-8")).items():
            for u in uids:
                split_of.setdefault(u, name)
    elif split is not None:
        raise ConfigurationError(f"{uid_file} is missing; load without split=")
    report = IngestReport()
    records: list[MedicalRecord] = []
    for d in descriptions:
        image_id = str(d.get("image", ""))
        case = str(d.get("U_id", ""))
        if split is not None and split_of.get(case) != split:
            continue
        try:
            desc = d.get("Description") or {}
            parts = [_clean(desc.get("Caption"))]
            if text == "case":
                c = cases.get(case, {})
                parts += [_clean(c.get(k)) for k in _CASE_FIELDS]
            body = "\n".join(p for p in parts if p)
            result = deid.deidentify(body, patient_key=case, item=image_id)
            path = base / "images" / f"{image_id}.jpg"
            if not path.is_file():
                raise MissingImageError(f"MedPix image {image_id!r}: file images/{path.name} is missing")
            modality = str(d.get("Type", "")).upper()
            region = str(d.get("Location Category", ""))
            records.append(
                MedicalRecord(
                    id=image_id,
                    text=result.text,
                    image=str(path),
                    labels=(f"region:{region}", f"modality:{modality}"),
                    attrs={
                        "case": case,
                        "split": split_of.get(case, ""),
                        "modality": modality,
                        "region": region,
                        "plane": str(desc.get("Plane", "") or ""),
                    },
                    deid=result.report,
                )
            )
            report.loaded += 1
            report.add_deid(result.report)
        except InputError as exc:
            if strict:
                raise
            report.skip(image_id, exc)
    return records, report


def load_iu_xray(
    annotation: str | os.PathLike[str],
    *,
    split: str | None = None,
    images_root: str | os.PathLike[str] | None = None,
    deidentifier: TextDeidentifier | None = None,
    strict: bool = False,
) -> tuple[list[MedicalRecord], IngestReport]:
    """Load IU X-Ray style report JSON (``{split: [{id, report, image_path: [...]}, ...]}``).

    ``annotation`` is the JSON file or its folder. Images are attached (first path) only when
    ``images_root`` is given; a listed image missing there skips the study.
    """
    path = Path(annotation)
    if path.is_dir():
        path = path / "annotation.json"
    if not path.is_file():
        raise ConfigurationError(f"{path} is missing (IU X-Ray annotation.json)")
    data = json.loads(path.read_text("utf-8"))
    splits = [split] if split is not None else list(data)
    if split is not None and split not in data:
        raise ConfigurationError(f"split {split!r} is not in {path.name}; it has {sorted(data)}")
    deid = deidentifier or TextDeidentifier()
    report = IngestReport()
    records: list[MedicalRecord] = []
    for name in splits:
        for study in data[name]:
            sid = str(study.get("id", ""))
            try:
                result = deid.deidentify(str(study.get("report") or ""), patient_key=sid, item=sid)
                image: str | None = None
                if images_root is not None:
                    rels = study.get("image_path") or []
                    if not rels:
                        raise MissingImageError(f"IU X-Ray study {sid!r} lists no image")
                    img = Path(images_root) / rels[0]
                    if not img.is_file():
                        raise MissingImageError(f"IU X-Ray study {sid!r}: image {rels[0]!r} is missing")
                    image = str(img)
                records.append(
                    MedicalRecord(
                        sid, result.text, image, (), {"split": name, "modality": "XR"}, result.report
                    )
                )
                report.loaded += 1
                report.add_deid(result.report)
            except InputError as exc:
                if strict:
                    raise
                report.skip(sid, exc)
    return records, report


class DicomCase:
    """A hospital case: DICOM file paths, the report (a ``str`` of text, or a ``Path`` to a text
    file) and labels."""

    def __init__(
        self,
        case_id: str,
        dicom: Sequence[str | os.PathLike[str]],
        report: str | os.PathLike[str] | None,
        labels: Sequence[str] = (),
    ) -> None:
        self.case_id = case_id
        self.dicom = [Path(p) for p in dicom]
        self.report = report
        self.labels = tuple(labels)

    def __repr__(self) -> str:
        return f"DicomCase(files={len(self.dicom)}, labels={self.labels!r})"

    def report_text(self) -> str:
        if isinstance(self.report, os.PathLike):
            p = Path(self.report)
            if not p.is_file():
                raise DocumentError(
                    f"case report file {p.name!r} is missing; add the report or drop the case"
                )
            return p.read_text("utf-8", errors="replace")
        return "" if self.report is None else str(self.report)


def _pseudonym(key: bytes | None, value: str) -> str:
    if key is None:
        return value
    return "case-" + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def load_dicom_cases(
    cases: Iterable[DicomCase],
    *,
    dicom_deidentifier: DicomDeidentifier | None = None,
    text_deidentifier: TextDeidentifier | None = None,
    allow_identified: bool = False,
    window: tuple[float, float] | None = None,
    strict: bool = False,
) -> tuple[list[MedicalRecord], IngestReport]:
    """One record per DICOM instance with the case's de-identified report and labels.

    With ``dicom_deidentifier`` each header is de-identified in memory first (the Annex E basic
    profile); without it, instances must already be de-identified (Patient Identity Removed =
    YES) unless ``allow_identified=True``. Record ids are the (de-identified) SOP Instance UIDs;
    the case id becomes a keyed pseudonym when a de-identifier (and so a key) is given.
    """
    pydicom = _pydicom()
    tdeid = text_deidentifier or TextDeidentifier()
    key = None
    if dicom_deidentifier is not None:
        key = dicom_deidentifier._check()
    report = IngestReport()
    records: list[MedicalRecord] = []
    for case in cases:
        case_name = _pseudonym(key, case.case_id)
        try:
            result = tdeid.deidentify(case.report_text(), patient_key=case.case_id, item=case_name)
        except InputError as exc:
            if strict:
                raise
            report.skip(case_name, exc)
            continue
        report.add_deid(result.report)
        for n, path in enumerate(case.dicom):
            item = f"{case_name}/{n}"
            try:
                if not path.is_file():
                    raise MissingImageError(f"case {case_name}: DICOM file #{n} ({path.name!r}) is missing")
                try:
                    ds = pydicom.dcmread(os.fspath(path))
                except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError) as exc:
                    raise DicomReadError(f"{item}: {path.name!r} is not a readable DICOM file") from exc
                if dicom_deidentifier is not None:
                    ds = dicom_deidentifier.deidentify(ds)
                img = dataset_to_image(ds, item=item, allow_identified=allow_identified, window=window)
                uid = str(ds.get("SOPInstanceUID", "")) or f"{case_name}-{n}"
                labels = case.labels + ((f"modality:{img.modality}",) if img.modality else ())
                records.append(
                    MedicalRecord(
                        uid,
                        result.text,
                        img.pixels,
                        labels,
                        {"case": case_name, "modality": img.modality, "body_part": img.body_part},
                        result.report,
                    )
                )
                report.loaded += 1
            except (DocumentError, InputError) as exc:
                if strict:
                    raise
                report.skip(item, exc)
    return records, report


def load_dicom_directory(
    root: str | os.PathLike[str], **kwargs: Any
) -> tuple[list[MedicalRecord], IngestReport]:
    """Cases laid out as ``root/<case>/*.dcm`` + ``root/<case>/report.txt`` (+ optional
    ``labels.txt``, one label a line); see :func:`load_dicom_cases` for the options."""
    base = Path(root)
    if not base.is_dir():
        raise ConfigurationError(f"{base} is not a directory of case folders")
    cases = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        labels_file = folder / "labels.txt"
        labels = labels_file.read_text("utf-8").split() if labels_file.is_file() else []
        cases.append(DicomCase(folder.name, sorted(folder.glob("*.dcm")), folder / "report.txt", labels))
    return load_dicom_cases(cases, **kwargs)
