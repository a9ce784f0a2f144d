"""MedPix 2.0 and IU X-Ray loaders on small generated datasets (same layout as the real ones)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from securecmr_medical import load_iu_xray, load_medpix
from securecmr_medical.errors import EmptyReportError, MissingImageError

from securecmr.errors import ConfigurationError


def _medpix(root: Path) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "splits").mkdir()
    desc = []
    rows = [
        ("MPX1", "a", "CT", "Thorax", "CT shows an obstructing mass with LUL collapse. Dr. Okafor notified."),
        ("MPX1", "b", "CT", "Thorax", "Follow-up CT 03/04/2011: mass is smaller."),
        ("MPX2", "c", "MR", "Brain", "MR shows a ring-enhancing lesion in a 95-year-old woman."),
        ("MPX2", "d", "MR", "Brain", "   "),  # empty caption
        ("MPX3", "e", "CT", "Abdomen", "CT shows a 7 mm obstructing ureteral calculus."),  # image missing
    ]
    for case, pic, typ, region, caption in rows:
        image_id = f"{case}_synpic{pic}"
        if pic != "e":
            arr = rng.integers(0, 255, size=(32, 40), dtype=np.uint8)
            Image.fromarray(arr).save(root / "images" / f"{image_id}.jpg")
        desc.append(
            {
                "Type": typ,
                "U_id": case,
                "image": image_id,
                "Description": {"Caption": caption, "Age": "60", "Sex": "female", "Plane": "Axial"},
                "Location": region,
                "Location Category": region,
            }
        )
    (root / "Descriptions.json").write_text(json.dumps(desc))
    cases = [
        {"U_id": "MPX1", "Case": {"Title": "Lung cancer", "History": "Patient: Ada Novak, smoker."}},
        {"U_id": "MPX2", "Case": {"Title": "Abscess", "Findings": "Ring-enhancing lesion."}},
        {"U_id": "MPX3", "Case": {"Title": "Stone"}},
    ]
    (root / "Case_topic.json").write_text(json.dumps(cases))
    (root / "splits" / "uid_list.json").write_text(json.dumps({"train": ["MPX1", "MPX3"], "test": ["MPX2"]}))
    return root


def test_medpix_records_labels_and_deid(tmp_path: Path) -> None:
    root = _medpix(tmp_path / "medpix2")
    records, report = load_medpix(root)
    assert report.loaded == len(records) == 3
    assert sorted((s.item, s.error) for s in report.skipped) == [
        ("MPX2_synpicd", "EmptyReportError"),
        ("MPX3_synpice", "MissingImageError"),
    ]
    byid = {r.id: r for r in records}
    assert byid["MPX1_synpica"].labels == ("region:Thorax", "modality:CT")
    assert byid["MPX1_synpica"].attrs["split"] == "train"
    assert "Okafor" not in (byid["MPX1_synpica"].text or "")
    assert "03/04/2011" not in (byid["MPX1_synpicb"].text or "")
    assert "95" not in (byid["MPX2_synpicc"].text or "")
    assert (
        report.phi_removed["NAME"] == 1 and report.phi_removed["DATE"] == 1 and report.phi_removed["AGE"] == 1
    )
    assert Path(str(byid["MPX1_synpica"].image)).is_file()
    # splits and case text
    test, _ = load_medpix(root, split="test")
    assert [r.id for r in test] == ["MPX2_synpicc"]
    case_recs, _ = load_medpix(root, split="train", text="case")
    text = case_recs[0].text or ""
    assert "Lung cancer" in text and "Novak" not in text
    # strict mode raises the first error
    with pytest.raises((EmptyReportError, MissingImageError)):
        load_medpix(root, strict=True)
    with pytest.raises(ConfigurationError):
        load_medpix(root, split="validation")
    with pytest.raises(ConfigurationError):
        load_medpix(tmp_path / "nowhere")


def test_iu_xray(tmp_path: Path) -> None:
    data = {
        "train": [
            {
                "id": "CXR1_1",
                "report": "The heart is normal in size. XXXX. Lungs are clear.",
                "image_path": ["a.png"],
            },
            {"id": "CXR2_1", "report": "", "image_path": ["b.png"]},
        ],
        "test": [{"id": "CXR3_1", "report": "Call Dr. Haddad at 555-201-4477.", "image_path": ["c.png"]}],
    }
    path = tmp_path / "annotation.json"
    path.write_text(json.dumps(data))
    records, report = load_iu_xray(tmp_path)
    assert [r.id for r in records] == ["CXR1_1", "CXR3_1"]
    assert records[0].text == data["train"][0]["report"]  # nothing to remove
    assert "Haddad" not in (records[1].text or "") and "4477" not in (records[1].text or "")
    assert [s.error for s in report.skipped] == ["EmptyReportError"]
    only_test, _ = load_iu_xray(path, split="test")
    assert len(only_test) == 1 and only_test[0].attrs["split"] == "test"
    imgs = tmp_path / "images"
    imgs.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(imgs / "a.png")
    with_images, rep = load_iu_xray(path, images_root=imgs)
    assert [r.id for r in with_images] == ["CXR1_1"]
    assert sorted(s.error for s in rep.skipped) == ["EmptyReportError", "MissingImageError"]
    with pytest.raises(ConfigurationError):
        load_iu_xray(path, split="dev")


def test_import_is_light_and_reprs_hold_no_text(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "import sys, securecmr_medical; print('pydicom' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    records, report = load_medpix(_medpix(tmp_path / "medpix2"))
    blob = repr(records) + repr(report) + json.dumps(report.to_dict())
    assert "obstructing" not in blob and "Okafor" not in blob
