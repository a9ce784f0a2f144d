"""Abuse of a live server on loopback: oversize, malformed, truncated and mistyped bodies, slow
clients, bad tokens and path tricks each get a specific 4xx (or a closed connection), nothing is
stored, and the server keeps serving."""

from __future__ import annotations

import asyncio
import base64
import io
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _serve_helpers import Server, call, start
from _store_helpers import PASS, items

import securecmr
from securecmr._wire import item_to_wire

LIMITS = (
    "--max-body-mb",
    "0.25",
    "--max-batch",
    "5",
    "--max-k",
    "50",
    "--max-image-pixels",
    "1000000",
    "--client-timeout",
    "1.5",
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("serve-abuse")
    store = securecmr.Store.create(tmp / "store", passphrase=PASS)
    tokens = {
        "admin": store.create_user("root", role="admin"),
        "curator": store.create_user("cora", role="curator"),
        "revoked": store.create_user("rex", role="reader"),
        "expiring": store.create_user("eve", role="reader", ttl_hours=1.0 / 3600.0),
    }
    store.create_collection("c").add(items(3))
    store.revoke_user("rex")
    store.close()
    server = start(tmp / "store", PASS, *LIMITS)
    try:
        yield {"server": server, "tokens": tokens}
    finally:
        server.stop()


def _size(world: dict[str, Any]) -> int:
    status, _, body = call(world["server"], "GET", "/v1/collections/c", token=world["tokens"]["admin"])
    assert status == 200
    return int(body["items"])


def _adds(world: dict[str, Any]) -> int:
    status, _, body = call(
        world["server"], "GET", "/v1/audit/records?action=add&limit=5000", token=world["tokens"]["admin"]
    )
    assert status == 200
    return sum(1 for r in body["records"] if r["outcome"] == "allowed")


@pytest.fixture
def unchanged(world: dict[str, Any]) -> Iterator[None]:
    """Nothing stored and no write audited by the test; the server still healthy afterwards."""
    before = (_size(world), _adds(world))
    yield
    assert call(world["server"], "GET", "/healthz")[0] == 200
    assert (_size(world), _adds(world)) == before


def _raw(server: Server, data: bytes, *, read: bool = True, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
        return out


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


def _post_items(world: dict[str, Any], **kw: Any) -> tuple[int, dict[str, str], Any]:
    return call(world["server"], "POST", "/v1/collections/c/items", token=world["tokens"]["curator"], **kw)


# ---------------------------------------------------------------------------------------- bodies
@pytest.mark.usefixtures("unchanged")
def test_oversize_body_declared(world: dict[str, Any]) -> None:
    big = {"items": [item_to_wire(i) for i in items(2, seed=9)], "pad": "x" * 300_000}
    status, headers, body = _post_items(world, json_body=big)
    assert status == 413 and body["type"].endswith("body-too-large")
    assert headers["content-type"] == "application/problem+json"


@pytest.mark.usefixtures("unchanged")
def test_oversize_body_streamed_without_length(world: dict[str, Any]) -> None:
    token = world["tokens"]["curator"]
    head = (
        "POST /v1/collections/c/items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6)) + b"0\r\n\r\n"
    raw = _raw(world["server"], head + body)
    assert _status(raw) == 413 and b"body-too-large" in raw


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b'{"items": [', "malformed-json"),
        (b"[1, 2]", "malformed-json"),
        (b'{"items": [{"id": "a", "codes": {"image": [NaN]}}]}', "malformed-json"),
        (b"\xff\xfe garbage", "malformed-json"),
    ],
)
def test_malformed_json(world: dict[str, Any], payload: bytes, kind: str) -> None:
    status, _, body = _post_items(world, body=payload, content_type="application/json")
    assert status == 400 and body["type"].endswith(kind)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("obj", "error"),
    [
        ({"items": []}, "InputError"),
        ({"items": [{"id": 1.5}]}, "InputError"),
        ({"items": [{"id": "a", "bogus": 1}]}, "InputError"),
        ({"items": [{"id": "a", "codes": {"image": "@@@"}}]}, "InputError"),
        ({"items": [{"id": "a", "codes": {"image": [300]}}]}, "InputError"),
        ({"items": [{"id": "a", "codes": {"image": base64.b64encode(b"abc").decode()}}]}, "ShapeError"),
        (
            {"items": [{"id": "ok-1", "codes": {"image": [0] * 8}}, {"id": "bad", "codes": {"image": [1]}}]},
            "ShapeError",
        ),
    ],
)
def test_invalid_items_are_refused_whole(world: dict[str, Any], obj: Any, error: str) -> None:
    status, _, body = _post_items(world, json_body=obj)
    assert status == 422 and body["error"] == error


@pytest.mark.usefixtures("unchanged")
def test_batch_and_k_limits(world: dict[str, Any]) -> None:
    status, _, body = _post_items(world, json_body={"items": [item_to_wire(i) for i in items(6, seed=4)]})
    assert status == 413 and body["type"].endswith("batch-too-large")
    status, _, body = call(
        world["server"],
        "POST",
        "/v1/collections/c/search",
        token=world["tokens"]["curator"],
        json_body={"code": [0] * 8, "k": 51},
    )
    assert status == 422 and body["type"].endswith("k-too-large")
    for bad_k in (0, -1, 2.5, "3", True):
        status, _, body = call(
            world["server"],
            "POST",
            "/v1/collections/c/search",
            token=world["tokens"]["curator"],
            json_body={"code": [0] * 8, "k": bad_k},
        )
        assert status == 422 and body["error"] == "ConfigurationError", bad_k


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "ctype", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
def test_wrong_content_types(world: dict[str, Any], ctype: str | None) -> None:
    status, _, body = _post_items(world, body=b'{"items": []}', content_type=ctype)
    assert status == 415 and body["type"].endswith("unsupported-media-type")


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "XyZ") -> bytes:
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.usefixtures("unchanged")
def test_malformed_and_truncated_multipart(world: dict[str, Any]) -> None:
    ctype = "multipart/form-data; boundary=XyZ"
    good = _multipart([("item", None, b'{"id": "m1"}'), ("image", "a.png", _png(8, 8))])
    for broken in (good[: len(good) // 2], b"--nope\r\n\r\n", good.replace(b"--XyZ--", b"")):
        status, _, body = _post_items(world, body=broken, content_type=ctype)
        assert status in (400, 422), (status, body)
        assert body["type"].endswith(("malformed-multipart", "invalid-input"))
    status, _, body = _post_items(world, body=good, content_type="multipart/form-data")  # no boundary
    assert status == 400 and body["type"].endswith("malformed-multipart")


@pytest.mark.usefixtures("unchanged")
def test_uploads_checked_before_any_model(world: dict[str, Any]) -> None:
    ctype = "multipart/form-data; boundary=XyZ"
    cases = [
        ([("item", None, b'{"id": "m2"}'), ("image", "big.png", _png(2000, 1000))], 413, "image-too-large"),
        (
            [("item", None, b'{"id": "m3"}'), ("image", "junk.png", b"\x89PNG\r\n\x1a\n garbage")],
            422,
            "invalid-input",
        ),
        ([("item", None, b'{"id": "m4"}'), ("image", "empty.png", b"")], 422, "invalid-input"),
        (
            [("item", None, b'{"id": "m5"}'), ("video", "clip.mp4", b"not a video at all")],
            422,
            "invalid-input",
        ),
        ([("item", None, b'{"id": "m6"}')], 422, "invalid-input"),
        ([("item", None, b"{oops"), ("image", "a.png", _png(8, 8))], 400, "malformed-json"),
        ([("item", None, b'{"id": "m7"}'), ("image", None, b"text, not a file")], 422, "invalid-input"),
    ]
    many = b'[{"id": "a1", "image": "f1"}, {"id": "a2", "image": "f2"}]'
    cases += [  # a batch is checked whole: one bad or missing file and nothing of it is added
        (
            [("items", None, many), ("f1", "ok.png", _png(8, 8)), ("f2", "big.png", _png(2000, 1000))],
            413,
            "image-too-large",
        ),
        ([("items", None, many), ("f1", "ok.png", _png(8, 8))], 422, "invalid-input"),
        (
            [("items", None, b'[{"id": "a3", "image": "f1", "video": "f1"}]'), ("f1", "a.png", _png(8, 8))],
            422,
            "invalid-input",
        ),
        (
            [
                ("items", None, b'[{"id": "a4", "image": "f1"}, {"id": "a5", "image": "f1"}]'),
                ("f1", "a.png", _png(8, 8)),
            ],
            422,
            "invalid-input",
        ),
        ([("items", None, many), ("item", None, b'{"id": "x"}')], 422, "invalid-input"),
    ]
    for parts, status_want, kind in cases:
        status, _, body = _post_items(world, body=_multipart(parts), content_type=ctype)
        assert (status, body["type"].split(":")[-1]) == (status_want, kind), (parts[-1][:2], body)
    status, _, body = call(
        world["server"],
        "POST",
        "/v1/collections/c/search",
        token=world["tokens"]["curator"],
        body=_multipart([("k", None, b"3"), ("image", "big.png", _png(2000, 1000))]),
        content_type=ctype,
    )
    assert status == 413 and body["type"].endswith("image-too-large")


@pytest.mark.usefixtures("unchanged")
def test_truncated_upload_then_disconnect(world: dict[str, Any]) -> None:
    token = world["tokens"]["curator"]
    body = b'{"items": [' + b'{"id": "t1", "codes": {"image": [1,2,3,4,5,6,7,8]}}' + b"]}"
    head = (
        "POST /v1/collections/c/items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body) + 500}\r\n\r\n"
    ).encode()
    _raw(world["server"], head + body, read=False)  # closes with 500 bytes still owed
    time.sleep(0.5)


# ---------------------------------------------------------------------------------------- slow clients
@pytest.mark.usefixtures("unchanged")
def test_slow_body_gets_408(world: dict[str, Any]) -> None:
    token = world["tokens"]["curator"]
    head = (
        "POST /v1/collections/c/items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 400\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", world["server"].port), timeout=15) as s:
        s.sendall(head + b'{"items": [')
        t0 = time.monotonic()
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
        waited = time.monotonic() - t0
    assert _status(raw) == 408 and b"slow-body" in raw
    assert waited < 10


def test_slow_headers_are_cut_off_and_others_still_served(world: dict[str, Any]) -> None:
    server = world["server"]
    socks = []
    try:
        for _ in range(20):  # a small slowloris: many connections trickling a request head
            s = socket.create_connection(("127.0.0.1", server.port), timeout=15)
            s.sendall(b"GET /v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        assert call(server, "GET", "/healthz")[0] == 200  # others are served meanwhile
        t0 = time.monotonic()
        for s in socks:
            assert s.recv(100) == b""  # closed by the server, no response
        assert time.monotonic() - t0 < 12
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------------------- tokens
def test_bad_tokens_are_401_and_audited(world: dict[str, Any]) -> None:
    server, tokens = world["server"], world["tokens"]
    time.sleep(1.2)  # the expiring token's one second is over
    good = tokens["curator"]
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    cases = {
        "revoked": tokens["revoked"],
        "expired": tokens["expiring"],
        "forged": forged,
        "garbage": "not-a-token",
        "other-store": "v1." + base64.urlsafe_b64encode(b'{"sub":"root"}').decode() + ".AAAA",
    }
    for why, tok in cases.items():
        status, headers, body = call(
            server, "POST", "/v1/collections/c/search", token=tok, json_body={"code": [0] * 8}
        )
        assert status == 401 and body["error"] == "AuthenticationError", why
        assert headers["www-authenticate"].startswith("Bearer")
    for hdr in ({}, {"Authorization": "Basic cm9vdDpyb290"}, {"Authorization": "Bearer "}):
        status, _, body = call(server, "GET", "/v1/me", headers=hdr)
        assert status == 401 and body["error"] == "AuthenticationError"
    status, _, body = call(server, "GET", "/v1/audit/records?action=authenticate", token=tokens["admin"])
    denied = [r for r in body["records"] if r["outcome"] == "denied"]
    assert len(denied) >= len(cases)
    for tok in cases.values():
        assert tok not in server.log()


# ---------------------------------------------------------------------------------------- paths
@pytest.mark.usefixtures("unchanged")
def test_path_tricks(world: dict[str, Any]) -> None:
    server, token = world["server"], world["tokens"]["curator"]
    for path in (
        "/console/static/../../_app.py",
        "/console/static/%2e%2e/%2e%2e/_app.py",
        "/console/static/..%2f..%2f_app.py",
        "/docs/assets/../../../../etc/passwd",
        "/docs/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/v1/../v1/me/../../etc/passwd",
    ):
        raw = _raw(server, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        assert _status(raw) in (400, 404), (path, raw[:200])
        assert b"root:" not in raw and b"def create_app" not in raw
    for name in ("..%2F..%2Fetc", "%2e%2e", "c~x", "other~c", "c%00", "%20c"):
        status, _, body = call(
            server,
            "POST",
            f"/v1/collections/{name}/items",
            token=token,
            json_body={"items": [item_to_wire(items(1, seed=77)[0])]},
        )
        assert status in (404, 422), (name, status, body)
    status, _, body = call(
        server,
        "POST",
        "/v1/collections/c/items",
        token=token,
        json_body={"items": [item_to_wire(items(1, seed=78)[0])]},
        headers={"Origin": "http://evil.example"},
    )
    assert status == 403 and body["type"].endswith("cross-origin")


# ---------------------------------------------------------------------------------------- time limit
def test_request_timeout_never_reports_a_started_write_as_failed() -> None:
    from securecmr.server._problems import HTTPProblem
    from securecmr.server._runner import StoreRunner

    runner = StoreRunner(timeout=0.3)  # margins are wide: a loaded machine may pause the loop for a while
    gate = threading.Event()
    done: list[str] = []

    def slow_write() -> str:
        time.sleep(1.0)
        done.append("write")
        return "committed"

    async def scenario() -> None:
        assert await runner.call(slow_write, write=True) == "committed"  # started: awaited truthfully
        with pytest.raises(HTTPProblem) as err:
            await runner.call(lambda: time.sleep(2.5), write=False)
        assert err.value.status == 503 and err.value.kind == "timeout"
        blocker = asyncio.ensure_future(runner.call(lambda: gate.wait(5.0), write=False))
        await asyncio.sleep(0.05)
        with pytest.raises(HTTPProblem):  # queued behind the blocker past its deadline: never started
            await runner.call(lambda: done.append("late"), write=True)
        gate.set()
        with pytest.raises(HTTPProblem):
            await blocker

    asyncio.run(scenario())
    runner.close()
    assert done == ["write"]


def test_inline_reads_run_only_when_the_store_is_idle() -> None:
    from securecmr.server._runner import StoreRunner

    runner = StoreRunner(timeout=5.0)
    busy = threading.Event()
    release = threading.Event()
    seen: list[tuple[str, str]] = []

    def hold() -> None:
        busy.set()
        release.wait(5.0)

    def where(tag: str) -> None:
        seen.append((tag, threading.current_thread().name))

    async def scenario() -> None:
        await runner.call(lambda: where("idle"), inline=True)
        holder = asyncio.ensure_future(runner.call(hold, write=True))
        while not busy.is_set():
            await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(runner.call(lambda: where("busy"), inline=True))
        await asyncio.sleep(0.05)
        assert not queued.done()  # waits for the write: store calls stay one at a time
        release.set()
        await holder
        await queued
        await runner.call(lambda: where("write"), write=True, inline=True)

    asyncio.run(scenario())
    runner.close()
    me = threading.current_thread().name
    assert seen[0] == ("idle", me)
    assert seen[1][0] == "busy" and seen[1][1].startswith("securecmr-store")
    assert seen[2][0] == "write" and seen[2][1].startswith("securecmr-store")  # writes never inline
