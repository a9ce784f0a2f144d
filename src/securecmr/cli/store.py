"""Store, collection and item commands, named after the Python API they call:

``store create|info``, ``collection create|list|info|drop``, ``ingest``, ``search``, ``get``,
``delete``, ``hold``, ``release``, ``compact``, ``purge``, ``keys rotate``,
``snapshot export|import|verify``.

The passphrase comes from SECURECMR_PASSPHRASE or a prompt, never from the command line. With
SECURECMR_TOKEN set, item commands act as that user (checked and audited); without it, as the
store operator (the passphrase holder, audited as ``@operator``).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import group
from ._common import (
    COLLECTION,
    JSON,
    STORE,
    emit,
    iso,
    open_store,
    parse_pairs,
    passphrase,
    plural,
    session_collection,
    table,
    usage,
)

__all__ = ["read_manifest", "register"]

_MAX_REPORTED = 20  # bad manifest lines listed in one error


class Protection(StrEnum):
    none = "none"
    salted = "salted"
    encrypted = "encrypted"
    salted_encrypted = "salted+encrypted"


class IndexBackend(StrEnum):
    faiss = "faiss"
    brute = "brute"
    milvus = "milvus"


def _manifest_lines(path: Path) -> list[tuple[int, Any]]:
    """(line number, Item) of a JSONL manifest; every bad line is reported at once (up to 20)
    in one ManifestError, and nothing is ingested."""
    import securecmr

    from ..errors import EmptyInputError, ManifestError

    out: list[tuple[int, Any]] = []
    bad: list[str] = []
    seen: dict[str, int] = {}
    base = path.parent
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            bad.append(f"line {no}: not valid JSON")
            continue
        if not isinstance(obj, dict) or "id" not in obj:
            bad.append(f"line {no}: each line needs an object with an 'id'")
            continue
        if not isinstance(obj["id"], str | int) or isinstance(obj["id"], bool):
            bad.append(f"line {no}: 'id' must be a string or an integer")
            continue
        key = json.dumps(obj["id"])
        if key in seen:
            bad.append(f"line {no}: the same id as line {seen[key]}")
            continue
        seen[key] = no
        media: dict[str, Any] = {}
        missing = False
        for field in ("image", "video"):
            if obj.get(field) is not None:
                p = Path(obj[field])
                p = p if p.is_absolute() else base / p
                if not p.is_file():
                    bad.append(f"line {no}: {field} file not found")
                    missing = True
                media[field] = str(p)
        if missing:
            continue
        try:
            item = securecmr.Item(
                id=obj["id"],
                text=obj.get("text"),
                labels=tuple(obj.get("labels", ())),
                attrs=dict(obj.get("attrs", {})),
                ref=obj.get("ref"),
                **media,
            )
        except (TypeError, ValueError) as exc:
            bad.append(f"line {no}: {exc}")
            continue
        out.append((no, item))
    if bad:
        shown = bad[:_MAX_REPORTED]
        more = f"\n  ... and {len(bad) - len(shown)} more" if len(bad) > len(shown) else ""
        head = f"{path.name}: {plural(len(bad), 'bad line')} (nothing was ingested)"
        raise ManifestError(head + ":\n  " + "\n  ".join(shown) + more)
    if not out:
        raise EmptyInputError(f"{path.name}: the manifest has no items")
    return out


def read_manifest(path: Path) -> list[Any]:
    """Parse a JSONL manifest into Items; bad lines raise ManifestError naming each line
    (nothing is ingested: the batch is all-or-nothing)."""
    return [item for _no, item in _manifest_lines(path)]


def _coll_info(store: Any, stored_name: str) -> dict[str, Any]:
    from ..access._session import unqualify

    c = store.collection(stored_name)
    tenant, sep, short = stored_name.partition("~")
    return {
        "name": short if sep else stored_name,
        "tenant": tenant if sep and unqualify(tenant, stored_name) is not None else None,
        "bits": c.bits,
        "protection": c.protection,
        "items": len(c),
        "ttl_hours": c.ttl_hours,
        "policy": c.policy,
        "created": iso(c._engine.config.get("created")),
    }


def _hit_dict(h: Any) -> dict[str, Any]:
    return {
        "id": h.id,
        "score": h.score,
        "distance": h.distance,
        "modality": h.modality,
        "labels": list(h.labels),
        "attrs": h.attrs,
        "ref": h.ref,
    }


def _qualified(name: str, tenant: str | None) -> str:
    from ..access._session import qualify

    return qualify(tenant, name)


def register(app: typer.Typer) -> None:
    store_app = group("Create and inspect stores.")
    coll_app = group("Create, list, inspect and drop collections.")
    keys_app = group("Rotate the store's keys.")
    snap_app = group("Backups: sealed snapshots of a whole store (data, users, audit log, monitor).")

    # ------------------------------------------------------------------ store
    def _create_store(
        store: STORE,
        index_backend: Annotated[
            IndexBackend, typer.Option("--index-backend", help="The search index.")
        ] = IndexBackend.faiss,
        milvus_uri: Annotated[
            str | None,
            typer.Option("--milvus-uri", help="Milvus Lite file or server URI (default STORE/milvus.db)."),
        ] = None,
        exist_ok: Annotated[
            bool, typer.Option("--exist-ok", help="Use the store at STORE if there is one (unchanged).")
        ] = False,
        as_json: JSON = False,
    ) -> None:
        """Create a new store (Store.create). Asks for a passphrase twice unless SECURECMR_PASSPHRASE
        is set. A Milvus server token comes from SECURECMR_MILVUS_TOKEN and is never stored."""
        import securecmr

        existed = (store / "SECURECMR_STORE").exists()
        if existed and not exist_ok:
            from ..errors import StoreExistsError

            raise StoreExistsError(f"a store already exists at {store}")
        with securecmr.Store.create(
            store,
            passphrase=passphrase(confirm=not existed),
            index_backend=index_backend.value,
            milvus_uri=milvus_uri,
            exist_ok=exist_ok,
        ) as s:
            backend = s.index_backend
        verb = "using existing" if existed else "created"
        emit(
            as_json,
            {"store": str(store), "created": not existed, "index_backend": backend},
            f"{verb} store {store} (index: {backend})",
        )

    store_app.command("create")(_create_store)
    store_app.command("init", hidden=True)(_create_store)  # older name

    @store_app.command("info")
    def store_info(store: STORE, as_json: JSON = False) -> None:
        """What a store holds: collections, users, audit records, index, monitor state."""
        with open_store(store, readonly=True) as s:
            colls = [_coll_info(s, n) for n in s.collections()]
            users = s.users()
            info = {
                "store": str(store),
                "store_id": s.store_id,
                "index_backend": s.index_backend,
                "collections": colls,
                "items": sum(c["items"] for c in colls),
                "users": len(users),
                "active_users": sum(1 for u in users if u["revoked_at"] is None),
                "audit_records": len(s.audit),
                "monitor_fitted": s.monitor.detector is not None,
            }
        emit(
            as_json,
            info,
            lambda: "\n".join(
                [
                    f"store       {info['store']}",
                    f"store id    {info['store_id']}",
                    f"index       {info['index_backend']}",
                    f"collections {len(colls)} ({plural(int(info['items']), 'item')})",
                    f"users       {info['users']} ({info['active_users']} active)",
                    f"audit log   {plural(int(info['audit_records']), 'record')}",
                    "monitor     "
                    + ("fitted" if info["monitor_fitted"] else "not fitted (explicit rules only)"),
                ]
            ),
        )

    # ------------------------------------------------------------------ collections
    @coll_app.command("create")
    def coll_create(
        store: STORE,
        name: COLLECTION,
        bits: Annotated[
            int, typer.Option("--bits", help="Code length (a multiple of 8, at most 2040).")
        ] = 64,
        protection: Annotated[
            Protection, typer.Option("--protection", help="How codes are protected at rest.")
        ] = Protection.salted_encrypted,
        ttl_hours: Annotated[
            float | None, typer.Option("--ttl-hours", help="Items expire this long after they are added.")
        ] = None,
        policy: Annotated[
            str | None,
            typer.Option("--policy", help='Record-level access policy, e.g. "item.ward in user.wards".'),
        ] = None,
        tenant: Annotated[
            str | None, typer.Option("--tenant", help="Create it in this tenant (seen by its users only).")
        ] = None,
        hasher: Annotated[
            Path | None,
            typer.Option(
                "--hasher", help="A fitted hasher file (.npz) to use instead of zero-shot.", exists=True
            ),
        ] = None,
        exist_ok: Annotated[
            bool, typer.Option("--exist-ok", help="Use an existing collection of that name (unchanged).")
        ] = False,
        keep_features: Annotated[
            bool,
            typer.Option(
                "--keep-features", help="Keep items' encoder features (sealed) so `collection fit` can learn."
            ),
        ] = False,
        as_json: JSON = False,
    ) -> None:
        """Create a collection (Store.create_collection)."""
        from ..hashing import load as load_hasher

        fitted = load_hasher(hasher) if hasher is not None else None
        stored = _qualified(name, tenant)
        with open_store(store) as s:
            existed = stored in s.collections()
            s.create_collection(
                stored,
                bits=bits,
                protection=protection.value,
                hasher=fitted,
                ttl_hours=ttl_hours,
                policy=policy,
                exist_ok=exist_ok,
                keep_features=keep_features,
            )
            info = _coll_info(s, stored)
        info["created_now"] = not existed
        verb = "collection exists" if existed else "created collection"
        emit(
            as_json,
            info,
            f"{verb} {name}{f' (tenant {tenant})' if tenant else ''}: {info['bits']} bits, "
            f"{info['protection']}{', policy ' + repr(info['policy']) if info['policy'] else ''}",
        )

    @coll_app.command("list")
    def coll_list(store: STORE, as_json: JSON = False) -> None:
        """List the collections (Store.collections)."""
        with open_store(store, readonly=True) as s:
            rows = [_coll_info(s, n) for n in s.collections()]
        emit(
            as_json,
            rows,
            lambda: (
                table(
                    ["name", "tenant", "items", "bits", "protection", "ttl (h)", "policy"],
                    [
                        [
                            r["name"],
                            r["tenant"] or "",
                            r["items"],
                            r["bits"],
                            r["protection"],
                            r["ttl_hours"] or "",
                            r["policy"] or "",
                        ]
                        for r in rows
                    ],
                )
                if rows
                else "no collections"
            ),
        )

    @coll_app.command("info")
    def coll_info(
        store: STORE,
        name: COLLECTION,
        tenant: Annotated[str | None, typer.Option("--tenant", help="The collection's tenant.")] = None,
        as_json: JSON = False,
    ) -> None:
        """Show one collection's settings and size."""
        with open_store(store, readonly=True) as s:
            info = _coll_info(s, _qualified(name, tenant))
        emit(as_json, info, lambda: "\n".join(f"{k:<11} {'' if v is None else v}" for k, v in info.items()))

    @coll_app.command("drop")
    def coll_drop(
        store: STORE,
        name: COLLECTION,
        tenant: Annotated[str | None, typer.Option("--tenant", help="The collection's tenant.")] = None,
        yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
        receipt: Annotated[
            Path | None, typer.Option("--receipt", help="Write the signed erasure receipt here.")
        ] = None,
        by: Annotated[str | None, typer.Option("--by", help="Who asked (kept in the receipt).")] = None,
        as_json: JSON = False,
    ) -> None:
        """Delete a collection and all its items for good (Store.drop_collection); audited, with a
        signed erasure receipt."""
        if not yes:
            if not sys.stdin.isatty():
                raise usage("dropping a collection deletes all its items; pass --yes to confirm")
            typer.confirm(f"drop collection {name} and all its items?", abort=True)
        with open_store(store) as s:
            rec = s.drop_collection(_qualified(name, tenant), by=by)
        if receipt is not None:
            receipt.write_text(json.dumps(rec, indent=2, sort_keys=True), encoding="utf-8")
        emit(
            as_json,
            {"dropped": name, "count": rec["count"], "at": iso(rec["at"]), "receipt": rec},
            f"dropped collection {name} ({plural(rec['count'], 'item')} erased)"
            + (f"; receipt in {receipt}" if receipt else ""),
        )

    # ------------------------------------------------------------------ items
    @app.command("ingest")
    def ingest(
        store: STORE,
        name: COLLECTION,
        manifest: Annotated[
            Path,
            typer.Argument(
                metavar="MANIFEST",
                help="JSONL: id, text, image, video, labels, attrs, ref.",
                exists=True,
                dir_okay=False,
            ),
        ],
        batch_size: Annotated[
            int | None,
            typer.Option(
                "--batch-size", help="Items per encoding batch (default 256; batch mode 128).", min=1
            ),
        ] = None,
        store_content: Annotated[
            bool, typer.Option("--store-content", help="Keep the raw text (sealed) with each item.")
        ] = False,
        workers: Annotated[
            int | None, typer.Option("--workers", help="Batch mode: encoding processes (0: this one).", min=0)
        ] = None,
        engine: Annotated[str | None, typer.Option("--engine", help="Batch mode: process or ray.")] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Batch mode: resume an interrupted job.")
        ] = False,
        rejects: Annotated[
            Path | None,
            typer.Option("--rejects", help="Batch mode: rejects file (default MANIFEST.rejects.jsonl)."),
        ] = None,
        upsert: Annotated[
            bool, typer.Option("--upsert", help="Replace stored items of the same ids (Collection.upsert).")
        ] = False,
        as_json: JSON = False,
    ) -> None:
        """Add the items of a JSONL manifest (Collection.add; Collection.upsert with --upsert). All
        or nothing, unless --workers, --engine, --resume or --rejects ask for batch mode: parallel
        encoding, one transaction per batch under a job journal (resumable), bad lines to a
        rejects file."""
        from .._progress import stage

        if workers is not None or engine is not None or resume or rejects is not None:
            if upsert:
                raise usage("--upsert works with a plain ingest, not with batch mode")
            from ..ingest import ingest as batch_ingest

            with open_store(store) as s:
                target = session_collection(s, name) or s.collection(name)
                rep = batch_ingest(
                    target,
                    manifest,
                    workers=workers,
                    engine=engine or "process",
                    batch_size=batch_size,
                    resume=resume,
                    store_content=store_content,
                    rejects=rejects,
                )
            emit(
                as_json,
                {
                    "collection": name,
                    "added": rep.added,
                    "rejected": rep.rejected,
                    "batches": rep.batches,
                    "resumed_batches": rep.resumed_batches,
                    "seconds": round(rep.seconds, 3),
                    "items_per_s": round(rep.items_per_s, 2),
                    "workers": rep.workers,
                    "engine": rep.engine,
                    "rejects": str(rep.rejects_path),
                },
                f"ingested {plural(rep.added, 'item')} into {name} ({rep.items_per_s:.1f} items/s, "
                f"workers={rep.workers}, engine={rep.engine}); {rep.resumed_batches} of "
                f"{plural(rep.batches, 'batch', 'batches')} were already stored; "
                f"{plural(rep.rejected, 'line')} rejected (see {rep.rejects_path})",
            )
            return
        from ..errors import DuplicateItemError
        from ..store import Item

        batch_size = 256 if batch_size is None else batch_size
        lines = _manifest_lines(manifest)
        with open_store(store) as s:
            # with SECURECMR_TOKEN the insert is checked and audited as that user (access)
            guarded = session_collection(s, name)
            coll = guarded._inner if guarded is not None else s.collection(name)
            known = coll._engine.seq_of
            stored = [] if upsert else [no for no, it in lines if coll._engine.id_hmac(it.id) in known]
            if stored:
                shown = ", ".join(map(str, stored[:_MAX_REPORTED])) + (
                    " ..." if len(stored) > _MAX_REPORTED else ""
                )
                raise DuplicateItemError(
                    f"{manifest.name}: {plural(len(stored), 'line')} hold ids already stored in {name} "
                    f"(lines {shown}); nothing was ingested"
                )
            items = [it for _no, it in lines]
            # encode first (long), then insert everything in one transaction (all-or-nothing)
            encoded = []
            with stage("encoding", len(items), log=not as_json) as advance:
                for start in range(0, len(items), batch_size):
                    batch = items[start : start + batch_size]
                    codes: list[dict[str, Any]] = [{} for _ in batch]
                    for m in ("text", "image", "video"):
                        idx = [i for i, it in enumerate(batch) if getattr(it, m) is not None]
                        if idx:
                            out = coll._encoders.codes_for(m, [getattr(batch[i], m) for i in idx])
                            for i, c in zip(idx, out, strict=True):
                                codes[i][m] = c
                    for it, c in zip(batch, codes, strict=True):
                        encoded.append(
                            Item(
                                id=it.id,
                                labels=it.labels,
                                attrs=it.attrs,
                                ref=it.ref,
                                codes=c,
                                text=it.text if store_content else None,
                            )
                        )
                    advance(len(batch))
            target = guarded or coll
            n = (target.upsert if upsert else target.add)(encoded, store_content=store_content)
        emit(as_json, {"collection": name, "added": n}, f"ingested {plural(n, 'item')} into {name}")

    @app.command("search")
    def search(
        store: STORE,
        name: COLLECTION,
        query: Annotated[
            str | None, typer.Argument(metavar="[QUERY]", help="Text to search for (same as --text).")
        ] = None,
        text: Annotated[str | None, typer.Option("--text", help="Search by this text.")] = None,
        image: Annotated[
            Path | None,
            typer.Option("--image", help="Search by this image file.", exists=True, dir_okay=False),
        ] = None,
        video: Annotated[
            Path | None,
            typer.Option("--video", help="Search by this video file.", exists=True, dir_okay=False),
        ] = None,
        k: Annotated[int, typer.Option("-k", "--k", help="How many hits.", min=0)] = 10,
        where: Annotated[
            str | None,
            typer.Option(
                "--where", help="Only items matching this policy expression, e.g. \"item.site == 'north'\"."
            ),
        ] = None,
        as_json: JSON = False,
    ) -> None:
        """Search a collection by text, image or video (Collection.search). --where narrows the
        results; it never widens what a policy lets the user see."""
        given = [v for v in (query, text, image, video) if v is not None]
        if len(given) != 1:
            raise usage("give exactly one of QUERY, --text, --image or --video")
        with open_store(store) as s:
            hits = (session_collection(s, name) or s.collection(name)).search(
                text=query if query is not None else text,
                image=None if image is None else str(image),
                video=None if video is None else str(video),
                k=k,
                where=where,
            )
        emit(
            as_json,
            [_hit_dict(h) for h in hits],
            lambda: (
                table(
                    ["rank", "score", "id", "modality", "labels", "ref"],
                    [
                        [r, f"{h.score:.4f}", h.id, h.modality, ",".join(map(str, h.labels)), h.ref or ""]
                        for r, h in enumerate(hits, 1)
                    ],
                )
                if hits
                else "no hits"
            ),
        )

    @app.command("get")
    def get(
        store: STORE,
        name: COLLECTION,
        item_id: Annotated[str, typer.Argument(metavar="ID", help="The item's id.")],
        as_json: JSON = False,
    ) -> None:
        """Show one item's labels, attributes and ref (Collection.get)."""
        with open_store(store, readonly=True) as s:
            coll = s.collection(name)
            try:
                hit = coll.get(item_id)
            except LookupError:
                if not item_id.lstrip("-").isdigit():
                    raise
                hit = coll.get(int(item_id))
        data = {"id": hit.id, "labels": list(hit.labels), "attrs": hit.attrs, "ref": hit.ref}
        emit(as_json, data, lambda: "\n".join(f"{k:<7} {v}" for k, v in data.items()))

    def _ids_or_where(
        ids: list[str] | None, where: list[str] | None
    ) -> tuple[list[Any] | None, dict[str, Any] | None]:
        if bool(ids) == bool(where):
            raise usage("give item ids or --where KEY=VALUE (one of the two)")
        return (list(ids) if ids else None), (parse_pairs(where, "--where") if where else None)

    @app.command("delete")
    def delete(
        store: STORE,
        name: COLLECTION,
        ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="Ids of the items.")] = None,
        where: Annotated[
            list[str] | None, typer.Option("--where", help="KEY=VALUE attribute filter (repeatable, ANDed).")
        ] = None,
        by: Annotated[
            str | None, typer.Option("--by", help="Who asked (kept in the erasure record).")
        ] = None,
        as_json: JSON = False,
    ) -> None:
        """Delete items by id or attribute filter (Collection.delete); 'securecmr compact' then
        scrubs them from the files and writes the erasure receipt."""
        id_list, cond = _ids_or_where(ids, where)
        with open_store(store) as s:
            coll = s.collection(name)
            if id_list is not None:
                id_list = _typed_ids(coll, id_list)
            n = coll.delete(id_list, where=cond, by=by) if cond is None else coll.delete(where=cond, by=by)
        emit(as_json, {"collection": name, "deleted": n}, f"deleted {plural(n, 'item')}")

    def _hold_cmd(hold: bool) -> Any:
        def cmd(
            store: STORE,
            name: COLLECTION,
            ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Ids of the items.")],
            as_json: JSON = False,
        ) -> None:
            with open_store(store) as s:
                coll = s.collection(name)
                id_list = _typed_ids(coll, ids)
                (coll.hold if hold else coll.release)(id_list)
            verb = "held" if hold else "released"
            emit(as_json, {"collection": name, verb: len(id_list)}, f"{verb} {plural(len(id_list), 'item')}")

        cmd.__doc__ = (
            "Put items under legal hold: kept past their TTL, refused by delete (Collection.hold)."
            if hold
            else "Release a legal hold (Collection.release)."
        )
        return cmd

    app.command("hold")(_hold_cmd(True))
    app.command("release")(_hold_cmd(False))

    @app.command("compact")
    def compact(
        store: STORE,
        receipt: Annotated[
            Path | None, typer.Option("--receipt", help="Write the signed erasure receipt here.")
        ] = None,
        by: Annotated[str | None, typer.Option("--by", help="Who asked (kept in the receipt).")] = None,
        as_json: JSON = False,
    ) -> None:
        """Scrub deleted items from the files and issue a signed erasure receipt (Store.compact)."""
        with open_store(store) as s:
            rec = s.compact(by=by)
        if receipt is not None:
            receipt.write_text(json.dumps(rec, indent=2, sort_keys=True), encoding="utf-8")
        emit(
            as_json,
            {
                "count": rec["count"],
                "at": iso(rec["at"]),
                "receipt_file": None if receipt is None else str(receipt),
                "receipt": rec,
            },
            f"erased {plural(rec['count'], 'item')} at {iso(rec['at'])}"
            + (
                f"; signed receipt in {receipt}"
                if receipt
                else "; pass --receipt FILE to keep the signed receipt"
            ),
        )

    @app.command("purge")
    def purge(store: STORE, as_json: JSON = False) -> None:
        """Delete items past their TTL; legal holds are kept (Store.purge)."""
        with open_store(store) as s:
            n = s.purge()
        emit(as_json, {"purged": n}, f"purged {plural(n, 'expired item')}")

    @keys_app.command("rotate")
    def rotate(
        store: STORE,
        reencrypt: Annotated[
            bool, typer.Option("--reencrypt", help="Also re-encrypt every row under new data keys.")
        ] = False,
        as_json: JSON = False,
    ) -> None:
        """New master key under a new passphrase from SECURECMR_NEW_PASSPHRASE or a prompt
        (Store.rotate_keys)."""
        new = passphrase("SECURECMR_NEW_PASSPHRASE", "new passphrase", confirm=True)
        with open_store(store) as s:
            s.rotate_keys(new, reencrypt=reencrypt)
        emit(
            as_json,
            {"rotated": True, "reencrypted": reencrypt},
            "keys rotated" + (" and data re-encrypted" if reencrypt else ""),
        )

    @snap_app.command("export")
    def snap_export(
        store: STORE,
        out: Annotated[Path, typer.Argument(metavar="FILE", help="Where to write the snapshot.")],
        as_json: JSON = False,
    ) -> None:
        """Write a sealed snapshot of the whole store: data, users and token hashes, audit log,
        monitor (Store.export_snapshot)."""
        with open_store(store) as s:
            s.export_snapshot(out)
        emit(as_json, {"snapshot": str(out), "bytes": out.stat().st_size}, f"snapshot written to {out}")

    @snap_app.command("import")
    def snap_import(
        snapshot: Annotated[
            Path, typer.Argument(metavar="FILE", help="The snapshot file.", exists=True, dir_okay=False)
        ],
        store: STORE,
        as_json: JSON = False,
    ) -> None:
        """Restore a snapshot into a new, empty store directory (Store.import_snapshot); the
        snapshot is verified before anything is written."""
        import securecmr

        with securecmr.Store.import_snapshot(snapshot, store, passphrase=passphrase()) as s:
            n = len(s.collections())
        emit(
            as_json, {"store": str(store), "collections": n}, f"restored {store} ({plural(n, 'collection')})"
        )

    @snap_app.command("verify")
    def snap_verify(
        snapshot: Annotated[
            Path, typer.Argument(metavar="FILE", help="The snapshot file.", exists=True, dir_okay=False)
        ],
        as_json: JSON = False,
    ) -> None:
        """Check a snapshot (every byte authenticated) without restoring it (Store.verify_snapshot)."""
        import securecmr

        info = securecmr.Store.verify_snapshot(snapshot, passphrase=passphrase())
        info["created"] = iso(info["created"])
        emit(
            as_json,
            info,
            f"OK: snapshot of store {info['store_id']} taken {info['created'] or 'at an unknown time'}: "
            f"{plural(len(info['files']), 'file')}, users {'yes' if info['users'] else 'no'}, audit log "
            f"{'yes' if info['audit'] else 'no'}, monitor "
            + ("fitted" if info["monitor_fitted"] else "not fitted"),
        )

    app.add_typer(store_app, name="store")
    from .learn import fit_cmd

    coll_app.command("fit")(fit_cmd)
    app.add_typer(coll_app, name="collection")
    app.add_typer(keys_app, name="keys")
    app.add_typer(snap_app, name="snapshot")


def _typed_ids(coll: Any, ids: list[str]) -> list[Any]:
    """Command-line ids are strings; an all-digit one names an integer id when no string id matches."""
    out: list[Any] = []
    known = coll._engine.seq_of
    for raw in ids:
        if coll._engine.id_hmac(raw) not in known and raw.lstrip("-").isdigit():
            out.append(int(raw))
        else:
            out.append(raw)
    return out
