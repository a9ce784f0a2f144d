"""``securecmr serve`` against a live server on loopback: start-up rules, health, the /v1 API,
problem+json errors, the access log and a draining shutdown."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _serve_helpers import REPO, Server, _src_env, call, start
from _store_helpers import PASS, items

import securecmr
from securecmr._wire import item_to_wire
from securecmr.errors import ConfigurationError
from securecmr.server import check_bind, read_passphrase


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("serve-api")
    store = securecmr.Store.create(tmp / "store", passphrase=PASS)
    tokens = {
        "admin": store.create_user("root", role="admin"),
        "reader": store.create_user("rita", role="reader"),
        "auditor": store.create_user("audrey", role="auditor"),
        "curator": store.create_user("cora", role="curator"),
    }
    store.close()
    server = start(tmp / "store", PASS)
    try:
        yield {"server": server, "tokens": tokens, "path": tmp / "store"}
    finally:
        server.stop()


def _code(b: bytes) -> str:
    return base64.b64encode(b).decode()


# ---------------------------------------------------------------------------------------- start-up rules
def test_bind_rules() -> None:
    check_bind("127.0.0.1", None, None, False)
    check_bind("::1", None, None, False)
    check_bind("localhost", None, None, False)
    with pytest.raises(ConfigurationError, match="without TLS"):
        check_bind("0.0.0.0", None, None, False)
    with pytest.raises(ConfigurationError, match="without TLS"):
        check_bind("192.168.1.20", None, None, False)
    check_bind("0.0.0.0", None, None, True)  # --insecure-http: the operator's explicit choice
    with pytest.raises(ConfigurationError, match="both"):
        check_bind("127.0.0.1", "cert.pem", None, False)
    with pytest.raises(ConfigurationError, match="does not exist"):
        check_bind("0.0.0.0", "/nonexistent/cert.pem", "/nonexistent/key.pem", False)


def test_passphrase_from_file_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECURECMR_PASSPHRASE", raising=False)
    with pytest.raises(ConfigurationError, match="SECURECMR_PASSPHRASE"):
        read_passphrase(None)
    monkeypatch.setenv("SECURECMR_PASSPHRASE", "from-env")
    assert read_passphrase(None) == "from-env"
    f = tmp_path / "pass"
    f.write_text("from-file\n")
    os.chmod(f, 0o644)
    with pytest.raises(ConfigurationError, match="readable by others"):
        read_passphrase(f)
    os.chmod(f, 0o600)
    assert read_passphrase(f) == "from-file"
    with pytest.raises(ConfigurationError, match="does not exist"):
        read_passphrase(tmp_path / "missing")


def test_cli_refuses_public_bind_without_tls_and_has_no_passphrase_flag(tmp_path: Path) -> None:
    securecmr.Store.create(tmp_path / "s", passphrase=PASS).close()
    cmd = [sys.executable, "-m", "securecmr.cli.main", "serve", str(tmp_path / "s"), "--host", "0.0.0.0"]
    r = subprocess.run(cmd, env=_src_env(PASS), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 1 and "without TLS" in r.stderr
    r = subprocess.run(
        [*cmd[:5], "--passphrase", PASS], env=_src_env(None), capture_output=True, text=True, timeout=120
    )
    assert r.returncode != 0 and "No such option" in r.stderr


def test_wrong_passphrase_fails_fast(tmp_path: Path) -> None:
    securecmr.Store.create(tmp_path / "s", passphrase=PASS).close()
    server = start(tmp_path / "s", "not the passphrase", wait=False)
    try:
        assert server.proc.wait(timeout=120) == 1
        assert "error:" in server.log() and "not the passphrase" not in server.log()
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------- health and docs
def test_health_ready_openapi_and_local_docs(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    assert call(server, "GET", "/healthz")[2] == {"status": "ok"}
    status, _, body = call(server, "GET", "/readyz")
    assert status == 200 and body["status"] == "ready"
    status, _, spec = call(server, "GET", "/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert "/v1/collections/{name}/search" in spec["paths"] and "/v1/users" in spec["paths"]
    status, headers, page = call(server, "GET", "/docs")
    assert status == 200 and b"/docs/assets/swagger-ui-bundle.js" in page
    assert b"http://" not in page and b"https://" not in page  # nothing from a CDN
    assert "script-src 'self'" in headers["content-security-policy"]
    status, headers, js = call(server, "GET", "/docs/assets/swagger-ui-bundle.js")
    assert status == 200 and len(js) > 100_000


# ---------------------------------------------------------------------------------------- the API
def test_collections_items_search_and_problem_documents(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    admin, reader, curator = (world["tokens"][k] for k in ("admin", "reader", "curator"))
    status, _, body = call(
        server, "POST", "/v1/collections", token=admin, json_body={"name": "api", "bits": 64}
    )
    assert status == 201 and body == {"name": "api"}
    status, headers, body = call(server, "POST", "/v1/collections", token=admin, json_body={"name": "api"})
    assert status == 409 and headers["content-type"] == "application/problem+json"
    assert (
        body["error"] == "CollectionExistsError" and body["status"] == 409 and body["type"].endswith("exists")
    )

    its = items(30, seed=5)
    status, _, body = call(
        server,
        "POST",
        "/v1/collections/api/items",
        token=curator,
        json_body={"items": [item_to_wire(i) for i in its]},
    )
    assert status == 201 and body == {"added": 30}
    status, _, body = call(
        server, "POST", "/v1/collections/api/items", token=reader, json_body={"items": [item_to_wire(its[0])]}
    )
    assert status == 403 and body["error"] == "PermissionDeniedError"

    q = its[9].codes["image"].tobytes()
    status, _, body = call(
        server, "POST", "/v1/collections/api/search", token=reader, json_body={"code": _code(q), "k": 4}
    )
    assert status == 200 and body["hits"][0]["id"] == "patient-00009" and len(body["hits"]) == 4
    status, _, body2 = call(
        server, "POST", "/v1/collections/api/search", token=reader, json_body={"code": list(q), "k": 4}
    )
    assert body2 == body  # a list of byte values is the same code

    status, _, body = call(
        server, "POST", "/v1/collections/api/items/get", token=reader, json_body={"id": "patient-00003"}
    )
    assert status == 200 and body["ref"] == "ref-3.png" and body["attrs"]["n"] == 3
    status, _, body = call(
        server, "POST", "/v1/collections/api/items/get", token=reader, json_body={"id": "ghost"}
    )
    assert status == 404 and body["error"] == "ItemNotFoundError"
    status, _, body = call(
        server, "POST", "/v1/collections/none/search", token=reader, json_body={"code": _code(q)}
    )
    assert status == 404 and body["error"] == "CollectionNotFoundError"

    assert (
        call(
            server,
            "POST",
            "/v1/collections/api/items/hold",
            token=curator,
            json_body={"ids": ["patient-00001"]},
        )[0]
        == 200
    )
    status, _, body = call(
        server,
        "POST",
        "/v1/collections/api/items/delete",
        token=curator,
        json_body={"ids": ["patient-00001"]},
    )
    assert status == 409 and body["error"] == "LegalHoldError"
    assert (
        call(
            server,
            "POST",
            "/v1/collections/api/items/release",
            token=curator,
            json_body={"ids": ["patient-00001"]},
        )[0]
        == 200
    )
    status, _, body = call(
        server,
        "POST",
        "/v1/collections/api/items/delete",
        token=curator,
        json_body={"ids": ["patient-00001"]},
    )
    assert status == 200 and body == {"deleted": 1}

    status, _, body = call(server, "GET", "/v1/collections/api", token=admin)
    assert status == 200 and body["items"] == 29 and body["protection"] == "salted+encrypted"
    status, _, body = call(server, "GET", "/v1/collections", token=reader)
    assert status == 200 and "api" in body["collections"]


def test_users_admin_only(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    admin, reader = world["tokens"]["admin"], world["tokens"]["reader"]
    status, _, body = call(
        server, "POST", "/v1/users", token=reader, json_body={"name": "x", "role": "admin"}
    )
    assert status == 403 and body["error"] == "PermissionDeniedError"
    status, _, body = call(
        server, "POST", "/v1/users", token=admin, json_body={"name": "nina", "role": "reader"}
    )
    assert status == 201 and body["name"] == "nina"
    token = body["token"]
    assert call(server, "GET", "/v1/me", token=token)[2]["user"] == "nina"
    assert call(server, "POST", "/v1/users/nina/revoke", token=admin)[0] == 200
    status, headers, body = call(server, "GET", "/v1/me", token=token)
    assert (
        status == 401 and body["error"] == "AuthenticationError" and "Bearer" in headers["www-authenticate"]
    )
    status, _, body = call(server, "GET", "/v1/users", token=admin)
    assert (
        status == 200
        and {"name": "nina", "revoked": True}.items()
        <= next(u for u in body["users"] if u["name"] == "nina").items()
    )
    assert all("hash" not in str(u) and "token" not in u for u in body["users"])


def test_access_log_has_no_tokens_queries_or_ids(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    reader = world["tokens"]["reader"]
    secret_text = "zebra-unicorn-query-4711"
    call(server, "POST", "/v1/collections/api/search", token=reader, json_body={"text": secret_text})
    call(server, "POST", "/v1/collections/api/items/get", token=reader, json_body={"id": "patient-00007"})
    call(server, "GET", "/v1/me?x=patient-00007", token=reader)
    log = server.log()
    lines = server.access_lines()
    assert lines and {"ts", "method", "route", "status", "ms"} <= set(lines[-1])
    assert any(x["route"] == "/v1/collections/{name}/items/get" for x in lines)
    for secret in [*world["tokens"].values(), secret_text, "patient-00007", PASS]:
        assert secret not in log
    assert all("/api/" not in x["route"] for x in lines)  # templates, not paths with names


def test_sigterm_drains_and_flushes_the_audit_log(tmp_path: Path) -> None:
    store = securecmr.Store.create(tmp_path / "s", passphrase=PASS)
    token = store.create_user("root", role="admin")
    store.close()
    server = start(tmp_path / "s", PASS)
    try:
        assert call(server, "POST", "/v1/collections", token=token, json_body={"name": "c"})[0] == 201
        its = items(5)
        assert (
            call(
                server,
                "POST",
                "/v1/collections/c/items",
                token=token,
                json_body={"items": [item_to_wire(i) for i in its]},
            )[0]
            == 201
        )
    finally:
        rc = server.stop()
    assert rc in (0, -15)
    assert "store closed" in server.log()
    store = securecmr.Store.open(tmp_path / "s", passphrase=PASS)
    try:
        report = store.audit.verify()
        assert report.unsealed == 0  # the shutdown sealed the tail with a checkpoint
        actions = [r["action"] for r in store.audit.records()]
        assert "collection.create" in actions and "add" in actions
        assert len(store.collection("c")) == 5
    finally:
        store.close()
