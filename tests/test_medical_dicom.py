"""DICOM: windowing, Annex E de-identification, refusal of identified instances, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402
from securecmr_medical import (  # noqa: E402
    DicomCase,
    DicomDeidentifier,
    dataset_to_image,
    load_dicom_cases,
    load_dicom_directory,
    read_dicom,
    to_display,
)
from securecmr_medical.errors import (  # noqa: E402
    DicomReadError,
    EmptyReportError,
    MissingImageError,
    MissingPixelDataError,
    NotDeidentifiedError,
    UnsupportedTransferSyntaxError,
)

from securecmr.errors import ConfigurationError, DocumentError  # noqa: E402

KEY = b"0123456789abcdef0123456789abcdef"


def _file(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} not bundled")
    return str(path)


def test_rescale_and_window_give_uint8() -> None:
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    img = to_display(ds)
    assert img.dtype == np.uint8 and img.shape == (128, 128)
    assert img.min() == 0 and img.max() == 255  # percentile stretch without a window in the file
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    narrow = to_display(ds, window=(float(np.median(hu)), 10.0))
    assert (narrow == 0).mean() > 0.2 and (narrow == 255).mean() > 0.2  # a narrow window saturates
    # PS3.3 linear window: centre maps to mid-grey
    ds2 = pydicom.dcmread(_file("MR_small.dcm"))
    c = float(np.median(ds2.pixel_array))
    mid = to_display(ds2, window=(c, 2000.0))
    near = np.abs(ds2.pixel_array.astype(float) - c) < 1
    assert np.all(np.abs(mid[near].astype(int) - 128) <= 1)
    # the file's own window is used when present
    assert not np.array_equal(to_display(ds2), to_display(ds2, window=(c, 50.0)))


def test_monochrome1_is_inverted() -> None:
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    a = to_display(ds, window=(40.0, 400.0))
    ds.PhotometricInterpretation = "MONOCHROME1"
    b = to_display(ds, window=(40.0, 400.0))
    assert np.array_equal(a.astype(int), 255 - b.astype(int))


def test_annex_e_basic_profile() -> None:
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    ds.InstitutionName = "General Hospital"
    ds.ReferringPhysicianName = "Okafor^Ada"
    ds.OtherPatientIDs = "778899"
    ds.add_new((0x0009, 0x0010), "LO", "ACME")  # private creator + private element
    ds.add_new((0x0009, 0x1001), "LO", "secret")
    name, pid, study_uid = str(ds.PatientName), str(ds.PatientID), str(ds.StudyInstanceUID)
    out = DicomDeidentifier(uid_key=KEY).deidentify(ds)
    assert str(ds.PatientName) == name  # the input is not modified
    assert str(out.PatientName) == "" and str(out.PatientID) == ""
    assert "InstitutionName" not in out and "OtherPatientIDs" not in out
    assert str(out.ReferringPhysicianName) == ""
    assert not any(e.tag.is_private for e in out)
    assert out.PatientIdentityRemoved == "YES"
    codes = [(i.CodeValue, i.CodingSchemeDesignator) for i in out.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM")]
    assert out.StudyInstanceUID != study_uid and out.StudyInstanceUID.startswith("2.25.")
    assert out.SOPClassUID == ds.SOPClassUID  # class UIDs are kept
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    # consistent: same key same UID; other key other UID
    again = DicomDeidentifier(uid_key=KEY).deidentify(ds)
    other = DicomDeidentifier(uid_key=b"x" * 32).deidentify(ds)
    assert again.StudyInstanceUID == out.StudyInstanceUID != other.StudyInstanceUID
    blob = repr(DicomDeidentifier(uid_key=KEY))
    assert KEY.decode() not in blob
    for value in (name, pid, "General Hospital", "Okafor", "778899", "secret"):
        assert value not in str(out), value
    img = dataset_to_image(out)
    assert img.deidentified and img.pixels.dtype == np.uint8


def test_retain_patient_characteristics_caps_age() -> None:
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    ds.PatientAge = "093Y"
    ds.PatientSex = "F"
    out = DicomDeidentifier(uid_key=KEY, retain_patient_characteristics=True).deidentify(ds)
    assert out.PatientAge == "090Y" and out.PatientSex == "F"
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100", "113108"]
    plain = DicomDeidentifier(uid_key=KEY).deidentify(ds)
    assert "PatientAge" not in plain


def test_key_required() -> None:
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    with pytest.raises(ConfigurationError):
        DicomDeidentifier().deidentify(ds)
    with pytest.raises(ConfigurationError):
        DicomDeidentifier(uid_key=b"short").deidentify(ds)


def test_identified_instance_is_refused_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(NotDeidentifiedError, match=r"CT_small\.dcm"):
        read_dicom(_file("CT_small.dcm"))
    assert read_dicom(_file("CT_small.dcm"), allow_identified=True).modality == "CT"
    dst = tmp_path / "deid.dcm"
    DicomDeidentifier(uid_key=KEY).deidentify_file(_file("CT_small.dcm"), dst)
    img = read_dicom(dst)
    assert img.deidentified and img.pixels.shape == (128, 128)
    ds = pydicom.dcmread(dst)
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(NotDeidentifiedError, match="burned-in"):
        dataset_to_image(ds, item="x.dcm")


def test_bad_dicom_inputs(tmp_path: Path) -> None:
    with pytest.raises(MissingPixelDataError, match=r"rtplan\.dcm"):
        read_dicom(_file("rtplan.dcm"), allow_identified=True)
    with pytest.raises(UnsupportedTransferSyntaxError, match="JPEG-LS"):
        read_dicom(_file("MR_small_jpeg_ls_lossless.dcm"), allow_identified=True)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a dicom file at all")
    with pytest.raises(DicomReadError, match=r"junk\.dcm"):
        read_dicom(junk)
    with pytest.raises(DicomReadError):
        read_dicom(tmp_path / "nope.dcm")
    assert issubclass(MissingPixelDataError, DocumentError)


def test_dicom_case_batch_skips_bad_items_and_reports(tmp_path: Path) -> None:
    cases = [
        DicomCase(
            "MRN-00412",
            [_file("CT_small.dcm"), _file("rtplan.dcm")],
            "Dr. Okafor: 3 cm mass in the LUL.",
            ["region:Thorax"],
        ),
        DicomCase(
            "MRN-00413",
            [_file("MR_small.dcm"), _file("MR_small_jpeg_ls_lossless.dcm"), tmp_path / "missing.dcm"],
            "MR brain: no acute infarct.",
            ["region:Brain"],
        ),
        DicomCase("MRN-00414", [_file("MR_small.dcm")], "   ", ["region:Brain"]),
    ]
    records, report = load_dicom_cases(cases, dicom_deidentifier=DicomDeidentifier(uid_key=KEY))
    assert report.loaded == len(records) == 2
    assert {r.labels[0] for r in records} == {"region:Thorax", "region:Brain"}
    assert all(r.image is not None and r.image.dtype == np.uint8 for r in records)  # type: ignore[union-attr]
    assert "Okafor" not in records[0].text  # type: ignore[operator]
    errors = sorted(s.error for s in report.skipped)
    assert errors == [
        "EmptyReportError",
        "MissingImageError",
        "MissingPixelDataError",
        "UnsupportedTransferSyntaxError",
    ]
    for s in report.skipped:
        assert "MRN-004" not in s.item and "MRN-004" not in s.message  # case ids are pseudonymised
        assert s.item.startswith("case-")
    # without a de-identifier the identified test files are refused
    _, refused = load_dicom_cases(cases[:1])
    assert [s.error for s in refused.skipped] == ["NotDeidentifiedError", "NotDeidentifiedError"]
    with pytest.raises(EmptyReportError):
        load_dicom_cases(cases[2:], dicom_deidentifier=DicomDeidentifier(uid_key=KEY), strict=True)
    with pytest.raises(MissingImageError):
        load_dicom_cases([DicomCase("c", [tmp_path / "gone.dcm"], "text")], strict=True)


def test_dicom_directory_layout(tmp_path: Path) -> None:
    case = tmp_path / "case1"
    case.mkdir()
    DicomDeidentifier(uid_key=KEY).deidentify_file(_file("CT_small.dcm"), case / "a.dcm")
    (case / "report.txt").write_text(
        "Obstructing mass with left upper lobe collapse. Dictated by Dr. Haddad."
    )
    (case / "labels.txt").write_text("region:Thorax\n")
    (tmp_path / "case2").mkdir()  # no report file
    records, report = load_dicom_directory(tmp_path)
    assert len(records) == 1 and records[0].labels == ("region:Thorax", "modality:CT")
    assert "Haddad" not in (records[0].text or "")
    assert [s.error for s in report.skipped] == ["DocumentError"]
