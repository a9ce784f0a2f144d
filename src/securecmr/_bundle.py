"""``securecmr bundle OUT``: an offline install folder for an air-gapped machine.

Made on a connected machine from a source checkout (it needs ``requirements/lock.txt``)::

    OUT/
      wheels/         securecmr's wheel + every runtime dependency (with the chosen extras), for
                      this platform and Python, at the versions pinned in requirements/lock.txt
      home/models/    the exported ONNX models and their manifest (verified before copying)
      install.sh      one line: check the sums, make a virtualenv, pip install --no-index
      SHA256SUMS      sha256 of every other file (``sha256sum -c SHA256SUMS``)
      README.txt      what to run on the target machine

On the target: ``sh install.sh`` (``VENV=/opt/securecmr/venv sh install.sh`` for another place),
then ``SECURECMR_HOME=$PWD/home venv/bin/securecmr models verify``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import ConfigurationError, ModelIntegrityError, SecureCMRError

__all__ = ["INSTALL_SH", "make_bundle", "project_root"]

INSTALL_SH = (
    'cd "$(dirname "$0")" && sha256sum --quiet -c SHA256SUMS && python3 -m venv "${VENV:-venv}" && '
    '"${VENV:-venv}/bin/pip" install --no-index --find-links wheels "securecmr[%s]"\n'
)


def project_root() -> Path:
    """The source checkout this securecmr runs from (the folder with pyproject.toml and the lock)."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent.parent, here.parent):
        if (cand / "pyproject.toml").is_file() and (cand / "requirements" / "lock.txt").is_file():
            return cand
    raise ConfigurationError(
        "securecmr bundle runs from a source checkout (it needs pyproject.toml and requirements/lock.txt)"
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pip(args: Sequence[str], what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise SecureCMRError(f"{what} failed (pip exit {proc.returncode}):\n{tail}")


def make_bundle(
    out: str | os.PathLike[str],
    *,
    models: str | os.PathLike[str] | None = None,
    extras: Sequence[str] = ("serve",),
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """Write the offline install folder ``out`` (new or empty) and return it."""
    from .encoders import verify_models
    from .encoders._manifest import resolve_dir

    step = on_step or (lambda _msg: None)
    root = project_root()
    dest = Path(out)
    if dest.exists() and any(dest.iterdir()):
        raise ConfigurationError(f"{dest} is not empty; give a new or empty folder")
    for extra in extras:
        if not extra.replace("-", "").replace("_", "").isalnum():
            raise ConfigurationError(f"bad extra name {extra!r}")
    model_dir = resolve_dir(None if models is None else Path(models))
    report = verify_models(model_dir)
    bad = {k: v for k, v in report.items() if v != "ok"}
    if bad:
        raise ModelIntegrityError(
            f"models in {model_dir} do not verify ({', '.join(sorted(bad))}); run `securecmr models export`"
        )
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        _fill(dest, root, model_dir, sorted(report), tuple(extras), step)
    except BaseException:  # nothing half-written is left behind
        for child in list(dest.iterdir()):
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        if created:
            dest.rmdir()
        raise
    return dest


def _fill(
    dest: Path,
    root: Path,
    model_dir: Path,
    model_files: list[str],
    extras: tuple[str, ...],
    step: Callable[[str], None],
) -> None:
    wheels = dest / "wheels"
    wheels.mkdir()
    step("building the securecmr wheel")
    _pip(["wheel", "--no-deps", "--wheel-dir", str(wheels), str(root)], "building the wheel")
    (own,) = sorted(wheels.glob("securecmr-*.whl"))
    spec = f"securecmr[{','.join(extras)}] @ {own.resolve().as_uri()}" if extras else str(own)
    step("collecting the pinned dependencies for this platform")
    _pip(
        [
            "download",
            "--only-binary=:all:",
            "--dest",
            str(wheels),
            "-c",
            str(root / "requirements" / "lock.txt"),
            spec,
        ],
        "downloading the dependencies",
    )
    step("copying the verified models")
    home = dest / "home" / "models"
    home.mkdir(parents=True)
    for name in ["manifest.json", *model_files]:
        shutil.copy2(model_dir / name, home / name)
    (dest / "install.sh").write_text(
        INSTALL_SH % ",".join(extras) if extras else INSTALL_SH.replace("[%s]", "")
    )
    (dest / "README.txt").write_text(
        "securecmr offline install\n\n"
        "  sh install.sh                       # checks SHA256SUMS, makes ./venv, installs from ./wheels\n"
        "  export SECURECMR_HOME=$PWD/home     # the models travel in home/models\n"
        "  venv/bin/securecmr --version && venv/bin/securecmr models verify\n"
    )
    step("writing SHA256SUMS")
    files = sorted(p for p in dest.rglob("*") if p.is_file())
    lines = [f"{_sha256(p)}  {p.relative_to(dest).as_posix()}" for p in files]
    (dest / "SHA256SUMS").write_text("\n".join(lines) + "\n")
