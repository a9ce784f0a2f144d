"""The Python client of ``securecmr serve``: the calls and return types of ``Store.session(...)``."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import numpy as np

from .._wire import code_to_wire, hit_from_wire, item_to_wire
from ..errors import ConfigurationError, InputError
from ..store import Hit, Item
from ._http import Transport, multipart

__all__ = ["Client", "RemoteCollection"]


def _seg(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigurationError("a name must be a non-empty string")
    return quote(name, safe="")


def _media(value: Any, what: str) -> tuple[str, bytes]:
    """(filename, bytes) of an image or clip given as a path, bytes or (for images) a PIL image/array."""
    if isinstance(value, bytes | bytearray):
        return what, bytes(value)
    if isinstance(value, str | os.PathLike):
        path = Path(value)
        return path.name, path.read_bytes()
    if what == "image":
        from PIL import Image

        img = value if isinstance(value, Image.Image) else Image.fromarray(np.asarray(value))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return "image.png", buf.getvalue()
    raise InputError(f"{what} must be a path or bytes")


class RemoteCollection:
    """A collection on the server, with the calls of a session's collection."""

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self.name = name
        self._base = f"/v1/collections/{_seg(name)}"

    def __repr__(self) -> str:
        return f"RemoteCollection({self.name!r})"

    def add(self, items: Any, *, store_content: bool = False) -> int:
        """Add items in one request: JSON when none has an image or a clip, else one multipart upload
        carrying every item and its file (the server adds the batch whole or refuses it whole)."""
        items = list(items)
        if not any(it.image is not None or it.video is not None for it in items):
            body = {"items": [item_to_wire(it) for it in items], "store_content": bool(store_content)}
            return int(self._client._t.request("POST", f"{self._base}/items", json_body=body)["added"])
        if store_content:
            raise InputError("store_content=True is not available for image or clip uploads over HTTP")
        metas: list[dict[str, Any]] = []
        files: dict[str, tuple[str, bytes, str]] = {}
        for i, it in enumerate(items):
            plain = Item(
                it.id,
                text=it.text,
                labels=it.labels,
                attrs=it.attrs,
                ref=it.ref,
                vectors=it.vectors,
                codes=it.codes,
            )
            meta = item_to_wire(plain)
            for kind in ("image", "video"):
                value = getattr(it, kind)
                if value is not None:
                    part = f"file{i}"
                    fname, data = _media(value, kind)
                    files[part] = (fname, data, "application/octet-stream")
                    meta[kind] = part
            metas.append(meta)
        body_bytes, ctype = multipart({"items": json.dumps(metas)}, files)
        out = self._client._t.request("POST", f"{self._base}/items", body=body_bytes, content_type=ctype)
        return int(out["added"])

    def search(
        self,
        *,
        text: str | None = None,
        image: Any = None,
        video: Any = None,
        vector: Any = None,
        code: Any = None,
        k: int = 10,
        modality: str | None = None,
        query_modality: str | None = None,
    ) -> list[Hit]:
        """Search by exactly one of text, image, video (clip), vector or packed code."""
        given = [
            n
            for n, v in (
                ("text", text),
                ("image", image),
                ("video", video),
                ("vector", vector),
                ("code", code),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ConfigurationError("give exactly one of text=, image=, video=, vector=, code=")
        if image is not None or video is not None:
            kind = "image" if image is not None else "video"
            fname, data = _media(image if image is not None else video, kind)
            fields = {"k": str(k)}
            if modality is not None:
                fields["modality"] = modality
            body, ctype = multipart(fields, {kind: (fname, data, "application/octet-stream")})
            out = self._client._t.request("POST", f"{self._base}/search", body=body, content_type=ctype)
        else:
            req: dict[str, Any] = {"k": k}
            if text is not None:
                req["text"] = text
            elif vector is not None:
                req["vector"] = np.asarray(vector, dtype=np.float32).ravel().tolist()
            else:
                req["code"] = code_to_wire(np.asarray(code, dtype=np.uint8).ravel())
            if modality is not None:
                req["modality"] = modality
            if query_modality is not None:
                req["query_modality"] = query_modality
            out = self._client._t.request("POST", f"{self._base}/search", json_body=req)
        return [hit_from_wire(h) for h in out["hits"]]

    def get(self, item_id: str | int) -> Hit:
        return hit_from_wire(
            self._client._t.request("POST", f"{self._base}/items/get", json_body={"id": item_id})
        )

    @staticmethod
    def _ids(ids: Any) -> list[Any]:
        return [ids] if isinstance(ids, str | int) else list(ids)

    def delete(self, ids: Any) -> int:
        out = self._client._t.request("POST", f"{self._base}/items/delete", json_body={"ids": self._ids(ids)})
        return int(out["deleted"])

    def hold(self, ids: Any) -> int:
        out = self._client._t.request("POST", f"{self._base}/items/hold", json_body={"ids": self._ids(ids)})
        return int(out["held"])

    def release(self, ids: Any) -> int:
        out = self._client._t.request(
            "POST", f"{self._base}/items/release", json_body={"ids": self._ids(ids)}
        )
        return int(out["released"])

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self._client._t.request("GET", self._base)
        return out


class Client:
    """A session on a remote store: ``Client(url, token).collection("x").search(text=..., k=5)``.

    Refusals raise the same :mod:`securecmr.errors` classes as in process (the server sends the
    class name in its problem document); throttling errors carry ``retry_after`` seconds.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 60.0, ca_file: str | None = None) -> None:
        self._t = Transport(url, token, timeout=timeout, ca_file=ca_file)
        self._me: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Client({self._t.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._t.close()

    def whoami(self) -> dict[str, Any]:
        out: dict[str, Any] = self._t.request("GET", "/v1/me")
        self._me = out
        return out

    @property
    def user(self) -> str:
        return str((self._me or self.whoami())["user"])

    @property
    def role(self) -> str:
        return str((self._me or self.whoami())["role"])

    @property
    def tenant(self) -> str | None:
        t = (self._me or self.whoami())["tenant"]
        return None if t is None else str(t)

    # ------------------------------------------------------------------ collections
    def collections(self) -> list[str]:
        return list(self._t.request("GET", "/v1/collections")["collections"])

    def collection(self, name: str) -> RemoteCollection:
        """A handle on a collection (the server checks it on each call)."""
        return RemoteCollection(self, name)

    def create_collection(
        self,
        name: str,
        *,
        bits: int = 64,
        protection: str = "salted+encrypted",
        ttl_hours: float | None = None,
        policy: str | None = None,
    ) -> RemoteCollection:
        body: dict[str, Any] = {"name": name, "bits": bits, "protection": protection}
        if ttl_hours is not None:
            body["ttl_hours"] = ttl_hours
        if policy is not None:
            body["policy"] = policy
        self._t.request("POST", "/v1/collections", json_body=body)
        return RemoteCollection(self, name)

    # ------------------------------------------------------------------ users (admin)
    def users(self) -> list[dict[str, Any]]:
        return list(self._t.request("GET", "/v1/users")["users"])

    def create_user(
        self,
        name: str,
        role: str = "reader",
        tenant: str | None = None,
        attrs: dict[str, Any] | None = None,
        *,
        ttl_hours: float | None = None,
    ) -> str:
        body: dict[str, Any] = {"name": name, "role": role, "tenant": tenant, "attrs": attrs}
        if ttl_hours is not None:
            body["ttl_hours"] = ttl_hours
        return str(self._t.request("POST", "/v1/users", json_body=body)["token"])

    def revoke_user(self, name: str) -> None:
        self._t.request("POST", f"/v1/users/{_seg(name)}/revoke")

    def reissue_token(self, name: str) -> str:
        return str(self._t.request("POST", f"/v1/users/{_seg(name)}/token")["token"])

    # ------------------------------------------------------------------ audit and monitor
    def audit_verify(self) -> dict[str, Any]:
        out: dict[str, Any] = self._t.request("GET", "/v1/audit/verify")
        return out

    def audit_head(self) -> dict[str, Any]:
        out: dict[str, Any] = self._t.request("GET", "/v1/audit/head")
        return out

    def audit_records(self, **filters: Any) -> list[dict[str, Any]]:
        from urllib.parse import urlencode

        q = urlencode({k: v for k, v in filters.items() if v is not None})
        return list(self._t.request("GET", "/v1/audit/records" + (f"?{q}" if q else ""))["records"])

    def export_audit(self, out: IO[str]) -> int:
        """Write the verified audit log as JSON lines to ``out``; returns the record count."""
        data = self._t.request("GET", "/v1/audit/export", raw=True).decode()
        out.write(data)
        return data.count("\n")

    def monitor_report(self, *, all_principals: bool = False) -> list[dict[str, Any]]:
        path = "/v1/monitor/report" + ("?all=1" if all_principals else "")
        return list(self._t.request("GET", path)["principals"])

    def monitor_alerts(self) -> list[dict[str, Any]]:
        return list(self._t.request("GET", "/v1/monitor/alerts")["alerts"])

    def unblock(self, principal: str, *, reason: str) -> None:
        self._t.request("POST", "/v1/monitor/unblock", json_body={"user": principal, "reason": reason})
