"""``securecmr eval DATASET``: fit a hashing method and report MAP / precision@100 on a benchmark."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register"]


class Dataset(StrEnum):
    wikipedia = "wikipedia"
    medpix = "medpix"
    manifest = "manifest"


def _parse_bits(text: str) -> list[int]:
    from ..errors import ConfigurationError
    from ..hashing._validation import check_bits

    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise ConfigurationError(f"--bits must be comma-separated integers, got {text!r}") from None
        out.append(check_bits(value))
    if not out:
        raise ConfigurationError("--bits needs at least one code length")
    return out


def _parse_params(items: list[str]) -> dict[str, Any]:
    from ..errors import ConfigurationError

    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"--param must look like NAME=VALUE, got {item!r}")
        try:
            params[key.strip()] = json.loads(raw)
        except ValueError:
            params[key.strip()] = raw
    return params


def _load(dataset: Dataset, data: Path, label_set: str, cache_dir: Path | None) -> Any:
    from .. import eval as ev

    if dataset is Dataset.wikipedia:
        return ev.load_wikipedia(data)
    if dataset is Dataset.medpix:
        return ev.load_medpix(data, label_set=label_set, cache_dir=cache_dir)
    return ev.load_manifest(data, cache_dir=cache_dir)


def eval_cmd(
    dataset: Annotated[Dataset, typer.Argument(help="wikipedia, medpix or manifest (JSONL or .npz).")],
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (or the manifest file).")],
    method: Annotated[
        str, typer.Option("--method", help="cca, cca-itq, supervised, unsupervised or zero-shot.")
    ] = "supervised",
    bits: Annotated[str, typer.Option("--bits", help="Code lengths, comma-separated.")] = "16,32,64",
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="out-of-sample (database codes from the hash functions) or learned-db (the training "
            "codes the method learned).",
        ),
    ] = "out-of-sample",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write precision-recall curves to this PNG.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Hasher parameter NAME=VALUE (JSON value); repeatable."),
    ] = None,
    label_set: Annotated[
        str, typer.Option("--label-set", help="MedPix labels: location (body region) or modality (CT/MR).")
    ] = "location",
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Where encoded image/text features are cached (MedPix, manifests)."),
    ] = None,
) -> None:
    """Fit METHOD on the dataset's training split at each code length and rank the database with the
    query split's codes (Hamming ranking, ties in database order; relevant = shares a label)."""
    from ..eval import evaluate
    from ..eval._plot import plot_pr_curves

    bits_list = _parse_bits(bits)
    params = _parse_params(param or [])
    loaded = _load(dataset, data, label_set, cache_dir)
    report = evaluate(loaded, method, bits_list, protocol=protocol, params=params, curves=plot is not None)
    typer.echo(
        f"{report['dataset']}  method={method}  protocol={protocol}  "
        f"train={report['n_train']} query={report['n_query']} database={report['n_database']}"
    )
    typer.echo(
        f"{'bits':>5} {'MAP i->t':>9} {'MAP t->i':>9} {'P@100 i->t':>11} {'P@100 t->i':>11} "
        f"{'float i->t':>11} {'float t->i':>11} {'fit s':>7}"
    )
    for row in report["results"]:
        typer.echo(
            f"{row['bits']:>5} {row['map_i2t']:>9.4f} {row['map_t2i']:>9.4f} {row['p_at_100_i2t']:>11.4f} "
            f"{row['p_at_100_t2i']:>11.4f} {row['float_map_i2t']:>11.4f} {row['float_map_t2i']:>11.4f} "
            f"{row['fit_seconds']:>7.1f}"
        )
    ref = report["float_reference"]
    typer.echo(f"float reference (CCA, cosine): MAP i->t {ref['map_i2t']:.4f}  t->i {ref['map_t2i']:.4f}")
    if plot is not None:
        typer.echo(f"precision-recall curves: {plot_pr_curves(report, plot)}")
    if json_path is not None:
        rows = [{k: v for k, v in row.items() if k not in ("pr_i2t", "pr_t2i")} for row in report["results"]]
        out = {
            "dataset": dataset.value,
            "method": report["method"],
            "protocol": report["protocol"],
            "results": rows,
            "float_reference": report["float_reference"],
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(out, indent=2) + "\n")
        typer.echo(f"report: {json_path}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
