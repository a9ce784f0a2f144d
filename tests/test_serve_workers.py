"""``securecmr serve --workers 2``: two server processes on one port and one store. Every
acknowledged write is there, a revocation made through one process holds in the other at its next
call, and the audit log verifies with one record per acknowledged call."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from _serve_helpers import call, running
from _store_helpers import PASS, items

import securecmr
from securecmr._wire import item_to_wire


def test_two_workers_share_one_store(tmp_path: Path) -> None:
    store = securecmr.Store.create(tmp_path / "s", passphrase=PASS)
    tokens = {
        "root": store.create_user("root", role="admin"),
        "cura": store.create_user("cura", role="curator"),
        "rita": store.create_user("rita", role="reader"),
    }
    store.close()
    its = items(120, seed=11)
    acked: list[str] = []
    lock = threading.Lock()
    with running(tmp_path / "s", PASS, "--workers", "2") as server:
        assert (
            call(server, "POST", "/v1/collections", token=tokens["root"], json_body={"name": "c"})[0] == 201
        )

        def writer(part: list[securecmr.Item]) -> None:
            for i in range(0, len(part), 4):
                batch = part[i : i + 4]
                status, _, _ = call(
                    server,
                    "POST",
                    "/v1/collections/c/items",
                    token=tokens["cura"],
                    json_body={"items": [item_to_wire(x) for x in batch]},
                )
                if status == 201:
                    with lock:
                        acked.extend(str(x.id) for x in batch)

        def reader() -> None:
            for i in range(30):
                status, _, _ = call(
                    server,
                    "POST",
                    "/v1/collections/c/search",
                    token=tokens["rita"],
                    json_body={"code": list(its[i].codes["image"].tobytes()), "k": 3},
                )
                assert status in (200, 401)

        threads = [threading.Thread(target=writer, args=(its[j::3],)) for j in range(3)]
        threads += [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(acked) == len(its)
        pids = {line.get("pid") for line in server.access_lines()}
        assert len(pids) == 2, pids  # both processes served

        assert call(server, "POST", "/v1/users/rita/revoke", token=tokens["root"])[0] == 200
        for _ in range(12):  # new connections: both processes answer, none accepts the token
            status, _, body = call(
                server, "GET", "/v1/collections", token=tokens["rita"], headers={"Connection": "close"}
            )
            assert status == 401 and body["error"] == "AuthenticationError"
        status, _, body = call(server, "GET", "/v1/collections/c", token=tokens["root"])
        assert body["items"] == len(its)
    assert server.stop() in (0, -15)
    store = securecmr.Store.open(tmp_path / "s", passphrase=PASS)
    try:
        store.audit.verify()
        adds = [r for r in store.audit.records() if r["action"] == "add" and r["outcome"] == "allowed"]
        assert sum(len(r["results"]) for r in adds) == len(its)
        assert sorted(store.collection("c").ids()) == sorted(acked)
    finally:
        store.close()


def test_workers_must_be_positive() -> None:
    from securecmr.errors import ConfigurationError
    from securecmr.server import serve

    with pytest.raises(ConfigurationError, match="workers"):
        serve("/nonexistent", workers=0)
