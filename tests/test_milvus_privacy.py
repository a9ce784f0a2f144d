"""What Milvus sees: every call the store makes to the Milvus client is recorded, and afterwards the
Milvus Lite file is read back (through Milvus and as raw bytes). Neither holds raw ids, text, labels,
attributes, refs, tenant, user or collection names, the passphrase, the token or any key; the codes
in Milvus are exactly the salted codes, never the raw ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import securecmr

pymilvus = pytest.importorskip(
    "pymilvus", reason="the Milvus backend needs the 'milvus' extra (pymilvus, milvus-lite)"
)

from securecmr.index import MilvusConnection  # noqa: E402

PASS = "privacy passphrase 9f2c"
TOKEN = "tok-privacy-7d1e-SECRET"
TENANT = "stmarys-hospital"
COLL = "oncology-radiology"
_CALLS = (
    "insert",
    "upsert",
    "delete",
    "search",
    "query",
    "create_collection",
    "has_collection",
    "describe_collection",
    "compact",
)


def _flatten(obj: Any, out: list[bytes]) -> None:
    """Every string and byte string inside ``obj`` (so nothing hides inside a container's repr)."""
    if isinstance(obj, bytes | bytearray | memoryview):
        out.append(bytes(obj))
    elif isinstance(obj, str):
        out.append(obj.encode())
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(k, out)
            _flatten(v, out)
    elif isinstance(obj, list | tuple | set):
        for v in obj:
            _flatten(v, out)
    else:
        out.append(repr(obj).encode())


def _secrets(store: securecmr.Store, items: list[securecmr.Item]) -> dict[str, bytes]:
    """Byte strings that must never reach Milvus, by what they are."""
    found: dict[str, bytes] = {
        "passphrase": PASS.encode(),
        "token": TOKEN.encode(),
        "tenant": TENANT.encode(),
        "collection": COLL.encode(),
        "user": b"dr-oncology-user",
        "store secret": store._ring.secret,
        "store secret hex": store._ring.secret.hex().encode(),
        "master key": store._ring.master,
    }
    for cid, keys in store._ring.collections.items():
        found[f"salt key {cid}"] = keys.salt
        found[f"salt key hex {cid}"] = keys.salt.hex().encode()
        for v, k in keys.data.items():
            found[f"data key {v} {cid}"] = k
    for it in items:
        found[f"id {it.id}"] = str(it.id).encode()
        found[f"json id {it.id}"] = json.dumps(it.id).encode()
        for lab in it.labels:
            found[f"label {lab}"] = lab.encode()
        for key, val in it.attrs.items():
            found[f"attr value {val}"] = str(val).encode()
            found[f"attr key {key}"] = key.encode()
        if it.ref:
            found[f"ref {it.ref}"] = it.ref.encode()
        if it.text:
            found[f"text {it.text[:10]}"] = it.text.encode()
    return found


def _items(n: int) -> list[securecmr.Item]:
    rng = np.random.default_rng(11)
    return [
        securecmr.Item(
            f"MRN-{900000 + i}-ALPHA",
            text=f"adenocarcinoma lesion report number {i} confidential",
            labels=(f"diagnosis-c{i % 5}-malignant",),
            attrs={"department": f"oncology-ward-{i % 3}", "clearance_level": f"level-{i % 2}-restricted"},
            ref=f"pacs-study-{i:05d}.dcm",
            codes={
                "image": rng.integers(0, 256, 8, dtype=np.uint8),
                "text": rng.integers(0, 256, 8, dtype=np.uint8),
            },
        )
        for i in range(n)
    ]


def test_milvus_sees_only_salted_codes_and_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, list[bytes]]] = []
    inserted: list[bytes] = []
    searched: list[bytes] = []
    for name in _CALLS:
        original = getattr(pymilvus.MilvusClient, name)

        def wrapper(self: Any, *args: Any, _name: str = name, _orig: Any = original, **kwargs: Any) -> Any:
            flat: list[bytes] = []
            _flatten([args, kwargs], flat)
            sent.append((_name, flat))
            if _name == "insert":
                inserted.extend(r["code"] for r in (kwargs.get("data") or args[1]))
            if _name == "search":
                searched.extend(kwargs["data"])
            return _orig(self, *args, **kwargs)

        monkeypatch.setattr(pymilvus.MilvusClient, name, wrapper)

    original_columns = MilvusConnection.insert_columns

    def columns_spy(self: Any, collection: str, columns: dict[str, list[Any]], **kw: Any) -> Any:
        flat: list[bytes] = []
        _flatten([collection, columns], flat)
        sent.append(("insert_columns", flat))
        inserted.extend(columns["code"])
        return original_columns(self, collection, columns, **kw)

    monkeypatch.setattr(MilvusConnection, "insert_columns", columns_spy)

    root = tmp_path / "store"
    items = _items(40)
    store = securecmr.Store.create(root, passphrase=PASS, index_backend="milvus", milvus_token=TOKEN)
    admin = store.session(store.create_user("dr-oncology-user", role="admin", tenant=TENANT))
    coll = admin.create_collection(COLL, bits=64, protection="salted+encrypted")
    coll.add(items, store_content=True)
    for it in items[:5]:
        hits = coll.search(code=it.codes["image"], k=3)  # type: ignore[index]
        assert hits[0].id == it.id
    coll.delete([items[0].id, items[1].id])
    inner = store.collection(f"{TENANT}~{COLL}")
    salted = {
        inner._ops.salted(np.asarray(c, np.uint8)) for it in items for c in (it.codes or {}).values()
    }
    salted_left = {
        inner._ops.salted(np.asarray(c, np.uint8)) for it in items[2:] for c in (it.codes or {}).values()
    }
    raw = {c.tobytes() for it in items for c in (it.codes or {}).values()}
    secrets = _secrets(store, items)
    assert repr(store).find(TOKEN) < 0 and repr(store._milvus).find(TOKEN) < 0
    store.compact()
    store.close()

    # 1. what was sent
    assert sent and inserted and searched
    for call, flat in sent:
        blob = b"\x00".join(flat)
        for what, secret in secrets.items():
            assert secret not in blob, f"{what} was sent to Milvus in {call}"
    assert set(inserted) == salted  # exactly the salted codes were stored ...
    assert not (set(inserted) & raw)  # ... and no raw code
    assert not (set(searched) & raw)  # queries are salted too

    # 2. what Milvus holds, read back through Milvus
    client = pymilvus.MilvusClient(str(root / "milvus.db"))
    try:
        rows: list[dict[str, Any]] = []
        stored: list[bytes] = []
        for name in client.list_collections():
            pk = "key" if name.endswith("_state") else "pk"
            expr = f'{pk} != ""' if pk == "key" else f"{pk} >= 0"
            got = client.query(name, filter=expr, output_fields=["*"], limit=16384)
            rows.extend(got)
            if pk == "pk":
                assert {k for r in got for k in r} == {"pk", "tenant", "seq", "mod", "rk", "code"}
                stored.extend(bytes(r["code"][0] if isinstance(r["code"], list) else r["code"]) for r in got)
        assert len(stored) == 2 * 38 and set(stored) == salted_left  # the deleted items are gone
    finally:
        client.close()
    flat: list[bytes] = []
    _flatten(rows, flat)
    blob = b"\x00".join(flat)
    for what, secret in secrets.items():
        assert secret not in blob, f"{what} is stored in Milvus"

    # 3. the raw bytes of the Milvus Lite files
    for path in root.iterdir():
        if path.name.startswith("milvus") and path.is_file():
            data = path.read_bytes()
            for what, secret in secrets.items():
                assert secret not in data, f"{what} is in {path.name}"
