"""``securecmr eval manifest``: a generated dataset through the pinned CLI and its JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from securecmr.cli.main import app
from securecmr.eval import load_manifest

ROW_KEYS = {"bits", "map_i2t", "map_t2i", "p_at_100_i2t", "p_at_100_t2i"}


def _write_npz(path: Path, *, n: int = 260, seed: int = 0, splits: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    mi, mt = rng.normal(size=(4, 20)) * 2, rng.normal(size=(4, 10)) * 2
    arrays = {
        "image": mi[y] + rng.normal(size=(n, 20)),
        "text": mt[y] + rng.normal(size=(n, 10)),
        "labels": np.eye(4, dtype=np.int64)[y],
    }
    if splits:
        arrays["split"] = np.array(["train"] * (n - 80) + ["dev"] * 30 + ["test"] * 50)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _run(args: list[str]) -> str:
    res = CliRunner().invoke(app, ["eval", *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("protocol", ["out-of-sample", "learned-db"])
def test_eval_manifest_json_and_plot(tmp_path: Path, protocol: str) -> None:
    data = _write_npz(tmp_path / "feats.npz")
    out_json, out_png = tmp_path / "r.json", tmp_path / "pr.png"
    output = _run(
        [
            "manifest", "--data", str(data), "--method", "supervised", "--bits", "16,32",
            "--protocol", protocol, "--json", str(out_json), "--plot", str(out_png),
            "--param", "anchors=64", "--param", "max_iter=20", "--param", "reg=0.0001", "--param", "gamma=1",
        ]
    )  # fmt: skip
    assert "MAP i->t" in output and f"protocol={protocol}" in output
    report = json.loads(out_json.read_text())
    assert set(report) == {"dataset", "method", "protocol", "results", "float_reference"}
    assert (report["dataset"], report["method"], report["protocol"]) == ("manifest", "supervised", protocol)
    assert [row["bits"] for row in report["results"]] == [16, 32]
    for row in report["results"]:
        assert set(row) >= ROW_KEYS
        assert 0.8 < row["map_i2t"] <= 1 and 0.8 < row["map_t2i"] <= 1  # an easy generated task
        assert 0 <= row["p_at_100_i2t"] <= 1
    assert set(report["float_reference"]) == {"map_i2t", "map_t2i"}
    assert 0.4 < report["float_reference"]["map_i2t"] <= 1
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_manifest_with_splits_and_unsupervised(tmp_path: Path) -> None:
    data = _write_npz(tmp_path / "feats.npz", splits=True)
    loaded = load_manifest(data)
    assert (len(loaded.train), len(loaded.query), len(loaded.db)) == (180, 50, 210)
    out_json = tmp_path / "r.json"
    _run(
        [
            "manifest", "--data", str(data), "--method", "cca-itq", "--bits", "16",
            "--json", str(out_json),
        ]
    )  # fmt: skip
    report = json.loads(out_json.read_text())
    assert report["protocol"] == "out-of-sample"
    assert report["results"][0]["map_i2t"] > 0.5
    # supervised with a dev split: what is not fixed by --param is picked on dev
    _run(
        [
            "manifest", "--data", str(data), "--method", "supervised", "--bits", "16",
            "--param", "anchors=64", "--param", "max_iter=20", "--param", "reg=0.0001",
            "--param", "gamma=1", "--json", str(out_json),
        ]
    )  # fmt: skip
    row = json.loads(out_json.read_text())["results"][0]
    assert row["params"]["confidence"] in (0.0, 0.5) and row["params"]["reg"] == 0.0001
    assert row["map_i2t"] > 0.8


def test_eval_cli_errors(tmp_path: Path) -> None:
    """Bad options are one-line errors (exit 1, no traceback) carrying the API's message."""
    data = _write_npz(tmp_path / "feats.npz", n=60)
    runner = CliRunner()

    def fails(args: list[str], match: str) -> None:
        res = runner.invoke(app, ["eval", "manifest", *args])
        assert res.exit_code == 1 and "Traceback" not in res.output
        assert res.stderr.startswith("error: ") and match in res.stderr, res.stderr

    fails(["--data", str(data), "--bits", "12"], "multiple of 8")
    fails(["--data", str(data), "--protocol", "nope"], "protocol")
    fails(["--data", str(data), "--method", "cca", "--protocol", "learned-db"], "learns no database codes")
    fails(["--data", str(data), "--method", "x"], "unknown hashing method")
    bad = tmp_path / "bad.npz"
    np.savez(bad, image=np.zeros((3, 2)), text=np.zeros((3, 2)))
    fails(["--data", str(bad)], "labels")
    res = runner.invoke(app, ["eval", "nosuch", "--data", str(data)])
    assert res.exit_code == 2


def test_eval_jsonl_manifest_with_shipped_encoders(tmp_path: Path, models_dir: Path) -> None:
    """A JSONL manifest of real images and captions, encoded by the shipped encoders (cached)."""
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    names = {"astronaut": "a person in a space suit", "coffee": "a cup of coffee on a plate"}
    names |= {"chelsea": "a cat with striped fur", "rocket": "a rocket on the launch pad"}
    lines = []
    for name, caption in names.items():
        arr = getattr(skimage_data, name)()
        for j in range(4):  # a few crops per picture: four pairs per label
            h, w = arr.shape[:2]
            crop = arr[j * h // 10 : h - j * h // 12, j * w // 12 : w - j * w // 10]
            Image.fromarray(crop).convert("RGB").save(tmp_path / f"{name}{j}.jpg")
            lines.append({"image": f"{name}{j}.jpg", "text": f"{caption}, view {j}", "labels": [name]})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out_json = tmp_path / "r.json"
    _run(
        [
            "manifest", "--data", str(manifest), "--method", "cca", "--bits", "16",
            "--json", str(out_json), "--cache-dir", str(tmp_path / "cache"),
        ]
    )  # fmt: skip
    report = json.loads(out_json.read_text())
    assert 0 <= report["results"][0]["map_i2t"] <= 1
    assert list((tmp_path / "cache").glob("features-*.npz"))  # features cached for reruns
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"image": "missing.jpg", "text": "x"}) + "\n")
    from securecmr.errors import ManifestError

    with pytest.raises(ManifestError, match="not found"):
        load_manifest(bad)
