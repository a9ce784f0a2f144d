"""Hospital cases (DICOM files + report text): de-identify, window, and ingest with a report.

Uses pydicom's bundled test files (CT_small.dcm, MR_small.dcm, an RT plan without pixels and a
JPEG-LS file that needs a decoder that is not installed) so it runs anywhere:

    .venv/bin/python examples/medical/dicom_cases.py [--out DIR]

It writes de-identified copies to ``--out`` (default: a temporary folder), prints what Annex E
de-identification changed, and the ingest report with the skipped items.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "adapters"))

from securecmr_medical import DicomCase, DicomDeidentifier, load_dicom_cases, read_dicom  # noqa: E402
from securecmr_medical.errors import NotDeidentifiedError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import pydicom
    from pydicom.data import get_testdata_file

    files = {
        n: get_testdata_file(n, download=False)
        for n in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "MR_small_jpeg_ls_lossless.dcm")
    }
    paths = {n: Path(str(p)) for n, p in files.items() if p}
    deid = DicomDeidentifier(uid_key=secrets.token_bytes(32))  # keep the key to stay consistent
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        src = paths["CT_small.dcm"]
        try:
            read_dicom(src)
        except NotDeidentifiedError as exc:
            print(f"refused: {exc}")
        dst = out / "CT_small.deid.dcm"
        deid.deidentify_file(src, dst)
        before, after = pydicom.dcmread(src), pydicom.dcmread(dst)
        kept = {e.tag for e in after}
        private = sum(1 for e in before if e.tag.is_private)
        removed = sorted(e.keyword for e in before if e.tag not in kept and not e.tag.is_private)
        print(f"\nAnnex E basic profile on {src.name}: {private} private tags and {removed} removed")
        print(
            f"  PatientName empty: {str(after.PatientName) == ''}; "
            f"PatientIdentityRemoved={after.PatientIdentityRemoved}"
        )
        print(
            f"  method codes: {[i.CodeValue for i in after.DeidentificationMethodCodeSequence]}; "
            f"StudyInstanceUID replaced: {after.StudyInstanceUID != before.StudyInstanceUID}"
        )
        img = read_dicom(dst)
        print(f"  {img}; pixel range {int(img.pixels.min())}..{int(img.pixels.max())}")

        cases = [
            DicomCase(
                "MRN 0042",
                [paths["CT_small.dcm"], paths["rtplan.dcm"]],
                "Patient: Ada Novak. CT 03/14/2019: obstructing mass with left upper lobe collapse.",
                ["region:Thorax"],
            ),
            DicomCase(
                "MRN 0043",
                [paths["MR_small.dcm"], paths["MR_small_jpeg_ls_lossless.dcm"]],
                "MR brain, dictated by Dr. Haddad: no acute infarct.",
                ["region:Brain"],
            ),
            DicomCase("MRN 0044", [paths["MR_small.dcm"]], "", ["region:Brain"]),
        ]
        records, report = load_dicom_cases(cases, dicom_deidentifier=deid)
        print(f"\n{report}")
        for r in records:
            print(f"  {r}: {r.text!r}")
        for s in report.skipped:
            print(f"  skipped {s.item}: {s.error}: {s.message}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
