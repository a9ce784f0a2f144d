"""Tamper-evident audit log: keyed hash chain, signed checkpoints, verify and export.

>>> log = AuditLog(directory, key)            # doctest: +SKIP
>>> log.append("search", principal="ana", collection="ct", query="a lung nodule", result_ids=[...])
>>> log.verify()                              # raises AuditIntegrityError naming the first bad record
"""

from __future__ import annotations

from ._log import HIPAA_RETENTION_DAYS, AuditAnchor, AuditLog, AuditReport

__all__ = ["HIPAA_RETENTION_DAYS", "AuditAnchor", "AuditLog", "AuditReport"]
