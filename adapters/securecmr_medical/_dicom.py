"""DICOM: read, rescale + window to a displayable 8-bit image, and de-identify headers.

pydicom is imported lazily (the ``medical`` extra). De-identification follows DICOM PS3.15
Annex E, Basic Application Level Confidentiality Profile (table in :mod:`._annex_e`), records the
profile in De-identification Method Code Sequence (0012,0064) and sets Patient Identity Removed
(0012,0062) = YES. UIDs are replaced consistently with keyed hashes (HMAC-SHA256) under the
``2.25`` root, so the same study keeps one UID across files de-identified with one key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from securecmr._lazy import require
from securecmr.errors import ConfigurationError

from ._annex_e import ACTIONS, PATIENT_CHARACTERISTICS, PROFILE_CODES
from .errors import (
    DicomReadError,
    MissingPixelDataError,
    NotDeidentifiedError,
    UnsupportedTransferSyntaxError,
)

__all__ = [
    "DicomDeidentifier",
    "DicomImage",
    "dataset_to_image",
    "is_deidentified",
    "read_dicom",
    "to_display",
]

_DUMMY = {
    "PN": "ANONYMOUS",
    "LO": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
}


def _pydicom() -> Any:
    return require("pydicom", extra="medical")


def _name(path: str | os.PathLike[str]) -> str:
    return Path(path).name


@dataclass(frozen=True)
class DicomImage:
    """One decoded instance: a displayable uint8 image and header facts that are not PHI."""

    pixels: np.ndarray  # (H, W) or (H, W, 3) uint8
    modality: str
    body_part: str
    deidentified: bool
    attrs: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"DicomImage(shape={self.pixels.shape}, modality={self.modality!r}, "
            f"body_part={self.body_part!r}, deidentified={self.deidentified})"
        )


def is_deidentified(ds: Any) -> bool:
    """True when Patient Identity Removed (0012,0062) is YES."""
    return str(ds.get("PatientIdentityRemoved", "")).upper() == "YES"


def _first(value: Any) -> float:
    """First value of a possibly multi-valued DS element."""
    if isinstance(value, str | bytes) or not hasattr(value, "__getitem__"):
        return float(value)
    return float(value[0])


def to_display(ds: Any, *, window: tuple[float, float] | None = None, item: str = "instance") -> np.ndarray:
    """Rescale (Modality LUT / slope-intercept) and window (VOI LUT / center-width) to uint8.

    ``window=(center, width)`` overrides the file's window. Without any window in the file the
    0.5-99.5 percentile range is used. MONOCHROME1 is inverted; multi-frame data uses the middle
    frame. Colour (RGB) data is returned as (H, W, 3) uint8.
    """
    _pydicom()
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise MissingPixelDataError(
            f"DICOM {item} has no Pixel Data (7FE0,0010); it is not an image (e.g. RT plan, SR): skip it"
        )
    try:
        arr = ds.pixel_array
    except (RuntimeError, NotImplementedError, ValueError) as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        ts_name = getattr(ts, "name", str(ts))
        raise UnsupportedTransferSyntaxError(
            f"DICOM {item}: cannot decode pixel data with transfer syntax {ts_name!r}; install a decoder "
            "(pylibjpeg + pylibjpeg-libjpeg / pylibjpeg-openjpeg, or python-gdcm) or transcode the file"
        ) from exc
    arr = np.asarray(arr)
    spp = int(ds.get("SamplesPerPixel", 1))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[arr.shape[0] // 2]
    if spp == 3:
        if arr.dtype != np.uint8:
            a = arr.astype(np.float64)
            lo, hi = float(a.min()), float(a.max())
            arr = ((a - lo) / (hi - lo or 1.0) * 255.0).round().astype(np.uint8)
        return np.ascontiguousarray(arr)
    if arr.ndim != 2:
        raise DicomReadError(f"DICOM {item}: unexpected pixel array shape {arr.shape}")
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    if window is None and "WindowCenter" in ds and "WindowWidth" in ds:
        window = (_first(ds.WindowCenter), _first(ds.WindowWidth))
    if window is not None:
        c, w = float(window[0]), max(float(window[1]), 1.0)
        # PS3.3 C.11.2.1.2.1 linear windowing
        out = np.clip((values - (c - 0.5)) / (w - 1.0 if w > 1 else 1.0) + 0.5, 0.0, 1.0)
    else:
        if "VOILUTSequence" in ds:
            values = np.asarray(apply_voi_lut(arr, ds), dtype=np.float64)
        lo, hi = np.percentile(values, [0.5, 99.5])
        out = np.clip((values - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 1.0 - out
    return (out * 255.0).round().astype(np.uint8)


def read_dicom(
    path: str | os.PathLike[str],
    *,
    allow_identified: bool = False,
    window: tuple[float, float] | None = None,
) -> DicomImage:
    """Read one DICOM file into a :class:`DicomImage`.

    Instances not marked de-identified (Patient Identity Removed != YES) or with burned-in
    annotation are refused with :class:`NotDeidentifiedError` unless ``allow_identified=True``.
    """
    pydicom = _pydicom()
    item = _name(path)
    try:
        ds = pydicom.dcmread(os.fspath(path))
    except FileNotFoundError as exc:
        raise DicomReadError(f"DICOM file {item!r} does not exist") from exc
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise DicomReadError(f"{item!r} is not a readable DICOM file ({type(exc).__name__})") from exc
    return dataset_to_image(ds, item=item, allow_identified=allow_identified, window=window)


def dataset_to_image(
    ds: Any,
    *,
    item: str = "instance",
    allow_identified: bool = False,
    window: tuple[float, float] | None = None,
) -> DicomImage:
    """Like :func:`read_dicom` for an already-loaded pydicom ``Dataset``."""
    deid = is_deidentified(ds)
    burned = str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
    if not allow_identified and (not deid or burned):
        why = "has burned-in annotation" if burned else "is not de-identified (PatientIdentityRemoved != YES)"
        raise NotDeidentifiedError(
            f"DICOM {item} {why}; de-identify it first (DicomDeidentifier) or pass allow_identified=True"
        )
    pixels = to_display(ds, window=window, item=item)
    attrs = {
        k: str(ds.get(k, ""))
        for k in ("Modality", "BodyPartExamined", "PhotometricInterpretation")
        if ds.get(k, None) is not None
    }
    return DicomImage(
        pixels=pixels,
        modality=str(ds.get("Modality", "")),
        body_part=str(ds.get("BodyPartExamined", "")),
        deidentified=deid,
        attrs=attrs,
    )


class DicomDeidentifier:
    """De-identify DICOM headers per PS3.15 Annex E Basic Profile.

    Parameters
    ----------
    uid_key:
        Secret bytes (>= 16) keying the UID replacement; one key gives consistent UIDs across
        files. Never shown in a repr.
    retain_patient_characteristics:
        Keep sex, age (capped at 090Y), size, weight, ethnic group, smoking and pregnancy status
        (Retain Patient Characteristics Option, code 113108).
    """

    def __init__(self, *, uid_key: bytes | None = None, retain_patient_characteristics: bool = False) -> None:
        self.uid_key = uid_key
        self.retain_patient_characteristics = retain_patient_characteristics

    def __repr__(self) -> str:
        return (
            f"DicomDeidentifier(uid_key=<{'set' if self.uid_key else 'none'}>, "
            f"retain_patient_characteristics={self.retain_patient_characteristics})"
        )

    def _check(self) -> bytes:
        if not isinstance(self.uid_key, bytes | bytearray) or len(self.uid_key) < 16:
            raise ConfigurationError("DicomDeidentifier needs uid_key: secret bytes, at least 16 long")
        return bytes(self.uid_key)

    def replace_uid(self, uid: str) -> str:
        """The keyed-hash replacement of ``uid`` (``2.25.<decimal of 128-bit HMAC prefix>``)."""
        key = self._check()
        digest = hmac.new(key, uid.strip().encode("ascii", "replace"), hashlib.sha256).digest()
        return "2.25." + str(int.from_bytes(digest[:16], "big"))

    @property
    def method_codes(self) -> list[tuple[str, str]]:
        codes = [PROFILE_CODES["basic"]]
        if self.retain_patient_characteristics:
            codes.append(PROFILE_CODES["retain_patient_characteristics"])
        return codes

    def deidentify(self, ds: Any) -> Any:
        """Return a de-identified deep copy of the pydicom ``Dataset`` ``ds``."""
        import copy

        pydicom = _pydicom()
        self._check()
        out = copy.deepcopy(ds)
        out.remove_private_tags()
        self._apply(out, pydicom)
        meta = getattr(out, "file_meta", None)
        if meta is not None and "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = self.replace_uid(str(meta.MediaStorageSOPInstanceUID))
        out.PatientIdentityRemoved = "YES"
        # LO (64 chars at most): the profile and option codes; the full meanings are in (0012,0064)
        out.DeidentificationMethod = "PS3.15 Annex E " + " ".join(c for c, _ in self.method_codes)
        seq = []
        for value, meaning in self.method_codes:
            item = pydicom.Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            seq.append(item)
        out.DeidentificationMethodCodeSequence = pydicom.Sequence(seq)
        return out

    def deidentify_file(self, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        """Read ``src``, de-identify, write ``dst`` (never overwrites ``src`` in place)."""
        pydicom = _pydicom()
        if Path(src).resolve() == Path(dst).resolve():
            raise ConfigurationError("deidentify_file: dst must differ from src (keep the original intact)")
        try:
            ds = pydicom.dcmread(os.fspath(src))
        except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError) as exc:
            raise DicomReadError(
                f"{_name(src)!r} is not a readable DICOM file ({type(exc).__name__})"
            ) from exc
        self.deidentify(ds).save_as(os.fspath(dst))

    def _apply(self, ds: Any, pydicom: Any) -> None:
        keep_uids = _well_known_uids(pydicom)
        for elem in list(ds):
            tag = (elem.tag.group, elem.tag.element)
            if elem.VR == "SQ" and tag not in ACTIONS:
                for sub in elem.value:
                    self._apply(sub, pydicom)
                continue
            action = ACTIONS.get(tag)
            if action is None and (elem.tag.group & 0xFF00) == 0x5000:
                action = "X"  # curve data
            if action is None and (elem.tag.group & 0xFF00) == 0x6000 and elem.tag.element == 0x4000:
                action = "X"  # overlay comments
            if action is None and elem.VR == "UI" and elem.value:
                values = elem.value if isinstance(elem.value, list) else [elem.value]
                if any(str(v) not in keep_uids for v in values):
                    action = "U"
            if action is None:
                continue
            if self.retain_patient_characteristics and tag in PATIENT_CHARACTERISTICS:
                if tag == (0x0010, 0x1010):
                    elem.value = _cap_age(str(elem.value))
                continue
            if action == "X" or action == "C":
                del ds[elem.tag]
            elif action == "Z":
                elem.value = pydicom.Sequence([]) if elem.VR == "SQ" else ""
            elif action == "D":
                if elem.VR == "SQ":
                    elem.value = pydicom.Sequence([])
                else:
                    elem.value = _DUMMY.get(elem.VR, "")
            elif action == "U":
                if elem.VR == "UI":
                    vals = elem.value if isinstance(elem.value, list) else [elem.value]
                    new = [self.replace_uid(str(v)) for v in vals]
                    elem.value = new if isinstance(elem.value, list) else new[0]
                elif elem.VR == "SQ":
                    for sub in elem.value:
                        self._apply(sub, pydicom)


def _cap_age(age: str) -> str:
    """PatientAge over 89 years becomes 090Y (HIPAA Safe Harbor)."""
    if len(age) == 4 and age[:3].isdigit() and age[3] == "Y" and int(age[:3]) > 89:
        return "090Y"
    return age


_KNOWN: frozenset[str] | None = None


def _well_known_uids(pydicom: Any) -> frozenset[str]:
    """UIDs defined by the standard (SOP classes, transfer syntaxes, ...): never replaced."""
    global _KNOWN
    if _KNOWN is None:
        from pydicom._uid_dict import UID_dictionary

        _KNOWN = frozenset(UID_dictionary)
    return _KNOWN
