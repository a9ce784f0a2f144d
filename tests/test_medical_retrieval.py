"""MedicalRetriever: hasher training on records, codes, and the protected collection (byte scan)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from securecmr_medical import MedicalFeatures, MedicalRecord, MedicalRetriever, TextDeidentifier, class_labels
from securecmr_medical._synthetic import inject_phi

import securecmr
from securecmr.errors import NotFittedError

FAST = {"reg": 1e-3, "anchors": 64, "max_iter": 60, "seed": 0}


def _records_and_features(n: int = 96, seed: int = 0) -> tuple[list[MedicalRecord], MedicalFeatures]:
    """Records in 4 region x modality classes with class-dependent synthetic features."""
    rng = np.random.default_rng(seed)
    classes = [("Thorax", "CT"), ("Thorax", "MR"), ("Brain", "MR"), ("Abdomen", "CT")]
    y = np.arange(n) % len(classes)
    ci = rng.normal(size=(len(classes), 64))
    ct = rng.normal(size=(len(classes), 32))
    img = (ci[y] + 0.8 * rng.normal(size=(n, 64))).astype(np.float32)
    txt = (ct[y] + 0.8 * rng.normal(size=(n, 32))).astype(np.float32)
    records = [
        MedicalRecord(
            f"img{i}",
            f"finding {i}",
            f"/data/img{i}.jpg",
            (f"region:{classes[c][0]}", f"modality:{classes[c][1]}"),
            {"region": classes[c][0], "modality": classes[c][1]},
        )
        for i, c in enumerate(y)
    ]
    ones = np.ones(n, dtype=bool)
    return records, MedicalFeatures(img, txt, ones, ones)


def test_class_labels_join_region_and_modality() -> None:
    records, _ = _records_and_features(8)
    y, classes = class_labels(records)
    assert classes == [
        "modality:CT|region:Abdomen",
        "modality:CT|region:Thorax",
        "modality:MR|region:Brain",
        "modality:MR|region:Thorax",
    ]
    assert y[:4].tolist() == [1, 3, 2, 0]
    y2, _ = class_labels([MedicalRecord("x", "t", None, ("region:Pelvis", "modality:CT"))], classes)
    assert y2.tolist() == [-1]


def test_fit_codes_and_map_beat_chance() -> None:
    from securecmr.eval import mean_average_precision

    records, feats = _records_and_features()
    r = MedicalRetriever(bits=32, hasher_params=FAST)
    with pytest.raises(NotFittedError):
        r.codes(feats)
    r.fit(records[:64], feats.subset(np.arange(64)))
    y, _ = class_labels(records)
    db = r.codes(feats.subset(np.arange(64)))
    q = r.codes(feats.subset(np.arange(64, 96)))
    assert db["image"].shape == (64, 4) and db["image"].dtype == np.uint8
    for qm in ("text", "image"):
        for dm in ("text", "image"):
            m = mean_average_precision(q[qm], db[dm], y[64:], y[:64])
            assert m > 0.6, (qm, dm, m)  # chance is about 0.25


def test_store_holds_no_injected_phi(tmp_path: Path) -> None:
    records, feats = _records_and_features(48)
    rng = np.random.default_rng(1)
    deid = TextDeidentifier()
    injected: list[str] = []
    clean_records = []
    for rec in records:
        inj = inject_phi("Obstructing mass with left upper lobe collapse. No effusion.", rng, n_sentences=4)
        injected += [inj.text[g.start : g.end] for g in inj.gold if g.end - g.start >= 5]
        out = deid.deidentify(inj.text, item=rec.id)
        clean_records.append(MedicalRecord(rec.id, out.text, rec.image, rec.labels, rec.attrs, out.report))
    r = MedicalRetriever(bits=32, hasher_params=FAST).fit(clean_records, feats)
    store_dir = tmp_path / "store"
    with securecmr.Store.create(store_dir, passphrase="correct horse battery staple") as store:
        coll = r.create_collection(store, "cases")
        assert r.add(coll, clean_records, feats, store_text=True) == 48
        code = r.codes(feats.subset([0]))["text"][0]
        hits = coll.search(code=code, k=5, modality="image")
        assert len(hits) == 5
    blob = b"".join(p.read_bytes() for p in store_dir.rglob("*") if p.is_file())
    assert blob
    for phi in set(injected):
        assert phi.encode() not in blob, "injected PHI found in the store"


@pytest.mark.models
def test_encode_with_real_encoders(models_dir: Path) -> None:
    from skimage import data

    images = [data.camera(), data.coins(), data.astronaut(), data.chelsea()]
    records = [
        MedicalRecord(f"r{i}", text, img, ("region:Thorax", "modality:CT"))
        for i, (text, img) in enumerate(zip(["chest CT", "brain MR", "", "abdomen CT"], images, strict=True))
    ]
    records.append(MedicalRecord("r4", "report only", None, ()))
    feats = MedicalRetriever(model_dir=models_dir).encode(records)
    assert feats.image.shape == (5, 1280) and feats.text.shape == (5, 384)
    assert feats.has_image.tolist() == [True, True, True, True, False]
    assert feats.has_text.tolist() == [True, True, False, True, True]
    assert np.allclose(np.linalg.norm(feats.image[:4], axis=1), 1.0, atol=1e-4)
    assert not feats.text[2].any() and not feats.image[4].any()


def test_misuse_errors() -> None:
    from securecmr.errors import ConfigurationError, InputError

    records, feats = _records_and_features(8)
    with pytest.raises(ConfigurationError, match="zero-shot"):
        MedicalRetriever(method="zero-shot").fit(records, feats)
    with pytest.raises(NotFittedError):
        MedicalRetriever().search(object(), text="mass")
    one_class = [MedicalRecord(r.id, r.text, r.image, ("region:Thorax", "modality:CT")) for r in records]
    with pytest.raises(InputError, match="two classes"):
        MedicalRetriever(hasher_params=FAST).fit(one_class, feats)
