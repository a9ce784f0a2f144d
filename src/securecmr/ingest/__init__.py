"""Batch ingest of large manifests: encoding spread over worker processes (or a Ray cluster, with
the ``scale`` extra), progress, a rejects file for bad lines, and a job journal so that a crashed
job resumes without duplicates and without re-encoding what is already stored.

    import securecmr
    from securecmr.ingest import ingest

    with securecmr.Store.open("my.store", passphrase="...") as store:
        report = ingest(store.collection("cases"), "manifest.jsonl", workers=2)
        report.added, report.rejected, report.items_per_s
"""

from __future__ import annotations

from ._engines import ENGINES
from ._ingest import DEFAULT_BATCH_SIZE, IngestReport, ingest

__all__ = ["DEFAULT_BATCH_SIZE", "ENGINES", "IngestReport", "ingest"]
