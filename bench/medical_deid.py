"""Free-text PHI de-identification benchmark: synthetic PHI injected into real reports.

Corpus: MedPix 2.0 case reports (title, history, exam, findings, discussion of each case in
``Case_topic.json``) and IU X-Ray reports (``annotation.json``, all splits). Into each report 3
sentences of synthetic PHI (names, dates, MRNs / accession numbers, phone and fax numbers, street
addresses, ages over 89, e-mail, SSN) are inserted at sentence boundaries; the rule-based
:class:`securecmr_medical.TextDeidentifier` then runs over the result.

Writes ``phi_recall`` (injected PHI instances fully removed), ``clinical_token_retention``
(original report words untouched), per-corpus and per-category figures to ``--json``.

    .venv/bin/python bench/medical_deid.py --data ../shared/data --json bench/results/medical_deid.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "adapters"))

from securecmr_medical import TextDeidentifier, evaluate_deidentifier  # noqa: E402

CASE_FIELDS = ("Title", "History", "Exam", "Findings", "Discussion")


def medpix_reports(root: Path) -> list[str]:
    cases = json.loads((root / "medpix2" / "Case_topic.json").read_text("utf-8"))
    out = []
    for c in cases:
        case = c.get("Case") or {}
        parts = [str(case.get(k) or "").strip() for k in CASE_FIELDS]
        body = "\n".join(p for p in parts if p and p != "N/A")
        if body:
            out.append(body)
    return out


def iu_reports(root: Path) -> list[str]:
    data = json.loads((root / "iu_xray" / "annotation.json").read_text("utf-8"))
    return [
        str(s.get("report") or "")
        for split in data.values()
        for s in split
        if str(s.get("report") or "").strip()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sentences", type=int, default=3, help="PHI sentences injected per report")
    args = parser.parse_args(argv)

    corpora = {"medpix_case_reports": medpix_reports(args.data), "iu_xray_reports": iu_reports(args.data)}
    deid = TextDeidentifier()
    rows = {}
    t0 = time.perf_counter()
    for name, texts in corpora.items():
        rows[name] = evaluate_deidentifier(texts, deid, seed=args.seed, n_sentences=args.sentences).to_dict()
    seconds = time.perf_counter() - t0
    n_phi = sum(int(r["n_phi"]) for r in rows.values())
    n_clin = sum(int(r["n_clinical_tokens"]) for r in rows.values())
    phi_recall = sum(float(r["phi_recall"]) * int(r["n_phi"]) for r in rows.values()) / n_phi
    retention = (
        sum(float(r["clinical_token_retention"]) * int(r["n_clinical_tokens"]) for r in rows.values())
        / n_clin
    )

    print(
        f"{'corpus':<22}{'docs':>7}{'PHI':>7}{'PHI recall':>12}{'token recall':>14}"
        f"{'retention':>11}{'leaked':>8}"
    )
    for name, r in rows.items():
        print(
            f"{name:<22}{r['n_documents']:>7}{r['n_phi']:>7}{r['phi_recall']:>12.4f}"
            f"{r['phi_token_recall']:>14.4f}{r['clinical_token_retention']:>11.4f}{r['leaked_documents']:>8}"
        )
    print(f"{'all':<22}{'':>7}{n_phi:>7}{phi_recall:>12.4f}{'':>14}{retention:>11.4f}")
    cats: dict[str, list[float]] = {}
    for r in rows.values():
        for c, v in r["recall_by_category"].items():
            cats.setdefault(c, []).append(v)
    print(
        "recall by category (per corpus): " + ", ".join(f"{c} {min(v):.3f}" for c, v in sorted(cats.items()))
    )
    print(f"time {seconds:.1f} s")
    result = {
        "phi_recall": phi_recall,
        "clinical_token_retention": retention,
        "n_phi": n_phi,
        "n_clinical_tokens": n_clin,
        "corpora": rows,
        "seed": args.seed,
        "sentences_per_report": args.sentences,
        "seconds": seconds,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
