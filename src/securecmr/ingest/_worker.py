"""The encoding side of a batch job: one :class:`BatchEncoder` per worker (process, Ray actor or the
calling process), holding one ONNX session per modality, created on first use and kept for the
worker's lifetime. Workers see only line numbers, text and media paths: never ids, labels, attrs
or refs, and never the store or its keys.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..store._encode import Encoders, hasher_from_bytes

__all__ = [
    "BatchEncoder",
    "BatchResult",
    "WorkerConfig",
    "config_to_json",
    "read_message",
    "serve",
    "write_message",
]


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs: the collection's fitted hasher (serialised), its width and the
    encoder directory (plain bytes, ints and strings)."""

    hasher: bytes
    bits: int
    model_dir: str
    num_threads: int = 1

    def __repr__(self) -> str:
        return f"WorkerConfig(bits={self.bits}, num_threads={self.num_threads})"


@dataclass
class BatchResult:
    """Packed codes per manifest line and modality, plus the lines that failed to encode."""

    batch: int
    codes: dict[int, dict[str, bytes]] = field(default_factory=dict)
    rejects: list[tuple[int, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "codes": {str(k): {m: c.hex() for m, c in v.items()} for k, v in self.codes.items()},
            "rejects": [[line, reason] for line, reason in self.rejects],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> BatchResult:
        return cls(
            batch=int(obj["batch"]),
            codes={int(k): {m: bytes.fromhex(c) for m, c in v.items()} for k, v in obj["codes"].items()},
            rejects=[(int(a), str(b)) for a, b in obj["rejects"]],
        )


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class BatchEncoder:
    """Encodes batches of manifest rows into packed codes with a collection's hasher.

    The same code path as :meth:`securecmr.Collection.add` (``Encoders.codes_for``), so a row gets
    the same code here as it would from a serial ``add`` of the same batch.
    """

    def __init__(self, hasher: Any, bits: int, model_dir: str | Path, *, num_threads: int = 1) -> None:
        self._encoders = Encoders(hasher, bits)
        self._model_dir = Path(model_dir)
        self._num_threads = num_threads

    @classmethod
    def from_config(cls, config: WorkerConfig) -> BatchEncoder:
        return cls(
            hasher_from_bytes(config.hasher), config.bits, config.model_dir, num_threads=config.num_threads
        )

    def __repr__(self) -> str:
        return f"BatchEncoder(bits={self._encoders.bits})"

    def _ready(self, modality: str) -> None:
        """Load the encoder of ``modality`` once (one ONNX session, ``num_threads`` intra-op threads)."""
        from ..encoders import load_image_encoder, load_text_encoder, load_video_encoder

        enc = self._encoders
        if modality == "text" and enc._text is None:
            enc._text = load_text_encoder(self._model_dir, num_threads=self._num_threads)
        elif modality == "image" and enc._image is None:
            enc._image = load_image_encoder(self._model_dir, num_threads=self._num_threads)
        elif modality == "video" and enc._video is None:
            enc._video = load_video_encoder(self._model_dir, num_threads=self._num_threads)

    def encode(self, batch: int, rows: list[dict[str, Any]]) -> BatchResult:
        """Codes for every row that encodes; a row that fails (corrupt image, undecodable video)
        becomes a reject and the rest of the batch goes on."""
        from ..encoders._imageio import to_rgb

        out = BatchResult(batch)
        failed: set[int] = set()
        texts = [r for r in rows if r.get("text") is not None]
        if texts:
            self._ready("text")
            try:
                coded = self._encoders.codes_for("text", [r["text"] for r in texts])
                for r, c in zip(texts, coded, strict=True):
                    out.codes.setdefault(r["line"], {})["text"] = c.tobytes()
            except InputError:  # isolate the bad text(s): one at a time
                for r in texts:
                    try:
                        c = self._encoders.codes_for("text", [r["text"]])[0]
                    except InputError as exc:
                        failed.add(r["line"])
                        out.rejects.append((r["line"], _reason(exc)))
                        continue
                    out.codes.setdefault(r["line"], {})["text"] = c.tobytes()
        images: list[tuple[dict[str, Any], np.ndarray]] = []
        for r in rows:
            if r.get("image") is not None and r["line"] not in failed:
                try:  # decode here, one by one, so a corrupt file costs only its own row
                    images.append((r, to_rgb(r["image"])))
                except InputError as exc:
                    failed.add(r["line"])
                    out.rejects.append((r["line"], _reason(exc)))
        if images:
            self._ready("image")
            coded = self._encoders.codes_for("image", [a for _, a in images])
            for (r, _), c in zip(images, coded, strict=True):
                out.codes.setdefault(r["line"], {})["image"] = c.tobytes()
        for r in rows:
            if r.get("video") is not None and r["line"] not in failed:
                self._ready("video")
                try:
                    c = self._encoders.codes_for("video", [r["video"]])[0]
                except InputError as exc:
                    failed.add(r["line"])
                    out.rejects.append((r["line"], _reason(exc)))
                    continue
                out.codes.setdefault(r["line"], {})["video"] = c.tobytes()
        for line in failed:  # a row with one bad medium is rejected whole
            out.codes.pop(line, None)
        out.rejects.sort()
        return out


# ---------------------------------------------------------------- worker process (see _worker_main)
# Protocol on stdin/stdout: 4-byte big-endian length + a JSON object (no pickle). The first message
# is the config; then {"batch": n, "rows": [...]} per batch, each answered in order with
# {"ok": true, "result": {...}} or {"ok": false, "error": "ClassName", "message": "..."}.
# EOF on stdin ends the worker (so workers exit when the job's process dies, even on kill -9).


def write_message(stream: Any, obj: dict[str, Any]) -> None:
    data = json.dumps(obj, separators=(",", ":")).encode()
    stream.write(len(data).to_bytes(4, "big") + data)
    stream.flush()


def _read_exact(stream: Any, size: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < size:
        chunk = stream.read(size - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_message(stream: Any) -> dict[str, Any] | None:
    """The next message, or None at EOF (the other side closed or died)."""
    head = _read_exact(stream, 4)
    if head is None:
        return None
    data = _read_exact(stream, int.from_bytes(head, "big"))
    if data is None:
        return None
    out: dict[str, Any] = json.loads(data)
    return out


def config_to_json(config: WorkerConfig) -> dict[str, Any]:
    return {
        "hasher": base64.b64encode(config.hasher).decode(),
        "bits": config.bits,
        "model_dir": config.model_dir,
        "num_threads": config.num_threads,
    }


def config_from_json(obj: dict[str, Any]) -> WorkerConfig:
    return WorkerConfig(
        base64.b64decode(obj["hasher"]), int(obj["bits"]), str(obj["model_dir"]), int(obj["num_threads"])
    )


def serve(stdin: Any, stdout: Any) -> int:
    """The worker loop: one BatchEncoder for the life of the process."""
    first = read_message(stdin)
    if first is None:
        return 0
    encoder = BatchEncoder.from_config(config_from_json(first))
    while (msg := read_message(stdin)) is not None:
        try:
            res = encoder.encode(int(msg["batch"]), list(msg["rows"]))
        except Exception as exc:  # reported to the job, which stops and can be resumed
            write_message(stdout, {"ok": False, "error": type(exc).__name__, "message": str(exc)})
            continue
        write_message(stdout, {"ok": True, "result": res.to_json()})
    return 0
