"""The ONNX text encoder: tokenizer.json (``tokenizers``) + onnxruntime, batched and length-sorted."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import progress
from ..errors import EmptyInputError, InputError
from ._common import l2_normalize, pool
from ._config import TextEncoderConfig

__all__ = ["TextEncoder"]


class TextEncoder:
    """Encode texts into unit-norm float32 rows (``.dim`` wide).

    Built by :func:`securecmr.load_text_encoder` or :func:`securecmr.encoders.load_encoder`.
    """

    def __init__(self, session: Any, tokenizer_path: Path, config: TextEncoderConfig, *, name: str) -> None:
        from tokenizers import Tokenizer

        self._session = session
        self._config = config
        self._name = name
        self._tok = Tokenizer.from_file(str(tokenizer_path))
        pad = config.pad_id
        if pad is None:  # the tokenizer's own padding id, else a conventional pad token, else 0
            padding = self._tok.padding
            known = [self._tok.token_to_id(t) for t in ("[PAD]", "<pad>", "<|endoftext|>")]
            pad = int(padding["pad_id"]) if padding else next((i for i in known if i is not None), 0)
        self._pad_id = pad
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=config.max_length)
        self._inputs = {i.name for i in session.get_inputs()}

    @property
    def dim(self) -> int:
        return self._config.dim

    @property
    def max_length(self) -> int:
        return self._config.max_length

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"TextEncoder(name={self._name!r}, dim={self.dim})"

    def _check(self, texts: str | Iterable[str]) -> list[str]:
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items:
            raise EmptyInputError("no texts to encode; pass a non-empty list of strings")
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise InputError(f"text #{i} is a {type(t).__name__}, not a str")
            if not t.strip():
                raise EmptyInputError(f"text #{i} is empty; drop empty texts before encoding")
        return items

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        c = self._config
        feed = {c.input_ids: ids}
        if c.attention_mask and c.attention_mask in self._inputs:
            feed[c.attention_mask] = mask
        if c.token_type_ids and c.token_type_ids in self._inputs:
            feed[c.token_type_ids] = np.zeros_like(ids)
        (out,) = self._session.run([c.output], feed)
        return pool(out, c.pooling, mask)

    def encode(
        self, texts: str | Iterable[str], *, batch_size: int = 32, show_progress: bool | None = None
    ) -> np.ndarray:
        """(n, dim) float32 rows for ``texts`` (unit rows when the config normalises).

        Texts longer than ``max_length`` tokens are truncated with a warning; an empty text raises
        :class:`~securecmr.errors.EmptyInputError`.
        """
        items = self._check(texts)
        if batch_size < 1:
            raise InputError("batch_size must be >= 1")
        encodings = self._tok.encode_batch(items)
        n_long = sum(1 for e in encodings if e.overflowing)
        if n_long:
            warnings.warn(
                f"{n_long} of {len(items)} text(s) exceed {self.max_length} tokens and were truncated "
                f"to the first {self.max_length} tokens",
                UserWarning,
                stacklevel=2,
            )
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(items), self.dim), dtype=np.float32)
        starts = range(0, len(items), batch_size)
        n_items = len(items)
        for s in progress(starts, total=len(starts), description="encoding texts", show=show_progress,
                          min_total=max(1, 256 // batch_size), count=lambda s: min(batch_size, n_items - s),
                          units=n_items, unit="texts"):
            idx = order[s : s + batch_size]
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                e = encodings[i].ids
                ids[r, : len(e)] = e
                mask[r, : len(e)] = 1
            out[idx] = self._run(ids, mask)
        return l2_normalize(out) if self._config.normalize else out
