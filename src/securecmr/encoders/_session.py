"""onnxruntime sessions with securecmr's threading defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["DISABLED_OPTIMIZERS", "default_threads", "make_session"]

# Graph rewrites that make the CPU slower: onnxruntime 1.32 fuses a residual Add + LayerNormalization
# into SkipLayerNormalization, whose CPU kernel measured ~10x slower per row (3.7 vs 0.36 us for a
# 384-wide row, one thread, AMD EPYC) and took 17% of the int8 MiniLM's time at batch 32.
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


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
    return ort.InferenceSession(
        str(path),
        sess_options=opts,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(DISABLED_OPTIMIZERS),
    )
