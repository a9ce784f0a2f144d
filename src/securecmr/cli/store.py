"""Store commands: ``store init``, ``collection create``, ``ingest``, ``search``, ``delete``,
``compact``, ``purge``, ``keys rotate``, ``snapshot export|import``.

The passphrase comes from SECURECMR_PASSPHRASE or a prompt, never from the command line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["read_manifest", "register"]


def _passphrase(
    var: str = "SECURECMR_PASSPHRASE", prompt: str = "store passphrase", confirm: bool = False
) -> str:
    value = os.environ.get(var)
    if not value:
        value = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return str(value)


def _open(path: Path) -> Any:
    import securecmr

    return securecmr.Store.open(path, passphrase=_passphrase())


def _session_collection(store: Any, name: str) -> Any:
    """The collection as seen by the SECURECMR_TOKEN user (checked and audited), or None without a token."""
    token = os.environ.get("SECURECMR_TOKEN")
    return store.session(token).collection(name) if token else None


def read_manifest(path: Path) -> list[Any]:
    """Parse a JSONL manifest into Items; any bad line raises ManifestError naming its line
    (nothing is ingested: the batch is all-or-nothing)."""
    import securecmr

    from ..errors import ManifestError

    items = []
    base = path.parent
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise ManifestError(f"{path.name} line {no}: not valid JSON (nothing was ingested)") from None
        if not isinstance(obj, dict) or "id" not in obj:
            raise ManifestError(
                f"{path.name} line {no}: each line needs an object with an 'id' (nothing ingested)"
            )
        media: dict[str, Any] = {}
        for key in ("image", "video"):
            if obj.get(key) is not None:
                p = Path(obj[key])
                p = p if p.is_absolute() else base / p
                if not p.is_file():
                    raise ManifestError(f"{path.name} line {no}: {key} file not found (nothing was ingested)")
                media[key] = str(p)
        items.append(
            securecmr.Item(
                id=obj["id"],
                text=obj.get("text"),
                labels=tuple(obj.get("labels", ())),
                attrs=dict(obj.get("attrs", {})),
                ref=obj.get("ref"),
                **media,
            )
        )
    if not items:
        from ..errors import EmptyInputError

        raise EmptyInputError(f"{path.name}: the manifest has no items")
    return items


def register(app: typer.Typer) -> None:
    store_app = typer.Typer(help="Create stores.", no_args_is_help=True)
    coll_app = typer.Typer(help="Create collections.", no_args_is_help=True)
    keys_app = typer.Typer(help="Rotate keys.", no_args_is_help=True)
    snap_app = typer.Typer(help="Encrypted snapshots for backups.", no_args_is_help=True)

    @store_app.command("init")
    def init(
        store: Path,
        index_backend: Annotated[
            str, typer.Option("--index-backend", help="faiss, milvus or brute")
        ] = "faiss",
        milvus_uri: Annotated[
            str | None,
            typer.Option("--milvus-uri", help="Milvus Lite file or server URI (default <store>/milvus.db)"),
        ] = None,
    ) -> None:
        """Create a new store (asks for a passphrase twice unless SECURECMR_PASSPHRASE is set). A
        Milvus server token comes from SECURECMR_MILVUS_TOKEN and is never stored."""
        import securecmr

        securecmr.Store.create(
            store, passphrase=_passphrase(confirm=True), index_backend=index_backend, milvus_uri=milvus_uri
        ).close()
        typer.echo(f"created store {store} (index: {index_backend})")

    @coll_app.command("create")
    def create(
        store: Path,
        name: str,
        bits: Annotated[int, typer.Option("--bits")] = 64,
        protection: Annotated[str, typer.Option("--protection")] = "salted+encrypted",
        ttl_hours: Annotated[float | None, typer.Option("--ttl-hours")] = None,
    ) -> None:
        """Create a collection."""
        with _open(store) as s:
            s.create_collection(name, bits=bits, protection=protection, ttl_hours=ttl_hours)
        typer.echo(f"created collection {name} ({bits} bits, {protection})")

    @app.command("ingest")
    def ingest(
        store: Path,
        name: str,
        manifest: Path,
        batch_size: Annotated[
            int | None, typer.Option("--batch-size", help="default 256; batch mode 128")
        ] = None,
        store_content: Annotated[bool, typer.Option("--store-content")] = False,
        workers: Annotated[
            int | None, typer.Option("--workers", help="batch mode: encoding processes (0: this one)")
        ] = None,
        engine: Annotated[str | None, typer.Option("--engine", help="batch mode: process | ray")] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="batch mode: resume an interrupted job")
        ] = False,
        rejects: Annotated[
            Path | None,
            typer.Option("--rejects", help="batch mode: rejects file (default MANIFEST.rejects.jsonl)"),
        ] = None,
    ) -> None:
        """Ingest a JSONL manifest (id, text, image, video, labels, attrs, ref). All or nothing, unless
        --workers/--engine/--resume/--rejects ask for batch mode: parallel encoding, one transaction
        per batch under a job journal (resumable), bad lines to a rejects file."""
        from .._progress import progress

        if workers is not None or engine is not None or resume or rejects is not None:
            from ..ingest import ingest as batch_ingest

            with _open(store) as s:
                target = _session_collection(s, name) or s.collection(name)
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
            typer.echo(
                f"ingested {rep.added} items into {name} ({rep.items_per_s:.1f} items/s, "
                f"workers={rep.workers}, engine={rep.engine}); {rep.resumed_batches} of {rep.batches} "
                f"batches were already stored; {rep.rejected} lines rejected (see {rep.rejects_path})"
            )
            return
        batch_size = 256 if batch_size is None else batch_size
        items = read_manifest(manifest)
        with _open(store) as s:
            # with SECURECMR_TOKEN the insert is checked and audited as that user (access)
            guarded = _session_collection(s, name)
            coll = guarded._inner if guarded is not None else s.collection(name)
            # encode first (long), then insert everything in one transaction (all-or-nothing)
            from ..store import Item

            encoded = []
            batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
            for batch in progress(batches, total=len(batches), description="encoding", min_total=2):
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
            n = (guarded or coll).add(encoded, store_content=store_content)
        typer.echo(f"ingested {n} items into {name}")

    @app.command("search")
    def search(
        store: Path,
        name: str,
        text: Annotated[str | None, typer.Option("--text")] = None,
        image: Annotated[Path | None, typer.Option("--image")] = None,
        video: Annotated[Path | None, typer.Option("--video")] = None,
        k: Annotated[int, typer.Option("-k")] = 10,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Search a collection by text, image or video."""
        with _open(store) as s:
            hits = (_session_collection(s, name) or s.collection(name)).search(
                text=text,
                image=None if image is None else str(image),
                video=None if video is None else str(video),
                k=k,
            )
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {
                            "id": h.id,
                            "score": h.score,
                            "distance": h.distance,
                            "modality": h.modality,
                            "labels": list(h.labels),
                            "attrs": h.attrs,
                            "ref": h.ref,
                        }
                        for h in hits
                    ]
                )
            )
            return
        for rank, h in enumerate(hits, 1):
            typer.echo(f"{rank:>3}  {h.score:.4f}  {h.id}  {h.modality}  {h.ref or ''}")

    @app.command("delete")
    def delete(
        store: Path,
        name: str,
        ids: Annotated[list[str] | None, typer.Argument()] = None,
        where: Annotated[list[str] | None, typer.Option("--where", help="KEY=VALUE attribute filter")] = None,
        by: Annotated[str | None, typer.Option("--by")] = None,
    ) -> None:
        """Delete items by id or by attribute filter (run ``compact`` to scrub the files)."""
        from ..errors import ConfigurationError

        cond = None
        if where:
            cond = {}
            for pair in where:
                key, sep, val = pair.partition("=")
                if not sep:
                    raise ConfigurationError("--where expects KEY=VALUE")
                try:
                    cond[key] = json.loads(val)
                except json.JSONDecodeError:
                    cond[key] = val
        with _open(store) as s:
            n = s.collection(name).delete(ids if not cond else None, where=cond, by=by)
        typer.echo(f"deleted {n} items")

    @app.command("compact")
    def compact(
        store: Path,
        receipt: Annotated[Path | None, typer.Option("--receipt")] = None,
        by: Annotated[str | None, typer.Option("--by")] = None,
    ) -> None:
        """Scrub deleted data from the files and write a signed erasure receipt."""
        with _open(store) as s:
            rec = s.compact(by=by)
        text = json.dumps(rec, indent=2, sort_keys=True)
        if receipt is not None:
            receipt.write_text(text)
        typer.echo(text if receipt is None else f"erased {rec['count']} items; receipt in {receipt}")

    @app.command("purge")
    def purge(store: Path) -> None:
        """Delete items past their TTL (legal holds are kept)."""
        with _open(store) as s:
            n = s.purge()
        typer.echo(f"purged {n} expired items")

    @keys_app.command("rotate")
    def rotate(store: Path, reencrypt: Annotated[bool, typer.Option("--reencrypt")] = False) -> None:
        """New master key under a new passphrase (SECURECMR_NEW_PASSPHRASE or prompt)."""
        new = _passphrase("SECURECMR_NEW_PASSPHRASE", "new passphrase", confirm=True)
        with _open(store) as s:
            s.rotate_keys(new, reencrypt=reencrypt)
        typer.echo("keys rotated" + (" and data re-encrypted" if reencrypt else ""))

    @snap_app.command("export")
    def snap_export(store: Path, out: Path) -> None:
        """Write an encrypted snapshot."""
        with _open(store) as s:
            s.export_snapshot(out)
        typer.echo(f"snapshot written to {out}")

    @snap_app.command("import")
    def snap_import(snapshot: Path, store: Path) -> None:
        """Restore a snapshot into a new store directory."""
        import securecmr

        securecmr.Store.import_snapshot(snapshot, store, passphrase=_passphrase()).close()
        typer.echo(f"restored {store}")

    app.add_typer(store_app, name="store")
    app.add_typer(coll_app, name="collection")
    app.add_typer(keys_app, name="keys")
    app.add_typer(snap_app, name="snapshot")
