"""onnxruntime sessions with securecmr's threading defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["default_threads", "make_session"]


def default_threads() -> int:
    """Intra-op threads: ``$SECURECMR_NUM_THREADS`` or 1 (predictable on shared machines)."""
    env = os.environ.get("SECURECMR_NUM_THREADS", "").strip()
    if env.isdigit():
        return int(env)
    return 1


def make_session(path: Path, *, num_threads: int | None = None) -> Any:
    """A CPU ``onnxruntime.InferenceSession`` for ``path`` (``num_threads=0`` lets ORT decide)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    threads = default_threads() if num_threads is None else int(num_threads)
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
