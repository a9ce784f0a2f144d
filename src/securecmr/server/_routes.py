"""The ``/v1`` API: every endpoint opens the caller's session from its bearer token and makes
exactly the session call an in-process program would make, so access control, audit and the
query monitor are the same path."""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .._wire import code_from_wire, hit_to_wire, item_from_wire, vector_from_wire
from ..errors import AuditIntegrityError, AuthenticationError, ConfigurationError, InputError
from ..store import Item
from ._limits import Limits
from ._middleware import BodyProblem
from ._problems import HTTPProblem
from ._runner import StoreRunner
from ._uploads import checked_image, checked_video

__all__ = ["Service", "build_router"]

_QUERY_FIELDS = ("text", "vector", "code")
_SEARCH_KEYS = {"text", "vector", "code", "k", "modality", "query_modality"}


class Service:
    """The store, its limits and the thread that runs its calls."""

    def __init__(self, store: Any, limits: Limits, runner: StoreRunner) -> None:
        self.store = store
        self.limits = limits
        self.runner = runner
        self.ready = True

    async def run(
        self, request: Request, op: Callable[[Any], Any], *, write: bool = False, inline: bool = False
    ) -> Any:
        """Authenticate the bearer token and run ``op(session)`` on the store thread."""
        token = _bearer(request)

        def call() -> Any:
            session = self.store.session(token)
            request.scope.setdefault("state", {})["principal"] = session.user
            return op(session)

        return await self.runner.call(call, write=write, inline=inline)


def _bearer(request: Request) -> str:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("missing bearer token: send 'Authorization: Bearer <token>'")
    return token.strip()


async def _json(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPProblem(415, "unsupported-media-type", "send the body as application/json")
    raw = await request.body()
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        raise HTTPProblem(400, "malformed-json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HTTPProblem(400, "malformed-json", "the body must be a JSON object")
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _k(value: Any, limits: Limits, *, text: bool = False) -> int:
    if text and isinstance(value, str) and value.strip().isdigit():  # multipart fields are text
        value = int(value)
    if type(value) is not int or value < 1:
        raise ConfigurationError("k must be a positive integer")
    if value > limits.max_k:
        raise HTTPProblem(422, "k-too-large", f"k is at most {limits.max_k} on this server")
    return value


def _batch(n: int, limits: Limits) -> None:
    if n > limits.max_batch:
        raise HTTPProblem(413, "batch-too-large", f"at most {limits.max_batch} per request; split the batch")


def _ids(body: dict[str, Any], limits: Limits) -> list[str | int]:
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids:
        raise InputError("ids must be a non-empty list of ids")
    _batch(len(ids), limits)
    if not all(type(i) in (str, int) for i in ids):
        raise InputError("every id must be a string or an integer")
    return ids


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InputError(f"{key} must be a string")
    return value


async def _form(request: Request, limits: Limits) -> Any:
    try:
        return await request.form(
            max_files=limits.max_batch, max_fields=limits.max_batch + 16, max_part_size=limits.max_body_bytes
        )
    except (HTTPProblem, BodyProblem):
        raise
    except Exception:
        raise HTTPProblem(400, "malformed-multipart", "the multipart body could not be parsed") from None


async def _media_items(form: Any, limits: Limits) -> list[Item]:
    """The items of a multipart add: ``items`` (a JSON list, each item naming its file part in
    ``"image"`` or ``"video"``) with the files, or ``item`` (one item's JSON) with one ``image`` or
    ``video`` file. Every image is checked before anything is added; clips come back as bytes."""
    single = form.get("item")
    many = form.get("items")
    if (single is None) == (many is None):
        raise InputError("send the field 'items' (a JSON list) or 'item' (one item's JSON), not both")
    raw = single if single is not None else many
    if not isinstance(raw, str):
        raise InputError("'items'/'item' must be a text field holding JSON")
    try:
        meta = json.loads(raw, parse_constant=_no_constant)
    except ValueError:
        raise HTTPProblem(400, "malformed-json", "the 'items'/'item' field is not valid JSON") from None
    if single is not None:
        if not isinstance(meta, dict):
            raise InputError("'item' must be one item's JSON object")
        if "image" in meta or "video" in meta:
            raise InputError("with 'item', upload the file as the part 'image' or 'video'")
        meta = [{**meta, **{k: k for k in ("image", "video") if form.get(k) is not None}}]
    if not isinstance(meta, list) or not meta:
        raise InputError("'items' must be a non-empty JSON list")
    _batch(len(meta), limits)
    out: list[Item] = []
    used: set[str] = set()
    for i, obj in enumerate(meta):
        if not isinstance(obj, dict):
            raise InputError(f"item {i} must be a JSON object")
        refs = {k: obj[k] for k in ("image", "video") if k in obj}
        item = item_from_wire({k: v for k, v in obj.items() if k not in ("image", "video")}, i)
        if len(refs) > 1:
            raise InputError(f"item {i}: give an image or a video, not both")
        for kind, part in refs.items():
            if not isinstance(part, str) or part in used or part in ("item", "items"):
                raise InputError(f"item {i}: {kind} must name a file part of its own")
            used.add(part)
            data = await _upload(form, part)
            if data is None:
                raise InputError(f"item {i}: no file part named {part!r}")
            if kind == "image":
                item.image = checked_image(data, limits)
            else:
                item.video = data
        if (
            item.image is None
            and item.video is None
            and item.text is None
            and not item.vectors
            and not item.codes
        ):
            raise InputError(f"item {i} has nothing to encode: upload an image or a video, or give text")
        out.append(item)
    return out


async def _upload(form: Any, key: str) -> bytes | None:
    part = form.get(key)
    if part is None:
        return None
    if isinstance(part, str):
        raise InputError(f"{key} must be an uploaded file, not a text field")
    data: bytes = await part.read()
    return data


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def build_router(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1")
    limits = service.limits

    @router.get("/me", summary="The caller's user, role, tenant and permissions")
    async def me(request: Request) -> Any:
        return await service.run(request, lambda s: s.whoami())

    # ------------------------------------------------------------------ collections
    @router.get("/collections", summary="The collections of the caller's tenant")
    async def list_collections(request: Request) -> Any:
        return {"collections": await service.run(request, lambda s: s.collections())}

    @router.post("/collections", status_code=201, summary="Create a collection (manage permission)")
    async def create_collection(request: Request) -> Any:
        body = await _json(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise InputError("name must be a string")
        kwargs: dict[str, Any] = {}
        if "bits" in body:
            if type(body["bits"]) is not int:
                raise ConfigurationError("bits must be an integer")
            kwargs["bits"] = body["bits"]
        if "protection" in body:
            kwargs["protection"] = body["protection"]
        if body.get("ttl_hours") is not None:
            ttl = body["ttl_hours"]
            if type(ttl) not in (int, float) or not math.isfinite(ttl):
                raise ConfigurationError("ttl_hours must be a finite number")
            kwargs["ttl_hours"] = float(ttl)
        if body.get("policy") is not None:
            kwargs["policy"] = _optional_str(body, "policy")
        unknown = set(body) - {"name", "bits", "protection", "ttl_hours", "policy"}
        if unknown:
            raise InputError(f"unknown fields {sorted(unknown)}")
        await service.run(request, lambda s: s.create_collection(name, **kwargs), write=True)
        return {"name": name}

    @router.get("/collections/{name}", summary="Size and configuration of a collection (manage)")
    async def collection_stats(name: str, request: Request) -> Any:
        return await service.run(request, lambda s: s.collection(name).stats())

    # ------------------------------------------------------------------ items
    @router.post("/collections/{name}/items", status_code=201, summary="Add items (JSON or multipart)")
    async def add_items(name: str, request: Request) -> Any:
        mtype = _media_type(request)
        store_content = False
        if mtype == "multipart/form-data":
            form = await _form(request, limits)
            media = await _media_items(form, limits)
            with contextlib.ExitStack() as stack:
                for item in media:  # clips go to private temporary files for the encoder
                    if isinstance(item.video, bytes):
                        item.video = str(stack.enter_context(checked_video(item.video, limits)))
                count = await service.run(request, lambda s: s.collection(name).add(media), write=True)
            return {"added": int(count)}
        if mtype != "application/json":
            raise HTTPProblem(
                415, "unsupported-media-type", "send items as application/json or multipart/form-data"
            )
        body = await _json(request)
        raw_items = body.get("items")
        if not isinstance(raw_items, list) or not raw_items:
            raise InputError("items must be a non-empty list")
        _batch(len(raw_items), limits)
        items: list[Item] = [item_from_wire(obj, i) for i, obj in enumerate(raw_items)]
        if "store_content" in body:
            if not isinstance(body["store_content"], bool):
                raise InputError("store_content must be true or false")
            store_content = body["store_content"]
        count = await service.run(
            request, lambda s: s.collection(name).add(items, store_content=store_content), write=True
        )
        return {"added": int(count)}

    @router.post("/collections/{name}/items/get", summary="One item's record (labels, attrs, ref)")
    async def get_item(name: str, request: Request) -> Any:
        body = await _json(request)
        item_id = body.get("id")
        if type(item_id) not in (str, int):
            raise InputError("id must be a string or an integer")
        hit = await service.run(request, lambda s: s.collection(name).get(item_id))
        return hit_to_wire(hit)

    @router.post("/collections/{name}/items/delete", summary="Delete items by id")
    async def delete_items(name: str, request: Request) -> Any:
        ids = _ids(await _json(request), limits)
        n = await service.run(request, lambda s: s.collection(name).delete(ids), write=True)
        return {"deleted": int(n)}

    @router.post("/collections/{name}/items/hold", summary="Put items under legal hold")
    async def hold_items(name: str, request: Request) -> Any:
        ids = _ids(await _json(request), limits)
        return {"held": await service.run(request, lambda s: s.collection(name).hold(ids), write=True)}

    @router.post("/collections/{name}/items/release", summary="Release a legal hold")
    async def release_items(name: str, request: Request) -> Any:
        ids = _ids(await _json(request), limits)
        return {"released": await service.run(request, lambda s: s.collection(name).release(ids), write=True)}

    # ------------------------------------------------------------------ search
    @router.post("/collections/{name}/search", summary="Search by text, vector, code, image or clip")
    async def search(name: str, request: Request) -> Any:
        kwargs: dict[str, Any] = {}
        if _media_type(request) == "multipart/form-data":
            form = await _form(request, limits)
            image = await _upload(form, "image")
            video = await _upload(form, "video")
            if (image is None) == (video is None):
                raise InputError("upload exactly one file, as 'image' or 'video'")
            kwargs["k"] = _k(form.get("k", "10"), limits, text=True)
            modality = form.get("modality")
            if modality:
                kwargs["modality"] = str(modality)
            if image is not None:
                kwargs["image"] = checked_image(image, limits)
                hits = await service.run(request, lambda s: s.collection(name).search(**kwargs))
            elif video is not None:
                with checked_video(video, limits) as path:
                    kwargs["video"] = str(path)
                    hits = await service.run(request, lambda s: s.collection(name).search(**kwargs))
            return {"hits": [hit_to_wire(h) for h in hits]}
        body = await _json(request)
        unknown = set(body) - _SEARCH_KEYS
        if unknown:
            raise InputError(f"unknown fields {sorted(unknown)}; a search takes {sorted(_SEARCH_KEYS)}")
        given = [key for key in _QUERY_FIELDS if body.get(key) is not None]
        if len(given) != 1:
            raise InputError("give exactly one of text, vector or code (images and clips go as multipart)")
        (key,) = given
        if key == "text":
            if not isinstance(body["text"], str):
                raise InputError("text must be a string")
            kwargs["text"] = body["text"]
        elif key == "vector":
            kwargs["vector"] = vector_from_wire(body["vector"])
        else:
            kwargs["code"] = code_from_wire(body["code"])
        kwargs["k"] = _k(body.get("k", 10), limits)
        for opt in ("modality", "query_modality"):
            if body.get(opt) is not None:
                kwargs[opt] = _optional_str(body, opt)
        hits = await service.run(request, lambda s: s.collection(name).search(**kwargs), inline=key != "text")
        return {"hits": [hit_to_wire(h) for h in hits]}

    # ------------------------------------------------------------------ users
    @router.get("/users", summary="Users of the admin's tenant (admin)")
    async def list_users(request: Request) -> Any:
        return {"users": await service.run(request, lambda s: s.users())}

    @router.post("/users", status_code=201, summary="Create a user and return its token once (admin)")
    async def create_user(request: Request) -> Any:
        body = await _json(request)
        unknown = set(body) - {"name", "role", "tenant", "attrs", "ttl_hours"}
        if unknown:
            raise InputError(f"unknown fields {sorted(unknown)}")
        name = body.get("name")
        role = body.get("role", "reader")
        if not isinstance(name, str) or not isinstance(role, str):
            raise InputError("name and role must be strings")
        kwargs: dict[str, Any] = {"tenant": _optional_str(body, "tenant"), "attrs": body.get("attrs")}
        if body.get("ttl_hours") is not None:
            ttl = body["ttl_hours"]
            if type(ttl) not in (int, float) or not math.isfinite(ttl):
                raise ConfigurationError("ttl_hours must be a finite number")
            kwargs["ttl_hours"] = float(ttl)
        token = await service.run(request, lambda s: s.create_user(name, role, **kwargs), write=True)
        return JSONResponse({"name": name, "token": token}, status_code=201)

    @router.post("/users/{user}/revoke", summary="Revoke every token of a user (admin)")
    async def revoke_user(user: str, request: Request) -> Any:
        await service.run(request, lambda s: s.revoke_user(user), write=True)
        return {"revoked": user}

    @router.post("/users/{user}/token", status_code=201, summary="Issue a new token to a user (admin)")
    async def reissue(user: str, request: Request) -> Any:
        token = await service.run(request, lambda s: s.reissue_token(user), write=True)
        return JSONResponse({"name": user, "token": token}, status_code=201)

    # ------------------------------------------------------------------ audit
    @router.get("/audit/verify", summary="Verify the audit chain (read_audit)")
    async def audit_verify(request: Request) -> Any:
        def op(s: Any) -> Any:
            log = s.audit
            try:
                return log.verify().to_dict()
            except AuditIntegrityError as exc:
                return {"ok": False, "detail": str(exc)}

        return await service.run(request, op)

    @router.get(
        "/audit/head",
        summary="The audit head: record count, chain hash (signed where the store signs heads)",
    )
    async def audit_head(request: Request) -> Any:
        def op(s: Any) -> Any:
            log = s.audit
            head = log.head
            if callable(head):  # a store with signed heads: the document to keep outside the store
                return dict(head())
            return {"records": len(log), "head": head}

        return await service.run(request, op)

    @router.get("/audit/records", summary="Audit records, newest first, filtered (read_audit)")
    async def audit_records(request: Request) -> Any:
        q = request.query_params
        user, action, coll = q.get("user"), q.get("action"), q.get("collection")
        since = _float_param(q.get("since"), "since")
        until = _float_param(q.get("until"), "until")
        limit = min(int(_float_param(q.get("limit"), "limit") or 200), 5000)

        def op(s: Any) -> Any:
            out: list[dict[str, Any]] = []
            for rec in s.audit.records():
                if user and rec.get("principal") != user:
                    continue
                if action and rec.get("action") != action:
                    continue
                if coll and rec.get("collection") != coll:
                    continue
                ts = float(rec.get("time", rec.get("ts", 0.0)) or 0.0)
                if since is not None and ts < since:
                    continue
                if until is not None and ts > until:
                    continue
                out.append(rec)
            return out[::-1][:limit]

        return {"records": await service.run(request, op)}

    @router.get("/audit/export", summary="Verify, then download the audit log as JSON lines (export)")
    async def audit_export(request: Request) -> Any:
        def op(s: Any) -> bytes:
            buf = io.StringIO()
            s.export_audit(buf)
            return buf.getvalue().encode()

        data = await service.run(request, op)
        chunk = 1 << 16

        async def body() -> Any:
            for i in range(0, len(data), chunk):
                yield data[i : i + chunk]

        return StreamingResponse(
            body(),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
        )

    # ------------------------------------------------------------------ monitor
    @router.get("/monitor/report", summary="Principals the query monitor flags (read_audit)")
    async def monitor_report(request: Request) -> Any:
        every = request.query_params.get("all") in ("1", "true")
        return {"principals": await service.run(request, lambda s: s.monitor_report(all_principals=every))}

    @router.get("/monitor/alerts", summary="The monitor's alerts from the audit log (read_audit)")
    async def monitor_alerts(request: Request) -> Any:
        def op(s: Any) -> Any:
            return [r for r in s.audit.records() if r.get("action") == "monitor.alert"][::-1][:1000]

        return {"alerts": await service.run(request, op)}

    @router.post("/monitor/unblock", summary="Lift a block, with a reason that is audited (admin)")
    async def unblock(request: Request) -> Any:
        body = await _json(request)
        user, reason = body.get("user"), body.get("reason")
        if not isinstance(user, str) or not isinstance(reason, str):
            raise InputError("user and reason must be strings")
        await service.run(request, lambda s: s.unblock(user, reason=reason), write=True)
        return Response(status_code=204)

    return router


def _float_param(value: str | None, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except ValueError:
        raise InputError(f"{name} must be a number") from None
    if not math.isfinite(out):
        raise InputError(f"{name} must be a finite number")
    return out
