"""The operator's CLI: no silent replacement, explicit audited updates, collections with policies
and tenants, JSON output, ISO times, tables with headers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import securecmr
from securecmr.cli.main import app

PASS = "operator passphrase"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def cli(*args: str, code: int = 0, **env: str) -> Any:
    res = CliRunner().invoke(app, list(args), env={"SECURECMR_PASSPHRASE": PASS, **env})
    assert "Traceback" not in res.output
    assert res.exit_code == code, res.output
    return res


def jcli(*args: str, code: int = 0, **env: str) -> Any:
    return json.loads(cli(*args, "--json", code=code, **env).stdout)


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = str(tmp_path / "st")
    assert jcli("store", "create", path)["created"] is True
    return path


def test_store_create_refuses_an_existing_store_unless_exist_ok(store: str) -> None:
    err = jcli("store", "create", store, code=1)["error"]
    assert err["type"] == "StoreExistsError" and "--exist-ok" in err["hint"]
    assert "Store.open" not in err["message"]
    assert jcli("store", "create", store, "--exist-ok")["created"] is False


def test_users_create_never_replaces_and_update_is_audited(store: str) -> None:
    made = jcli("users", "create", store, "ana", "--role", "reader", "--tenant", "north", "--attr", "wards=a")
    token = made["token"]
    err = jcli("users", "create", store, "ana", "--role", "admin", code=1)["error"]
    assert err["type"] == "UserExistsError" and "users update" in err["message"]
    assert jcli("users", "create", store, "ana", "--role", "admin", "--exist-ok")["created"] is False
    shown = jcli("users", "show", store, "ana")
    assert shown["role"] == "reader" and shown["tenant"] == "north" and shown["tokens"] == 1
    assert ISO.match(shown["created_at"]) and ISO.match(shown["expires_at"])
    with securecmr.Store.open(store, passphrase=PASS) as st:
        assert st.session(token).role == "reader"  # the old token still works
    updated = jcli("users", "update", store, "ana", "--role", "curator", "--no-tenant")
    assert updated["role"] == "curator" and updated["tenant"] is None and updated["attrs"] == {"wards": "a"}
    with securecmr.Store.open(store, passphrase=PASS) as st:
        assert st.session(token).role == "curator"
        recs = [r for r in st.audit.records() if r["action"].startswith("user.")]
    assert [r["action"] for r in recs] == ["user.create", "user.create", "user.update"]
    assert recs[1]["outcome"] == "denied"
    assert recs[2]["detail"]["changes"] == {"role": ["reader", "curator"], "tenant": ["north", None]}
    cli("users", "update", store, "ana", code=2)  # nothing to change
    second = jcli("users", "token", store, "ana", "--ttl-hours", "1")["token"]
    rows = cli("users", "list", store).stdout.splitlines()
    assert rows[0].split()[:3] == ["name", "role", "tenant"] and rows[2].split()[:2] == ["ana", "curator"]
    jcli("users", "revoke", store, "ana")
    with securecmr.Store.open(store, passphrase=PASS) as st:
        for t in (token, second):
            with pytest.raises(securecmr.errors.AuthenticationError):
                st.session(t)
    assert jcli("users", "show", store, "nobody", code=1)["error"]["type"] == "UserNotFoundError"


def test_collections_with_policy_tenant_and_drop(store: str, tmp_path: Path) -> None:
    info = jcli("collection", "create", store, "ct", "--policy", "item.ward in user.wards", "--bits", "64")
    assert info["policy"] == "item.ward in user.wards" and info["created_now"] is True
    err = jcli("collection", "create", store, "ct", code=1)["error"]
    assert err["type"] == "CollectionExistsError" and "--exist-ok" in err["message"]
    assert jcli("collection", "create", store, "ct", "--exist-ok", "--bits", "128")["bits"] == 64
    jcli("collection", "create", store, "ct", "--tenant", "north", "--protection", "salted")
    listed = jcli("collection", "list", store)
    assert {(c["name"], c["tenant"]) for c in listed} == {("ct", None), ("ct", "north")}
    north = jcli("users", "create", store, "nora", "--role", "reader", "--tenant", "north")["token"]
    a_reader = jcli("users", "create", store, "ria", "--role", "reader", "--attr", "wards=a")["token"]
    with securecmr.Store.open(store, passphrase=PASS) as st:
        assert st.session(north).collections() == ["ct"]
        coll = st.collection("ct")
        rng = np.random.default_rng(0)
        coll.add(
            [
                securecmr.Item(id=f"{w}{i}", codes={"text": rng.integers(0, 256, 8, dtype=np.uint8)},
                               attrs={"ward": w})
                for w in "ab" for i in range(5)
            ]
        )  # fmt: skip
        hits = (
            st.session(a_reader).collection("ct").search(code=rng.integers(0, 256, 8, dtype=np.uint8), k=10)
        )
        assert hits and {h.attrs["ward"] for h in hits} == {"a"}
    table = cli("collection", "list", store).stdout.splitlines()
    assert table[0].split() == ["name", "tenant", "items", "bits", "protection", "ttl", "(h)", "policy"]
    cli("collection", "drop", store, "ct", code=2)  # not a terminal and no --yes
    receipt = tmp_path / "drop.json"
    out = jcli("collection", "drop", store, "ct", "--yes", "--receipt", str(receipt))
    assert out["count"] == 10 and ISO.match(out["at"])
    with securecmr.Store.open(store, passphrase=PASS) as st:
        assert st.collections() == ["north~ct"]
        assert st.verify_receipt(json.loads(receipt.read_text()))
        drops = [r for r in st.audit.records() if r["action"] == "collection.drop"]
        assert len(drops) == 1 and drops[0]["detail"]["count"] == 10
        st.create_collection("ct")  # the name is free again, with new keys
        assert len(st.collection("ct")) == 0
    assert jcli("collection", "info", store, "gone", code=1)["error"]["type"] == "CollectionNotFoundError"


def test_item_commands_and_human_output(store: str) -> None:
    jcli("collection", "create", store, "c", "--protection", "salted")
    with securecmr.Store.open(store, passphrase=PASS) as st:
        st.collection("c").add(
            [
                securecmr.Item(id=f"i{i}", codes={"text": np.full(8, i, np.uint8)}, attrs={"s": i % 2})
                for i in range(4)
            ]
        )
    assert jcli("get", store, "c", "i1") == {"id": "i1", "labels": [], "attrs": {"s": 1}, "ref": None}
    assert jcli("hold", store, "c", "i1")["held"] == 1
    err = jcli("delete", store, "c", "i1", code=1)["error"]
    assert err["type"] == "LegalHoldError"
    jcli("release", store, "c", "i1")
    assert cli("delete", store, "c", "i1").stdout.strip() == "deleted 1 item"
    assert jcli("delete", store, "c", "--where", "s=0")["deleted"] == 2
    cli("delete", store, "c", "i3", "--where", "s=1", code=2)
    out = cli("compact", store).stdout
    assert re.match(r"erased 3 items at \d{4}-\d\d-\d\dT", out)
    assert jcli("purge", store) == {"purged": 0}
    info = jcli("store", "info", store)
    assert info["items"] == 1 and info["monitor_fitted"] is False
    recs = jcli("audit", "records", store, "--action", "delete")
    assert [r["detail"]["count"] for r in recs if r["outcome"] == "allowed"] == [1, 2]
    assert all(ISO.match(r["time"]) for r in recs)
    assert jcli("audit", "verify", store)["ok"] is True


def test_search_usage_errors_are_in_cli_terms(store: str) -> None:
    jcli("collection", "create", store, "c")
    res = cli("search", store, "c", code=2)
    assert "give exactly one of QUERY, --text, --image or --video" in res.stderr
    res = cli("search", store, "c", "words", "--text", "more", code=2)
    assert "text=" not in res.stderr
    err = jcli("search", store, "nope", "words", code=1)["error"]
    assert "collection create" in err["message"] and "create_collection" not in err["message"]


def test_manifest_reports_every_bad_line_and_stored_ids(store: str, tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    m.write_text(
        '{"id": "a", "text": "t"}\nnot json\n{"id": "a", "text": "again"}\n{"text": "no id"}\n'
        '{"id": "b", "image": "missing.png"}\n{"id": "c", "text": "fine"}\n'
    )
    err = jcli("ingest", store, "c", str(m), code=1)["error"]
    assert err["type"] == "ManifestError" and "4 bad lines" in err["message"]
    for part in ("line 2: not valid JSON", "line 3: the same id as line 1", "line 4:", "line 5: image file"):
        assert part in err["message"]
    jcli("collection", "create", store, "c")
    with securecmr.Store.open(store, passphrase=PASS) as st:
        st.collection("c").add([securecmr.Item("a", codes={"text": np.zeros(8, np.uint8)})])
    m.write_text('{"id": "z", "text": "new"}\n{"id": "a", "text": "stored already"}\n')
    err = jcli("ingest", store, "c", str(m), code=1)["error"]  # found before any model runs
    assert err["type"] == "DuplicateItemError" and "lines 2" in err["message"] and "nothing" in err["message"]


def test_collection_create_with_a_fitted_hasher(store: str, tmp_path: Path) -> None:
    from securecmr import hashing

    rng = np.random.default_rng(1)
    h = hashing.create("cca", bits=32).fit(rng.normal(size=(80, 12)), rng.normal(size=(80, 10)))
    path = h.save(tmp_path / "h.npz")
    info = jcli("collection", "create", store, "c", "--bits", "32", "--hasher", str(path))
    assert info["bits"] == 32
    with securecmr.Store.open(store, passphrase=PASS) as st:
        assert st.collection("c").hasher.bits == 32
    err = jcli("collection", "create", store, "d", "--bits", "64", "--hasher", str(path), code=1)["error"]
    assert "32-bit" in err["message"]
    assert jcli("collection", "create", store, "e", "--hasher", str(tmp_path / "none.npz"), code=2)


def test_roles(store: str) -> None:
    names = [r["name"] for r in jcli("roles", "list", store)]
    assert names == ["admin", "curator", "reader", "auditor"]
    made = jcli(
        "roles", "create", store, "triage", "-p", "search", "--max-k", "5", "--policy", "item.ward == 'a'"
    )
    assert made["permissions"] == ["search"] and made["max_k"] == 5
    err = jcli("roles", "create", store, "triage", "-p", "search", code=1)["error"]
    assert "--replace" in err["message"]
    assert jcli("roles", "create", store, "triage", "-p", "search", "-p", "add", "--replace")[
        "permissions"
    ] == [
        "add",
        "search",
    ]
    assert jcli("roles", "create", store, "x", "-p", "fly", code=1)["error"]["type"] == "ConfigurationError"
    token = jcli("users", "create", store, "tri", "--role", "triage")["token"]
    with securecmr.Store.open(store, passphrase=PASS) as st:
        assert st.session(token).role == "triage"


def test_ingest_upsert_and_search_where_with_the_encoders(
    store: str, tmp_path: Path, models_dir: Path
) -> None:
    import os

    env = {"SECURECMR_HOME": os.environ["SECURECMR_HOME"]}
    jcli("collection", "create", store, "notes", "--policy", "item.ward in user.wards")
    m = tmp_path / "notes.jsonl"
    rows = [
        {"id": f"n{i}", "text": t, "attrs": {"ward": w}}
        for i, (t, w) in enumerate(
            [("a red car at the gate", "a"), ("a red truck at the gate", "b"), ("a cat on a sofa", "a"),
             ("a blue car parked", "b"), ("chest x-ray, no findings", "a")]
        )
    ]  # fmt: skip
    m.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = cli("ingest", store, "notes", str(m), **env)
    assert res.stdout.strip() == "ingested 5 items into notes"
    assert "encoding: 5 items" in res.stderr and "done, 5 items" in res.stderr  # plain lines off a TTY
    assert jcli("ingest", store, "notes", str(m), code=1, **env)["error"]["type"] == "DuplicateItemError"
    rows[1]["attrs"] = {"ward": "a"}
    m.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert jcli("ingest", store, "notes", str(m), "--upsert", **env)["added"] == 5
    hits = jcli("search", store, "notes", "red car", "-k", "5", "--where", "item.ward == 'b'", **env)
    assert [h["id"] for h in hits] == ["n3"]
    token = jcli("users", "create", store, "wa", "--role", "reader", "--attr", "wards=a")["token"]
    seen = jcli("search", store, "notes", "red car", "-k", "5", "--where", "item.ward == 'b' or true",
                SECURECMR_TOKEN=token, **env)  # fmt: skip
    assert seen and {h["attrs"]["ward"] for h in seen} == {"a"}  # where never widens the policy
    table = cli("search", store, "notes", "red car", "-k", "2", **env).stdout.splitlines()
    assert table[0].split()[:4] == ["rank", "score", "id", "modality"]
    err = jcli("search", store, "notes", "car", "--where", "item.ward ==", code=1, **env)["error"]
    assert err["type"] == "PolicyError"
