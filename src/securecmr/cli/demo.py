"""``securecmr demo``: encode real sample images and captions, then search text->image and image->text.

``run_demo(console, json_out)`` is the whole demo as one function so later steps (users, audit)
can be added after the search parts: first exact cosine search on the float vectors, then the
same searches through a protected (salted + encrypted) store collection in a temporary folder.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
import typer

__all__ = ["register", "run_demo"]

QUERIES = [
    "a cat",
    "a rocket launch",
    "a hot drink",
    "a person in space",
    "a flower in bloom",
    "a building in Asia",
]


def _ensure_models(console: Any) -> None:
    from ..encoders import export_models, read_manifest
    from ..errors import ModelNotFoundError

    try:
        read_manifest()
    except ModelNotFoundError:
        console.print("[bold]models not exported yet: exporting them once (about a minute)[/bold]")
        export_models(on_step=lambda msg: console.print(f"  • {msg}"))


def run_demo(console: Any, json_out: bool = False, *, k: int = 3) -> dict[str, Any]:
    """Run the demo; prints rich tables (or nothing when ``json_out``) and returns the results."""
    from ..encoders import load_image_encoder, load_text_encoder
    from ..encoders._samples import SAMPLES, sample_images

    _ensure_models(console)
    text_enc, image_enc = load_text_encoder(), load_image_encoder()
    images = sample_images()
    names = list(images)
    captions = [SAMPLES[n] for n in names]
    img_vecs = image_enc.encode([images[n] for n in names])
    cap_vecs = text_enc.encode(captions)
    query_vecs = text_enc.encode(QUERIES)

    def top(scores: np.ndarray) -> list[int]:
        return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]

    text_to_image: list[dict[str, Any]] = [
        {"query": q, "results": [{"image": names[i], "score": round(float(s[i]), 4)} for i in top(s)]}
        for q, s in zip(QUERIES, query_vecs @ img_vecs.T, strict=True)
    ]
    image_to_text: list[dict[str, Any]] = [
        {"image": n, "results": [{"caption": captions[i], "score": round(float(s[i]), 4)} for i in top(s)]}
        for n, s in zip(names, img_vecs @ cap_vecs.T, strict=True)
    ]
    hits = sum(r["results"][0]["caption"] == SAMPLES[r["image"]] for r in image_to_text)
    protected = _store_search(names, captions, img_vecs, cap_vecs, query_vecs, k)
    result: dict[str, Any] = {
        "images": len(names),
        "text_encoder": {"name": text_enc.name, "dim": text_enc.dim},
        "image_encoder": {"name": image_enc.name, "dim": image_enc.dim},
        "text_to_image": text_to_image,
        "image_to_text": image_to_text,
        "image_to_text_top1": f"{hits}/{len(names)}",
        "protected_store": protected,
    }
    if not json_out:
        _print(console, result, k)
    return result


def _store_search(
    names: list[str],
    captions: list[str],
    img_vecs: np.ndarray,
    cap_vecs: np.ndarray,
    query_vecs: np.ndarray,
    k: int,
) -> dict[str, Any]:
    """Index images and captions in a protected collection (128-bit zero-shot codes, salted and
    encrypted) in a temp folder and run the same searches there (Hamming scores)."""
    import secrets
    import tempfile

    from .. import Item, Store

    with tempfile.TemporaryDirectory(prefix="securecmr-demo-") as tmp:
        store = Store.create(f"{tmp}/store", passphrase=secrets.token_urlsafe(24))
        try:
            col = store.create_collection("photos", bits=128, protection="salted+encrypted")
            images = [Item(id=n, vectors={"image": v}) for n, v in zip(names, img_vecs, strict=True)]
            texts = [
                Item(id=f"caption:{n}", vectors={"text": v}) for n, v in zip(names, cap_vecs, strict=True)
            ]
            col.add(images + texts)

            def caption_of(item_id: object) -> str:
                return captions[names.index(str(item_id).split(":", 1)[1])]

            t2i = [
                {
                    "query": q,
                    "results": [
                        {"image": str(h.id), "score": round(float(h.score), 4)}
                        for h in col.search(vector=v, query_modality="text", modality="image", k=k)
                    ],
                }
                for q, v in zip(QUERIES, query_vecs, strict=True)
            ]
            i2t = [
                {
                    "image": n,
                    "results": [
                        {"caption": caption_of(h.id), "score": round(float(h.score), 4)}
                        for h in col.search(vector=v, query_modality="image", modality="text", k=k)
                    ],
                }
                for n, v in zip(names, img_vecs, strict=True)
            ]
            info = {"collection": "photos", "bits": col.bits, "protection": col.protection, "items": len(col)}
            # access control: two users, same query, different results; an auditor verifies the log
            from ..access import run_access_demo

            access = run_access_demo(
                store,
                None,
                query_vecs[0],
                k=k,
                bits=128,
                vectors=dict(zip(names, img_vecs, strict=True)),
                modality="image",
                query_modality="text",
            )
            info["access"] = {**access, "query": QUERIES[0]}
        finally:
            store.close()
    return {**info, "text_to_image": t2i, "image_to_text": i2t}


def _print(console: Any, result: dict[str, Any], k: int) -> None:
    from rich.table import Table

    console.print(
        f"Indexed {result['images']} real sample images (scikit-image, scikit-learn) with "
        f"{result['image_encoder']['name']} and {result['text_encoder']['name']} "
        f"(shared {result['text_encoder']['dim']}-d space, cosine scores)."
    )
    t = Table(title="text -> image")
    t.add_column("query")
    for r in range(k):
        t.add_column(f"#{r + 1}")
    for row in result["text_to_image"]:
        t.add_row(row["query"], *(f"{x['image']} ({x['score']:.3f})" for x in row["results"]))
    console.print(t)
    t = Table(title="image -> text")
    t.add_column("image")
    for r in range(k):
        t.add_column(f"#{r + 1}")
    for row in result["image_to_text"]:
        t.add_row(row["image"], *(f"{x['caption']} ({x['score']:.3f})" for x in row["results"]))
    console.print(t)
    console.print(f"image -> caption top-1: {result['image_to_text_top1']}")
    p = result["protected_store"]
    console.print(
        f"\nThe same searches in a protected store collection ({p['items']} items, {p['bits']}-bit codes, "
        f"{p['protection']}; score = 1 - Hamming distance / bits):"
    )
    t = Table(title="text -> image (protected store)")
    t.add_column("query")
    for r in range(k):
        t.add_column(f"#{r + 1}")
    for row in p["text_to_image"]:
        t.add_row(row["query"], *(f"{x['image']} ({x['score']:.3f})" for x in row["results"]))
    console.print(t)
    t = Table(title="image -> text (protected store)")
    t.add_column("image")
    for r in range(k):
        t.add_column(f"#{r + 1}")
    for row in p["image_to_text"]:
        t.add_row(row["image"], *(f"{x['caption']} ({x['score']:.3f})" for x in row["results"]))
    console.print(t)
    a = p.get("access")
    if a:
        console.print(f"\nAccess control: policy item.department in user.departments; query {a['query']!r}:")
        for user, info in a["users"].items():
            shown = ", ".join(f"{x['id']} ({x['department']})" for x in info["results"])
            console.print(f"  {user} ({', '.join(info['departments'])}) sees: {shown}")
        console.print(
            f"  auditor: audit log verified, {a['audit']['records']} hash-chained records, "
            f"{a['audit']['checkpoints']} signed checkpoints"
        )


def demo_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Search real sample images by text and captions by image (exports the models if missing)."""
    from rich.console import Console

    result = run_demo(Console(stderr=json_out), json_out)
    if json_out:
        typer.echo(json.dumps(result, indent=2))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
