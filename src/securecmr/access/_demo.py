"""The access-control part of ``securecmr demo``: two users, one query, different results; an auditor
verifies the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["run_access_demo"]

_DEPARTMENTS = ("radiology", "oncology")


def run_access_demo(
    store: Any,
    codes: Mapping[str, np.ndarray] | None,
    query: np.ndarray,
    *,
    k: int = 3,
    bits: int = 64,
    modality: str = "image",
    console: Any = None,
    item_factory: Any = None,
    vectors: Mapping[str, np.ndarray] | None = None,
    query_modality: str = "text",
) -> dict[str, Any]:
    """Run the demo on an open ``store``.

    ``codes`` maps item names to packed codes (n_bytes,) in one Hamming space and ``query`` is a packed
    code in the same space; or ``codes=None``, ``vectors`` maps item names to embeddings of
    ``modality`` and ``query`` is an embedding of ``query_modality`` (the store hashes both).
    Items are split alternately between two departments; a collection with
    the policy ``item.department in user.departments`` is created; ``ana`` (radiology) and ``omar``
    (oncology) run the same query and see only their department's items; an auditor then verifies
    the hash-chained audit log. Returns the results as a dict (and prints them when ``console`` is a
    rich console).
    """
    if item_factory is None:
        from .._types import Item

        item_factory = Item
    admin = store.session(store.create_user("demo-admin", role="admin"))
    coll = admin.create_collection("access-demo", bits=bits, policy="item.department in user.departments")
    if codes is not None:
        items = [
            item_factory(
                name,
                attrs={"department": _DEPARTMENTS[i % 2]},
                codes={modality: np.asarray(code, dtype=np.uint8)},
            )
            for i, (name, code) in enumerate(codes.items())
        ]
        q: dict[str, Any] = {"code": np.asarray(query, dtype=np.uint8)}
    else:
        items = [
            item_factory(name, attrs={"department": _DEPARTMENTS[i % 2]}, vectors={modality: vec})
            for i, (name, vec) in enumerate((vectors or {}).items())
        ]
        q = {"vector": query, "query_modality": query_modality}
    coll.add(items)
    users = {"ana": "radiology", "omar": "oncology"}
    results: dict[str, list[dict[str, Any]]] = {}
    for name, dept in users.items():
        session = store.session(store.create_user(name, role="reader", attrs={"departments": [dept]}))
        hits = session.collection("access-demo").search(k=k, **q)
        results[name] = [
            {"id": h.id, "department": h.attrs.get("department"), "score": round(float(h.score), 4)}
            for h in hits
        ]
    auditor = store.session(store.create_user("auditor", role="auditor"))
    report = auditor.audit.verify()
    out = {
        "users": {n: {"departments": [d], "results": results[n]} for n, d in users.items()},
        "different_results": {r["id"] for r in results["ana"]}.isdisjoint({r["id"] for r in results["omar"]}),
        "audit": report.to_dict(),
    }
    if console is not None:
        for name, res in results.items():
            shown = ", ".join(f"{r['id']} ({r['department']}, {r['score']:.3f})" for r in res)
            console.print(f"[bold]{name}[/bold] ({users[name]}) sees: {shown}")
        console.print(
            f"auditor verified the audit log: {report.records} records, {report.checkpoints} checkpoints, OK"
        )
    return out
