"""More of the service: TLS on loopback, the clip-length limit, throttling as 429 with Retry-After,
and (with the exported models) text, image and clip calls through the client."""

from __future__ import annotations

import datetime
import io
import ssl
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest
from _serve_helpers import call, running
from _store_helpers import PASS

import securecmr
from securecmr.client import Client
from securecmr.server._problems import problem_for


def _clip(path: Path, seconds: float, fps: int = 4) -> Path:
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=fps)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    for i in range(int(seconds * fps)):
        a = np.full((48, 64, 3), (i * 9) % 255, np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_tls_on_loopback(tmp_path: Path) -> None:
    store = securecmr.Store.create(tmp_path / "s", passphrase=PASS)
    token = store.create_user("root", role="admin")
    store.close()
    cert, key = _self_signed(tmp_path)
    from _serve_helpers import start

    server = start(tmp_path / "s", PASS, "--tls-cert", str(cert), "--tls-key", str(key), wait=False)
    try:
        url = f"https://127.0.0.1:{server.port}"
        ctx = ssl.create_default_context(cafile=str(cert))
        import time

        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/readyz", context=ctx, timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or server.proc.poll() is not None:
                    raise AssertionError(server.log()[-2000:]) from None
                time.sleep(0.2)
        with Client(url, token, ca_file=str(cert)) as c:
            assert c.whoami()["user"] == "root"
        with pytest.raises(OSError):  # an untrusted certificate is refused by the client
            Client(url, token).whoami()
        with pytest.raises(OSError):  # plain HTTP to the TLS port gets no API
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5).read()
    finally:
        server.stop()


def test_clip_length_limit_and_throttling_problem(tmp_path: Path) -> None:
    store = securecmr.Store.create(tmp_path / "s", passphrase=PASS)
    token = store.create_user("root", role="admin")
    store.create_collection("c")
    store.close()
    long_clip = _clip(tmp_path / "long.mp4", 4.0).read_bytes()
    with running(tmp_path / "s", PASS, "--max-video-seconds", "2") as server:
        body = (
            b'--B\r\nContent-Disposition: form-data; name="item"\r\n\r\n{"id": "v1"}\r\n'
            b'--B\r\nContent-Disposition: form-data; name="video"; filename="long.mp4"\r\n\r\n'
            + long_clip
            + b"\r\n--B--\r\n"
        )
        status, _, doc = call(
            server,
            "POST",
            "/v1/collections/c/items",
            token=token,
            body=body,
            content_type="multipart/form-data; boundary=B",
        )
        assert status == 413 and doc["type"].endswith("video-too-long")
        assert call(server, "GET", "/v1/collections/c", token=token)[2]["items"] == 0
    status, body_bytes, headers = problem_for(
        securecmr.errors.ThrottledError("too many searches: this account is throttled; retry in 10 s")
    )
    assert status == 429 and headers["Retry-After"] == "10" and b'"ThrottledError"' in body_bytes


@pytest.mark.models
def test_text_image_and_clip_through_the_client(models_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    from securecmr.encoders._samples import sample_images

    imgs = sample_images()
    names = sorted(imgs)[:3]
    store = securecmr.Store.create(tmp_path / "s", passphrase=PASS)
    token = store.create_user("cura", role="curator")
    store.create_collection("media")
    store.close()
    clip = _clip(tmp_path / "clip.mp4", 2.0)
    with running(tmp_path / "s", PASS) as server, Client(server.url, token) as client:
        coll = client.collection("media")
        batch = []
        for name in names:
            buf = io.BytesIO()
            Image.fromarray(imgs[name]).save(buf, format="PNG")
            batch.append(securecmr.Item(f"img-{name}", image=buf.getvalue(), ref=f"{name}.png"))
        batch.append(securecmr.Item("clip-1", video=clip, ref="clip.mp4"))
        batch.append(securecmr.Item("note-1", text="a short note about a photograph"))
        assert coll.add(batch) == len(names) + 2  # one multipart request, added whole
        with pytest.raises(securecmr.errors.DuplicateItemError):
            coll.add([securecmr.Item("new-1", image=imgs[names[0]]), securecmr.Item("clip-1", video=clip)])
        with pytest.raises(securecmr.errors.ItemNotFoundError):
            coll.get("new-1")  # refused whole: nothing of that batch was added
        hits = coll.search(image=Image.fromarray(imgs[names[1]]), k=2)
        assert hits[0].id == f"img-{names[1]}" and hits[0].ref == f"{names[1]}.png"
        assert coll.search(video=clip, k=1)[0].id == "clip-1"
        assert len(coll.search(text="a photograph", k=3)) == 3
