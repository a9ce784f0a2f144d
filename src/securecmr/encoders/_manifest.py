"""The ``manifest.json`` of an exported model directory: what each model is and the sha256 of every file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .._home import models_dir
from ..errors import ModelIntegrityError, ModelNotFoundError

__all__ = ["MANIFEST_NAME", "read_manifest", "resolve_dir", "sha256_file", "verify_file", "verify_models"]

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
_EXPORT_HINT = "run `securecmr models export` (or `securecmr models export --dir DIR`)"


def resolve_dir(model_dir: str | Path | None) -> Path:
    """``model_dir`` or the default ``$SECURECMR_HOME/models``."""
    return Path(model_dir).expanduser() if model_dir is not None else models_dir()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(model_dir: str | Path | None = None) -> dict[str, Any]:
    """Parse the manifest; :class:`ModelNotFoundError` when the models were never exported."""
    directory = resolve_dir(model_dir)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise ModelNotFoundError(f"no exported models in {directory} (no {MANIFEST_NAME}); {_EXPORT_HINT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelIntegrityError(
            f"{path} is not a valid model manifest ({type(exc).__name__}); "
            "re-export with `securecmr models export --force`"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION or "files" not in data:
        raise ModelIntegrityError(
            f"{path} has an unknown manifest format; re-export with `securecmr models export --force`"
        )
    return data


def verify_file(model_dir: Path, name: str, manifest: dict[str, Any]) -> Path:
    """Return the path of ``name`` after checking its sha256 against the manifest."""
    path = model_dir / name
    expected = manifest["files"].get(name)
    if expected is None:
        raise ModelIntegrityError(
            f"{name} is not listed in {model_dir / MANIFEST_NAME}; "
            "re-export with `securecmr models export --force`"
        )
    if not path.is_file():
        raise ModelNotFoundError(f"model file {path} is missing; {_EXPORT_HINT}")
    if sha256_file(path) != expected:
        raise ModelIntegrityError(
            f"model file {path} does not match the sha256 in its manifest (modified or corrupted); "
            "refusing to load it. Re-export with `securecmr models export --force`"
        )
    return path


def verify_models(model_dir: str | Path | None = None) -> dict[str, str]:
    """Check every file listed in the manifest; returns ``{file: "ok"|"missing"|"mismatch"}``.

    Unlike the loaders this does not raise on the first problem, so a report can list them all.
    """
    directory = resolve_dir(model_dir)
    manifest = read_manifest(directory)
    report: dict[str, str] = {}
    for name, expected in sorted(manifest["files"].items()):
        path = directory / name
        if not path.is_file():
            report[name] = "missing"
        elif sha256_file(path) != expected:
            report[name] = "mismatch"
        else:
            report[name] = "ok"
    return report


def write_manifest(
    model_dir: Path, names: list[str], models: dict[str, Any], extra: dict[str, Any] | None = None
) -> Path:
    """Write the manifest with the sha256 of each file in ``names`` (call it after the files)."""
    files = {name: sha256_file(model_dir / name) for name in sorted(names)}
    data: dict[str, Any] = {"format": FORMAT_VERSION, **(extra or {}), "models": models, "files": files}
    tmp = model_dir / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(model_dir / MANIFEST_NAME)
    return model_dir / MANIFEST_NAME
