"""``securecmr serve`` under load, on loopback only, bounded in time and request count.

A 100,000-item salted+encrypted store (64-bit codes, seeded random codes: the HTTP path is what is
measured, and a code query skips the encoder) is served by a real ``securecmr serve`` process;
client threads, each with its own :class:`securecmr.client.Client` (one keep-alive connection),
send code queries for a fixed time.

- ``search_rps``, ``search_p50_ms``, ``search_p99_ms``, ``errors``: ``--clients`` (16) concurrent
  clients for ``--seconds``; every response that is not a 200 with k hits is an error.
- ``http_overhead_ms``: one client, the same queries one at a time over HTTP, p50 minus the p50 of
  the same queries through ``Store.session(token).collection(...).search(code=...)`` in process,
  measured on the same store in this run (before the server starts). ``http_overhead_cpu_ms``:
  the same difference in CPU time (client process + server process per request, minus the
  in-process search's CPU), which a loaded machine's scheduling delays do not inflate.
- scraper check: the query monitor is fitted on paced benign traffic made over HTTP (nurses at a
  few queries per second) and its explicit rate rule is set to ``--rate-limit`` searches per user
  per minute (600); then the benign clients go on at that pace while a scraper pages through the
  collection as fast as it can. Keys ``scraper_refused`` (429/403 answers), ``scraper_429``,
  ``benign_refusal_rate``. (The load generators of the first phase are service accounts: the rate
  rule is lifted for them.)

The load phase runs ``--workers`` (2) server processes; the overhead and monitor phases run one.
Figures come from a shared 2-core machine with other jobs running, so treat them as a floor.

    .venv/bin/python bench/serve.py --json bench/results/serve.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PASS = "bench serve passphrase"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def set_rules(path: Path, **limits: Any) -> None:
    """The store's explicit monitor rules (kept with the store; the server reads them at start)."""
    import securecmr
    from securecmr.monitor import MonitorRules

    store = securecmr.Store.open(path, passphrase=PASS)
    try:
        store.monitor.set_rules(MonitorRules(**limits))
    finally:
        store.close()


def build(path: Path, n: int, users: list[str], seed: int = 0) -> tuple[dict[str, str], np.ndarray]:
    import securecmr

    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(n, 8), dtype=np.uint8)
    store = securecmr.Store.create(path, passphrase=PASS)
    try:
        coll = store.create_collection("bench", bits=64, protection="salted+encrypted")
        step = 10_000
        for lo in range(0, n, step):
            coll.add(
                [
                    securecmr.Item(f"item-{i}", codes={"image": codes[i]}, ref=f"ref-{i}")
                    for i in range(lo, min(n, lo + step))
                ]
            )
        tokens = {u: store.create_user(u, role="reader", ttl_hours=48.0) for u in users}
    finally:
        store.close()
    return tokens, codes


def queries(codes: np.ndarray, m: int, seed: int) -> list[np.ndarray]:
    """Near-duplicates of stored codes (a few bits flipped), like real look-ups."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.integers(0, len(codes), size=m):
        q = codes[i].copy()
        q[rng.integers(0, 8)] ^= np.uint8(1 << int(rng.integers(0, 8)))
        out.append(q)
    return out


def in_process_ms(path: Path, token: str, qs: list[np.ndarray], k: int) -> tuple[list[float], float]:
    """(wall ms per search, CPU ms per search) through a session in this process."""
    import securecmr

    store = securecmr.Store.open(path, passphrase=PASS)
    try:
        coll = store.session(token).collection("bench")
        for q in qs[:20]:
            coll.search(code=q, k=k)
        out = []
        c0 = time.process_time()
        for q in qs:
            t0 = time.perf_counter()
            coll.search(code=q, k=k)
            out.append((time.perf_counter() - t0) * 1000.0)
        cpu = (time.process_time() - c0) * 1000.0 / len(qs)
    finally:
        store.close()
    return out, cpu


def proc_cpu_ms(pid: int) -> float:
    """User + system CPU of a process so far, in ms (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


class Served:
    def __init__(self, path: Path, log: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, SECURECMR_PASSPHRASE=PASS)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO / "src"), str(REPO / "adapters"), env.get("PYTHONPATH", "")]
        )
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "securecmr.cli.main",
                "serve",
                str(path),
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--max-k",
                "100",
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: see {log}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("server did not become ready") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def drive(
    url: str,
    tokens: list[str],
    qs: list[np.ndarray],
    k: int,
    seconds: float,
    *,
    pace: float | None = None,
    max_requests: int = 200_000,
) -> dict[str, Any]:
    """Each token in its own thread, sending queries until ``seconds`` pass (or ``max_requests``);
    ``pace``: seconds between one client's queries (None: as fast as it can)."""
    from securecmr.client import Client

    lat: list[list[float]] = [[] for _ in tokens]
    errors = [0] * len(tokens)
    refused = [0] * len(tokens)
    status429 = [0] * len(tokens)
    stop_at = time.monotonic() + seconds
    budget = [max_requests // max(1, len(tokens))]

    def work(j: int, token: str) -> None:
        client = Client(url, token, timeout=30)
        i = j * 7919
        n = 0
        while time.monotonic() < stop_at and n < budget[0]:
            q = qs[i % len(qs)]
            i += 1
            n += 1
            t0 = time.perf_counter()
            try:
                hits = client.collection("bench").search(code=q, k=k)
                lat[j].append((time.perf_counter() - t0) * 1000.0)
                if len(hits) != k:
                    errors[j] += 1
            except Exception as exc:
                status = getattr(exc, "status", None)
                if status in (429, 403):
                    refused[j] += 1
                    status429[j] += status == 429
                else:
                    errors[j] += 1
            if pace is not None:
                time.sleep(max(0.0, pace - (time.perf_counter() - t0)))
        client.close()

    threads = [threading.Thread(target=work, args=(j, t)) for j, t in enumerate(tokens)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    all_lat = np.array([x for per in lat for x in per]) if any(lat) else np.array([0.0])
    return {
        "ok": int(sum(len(x) for x in lat)),
        "errors": int(sum(errors)),
        "refused": int(sum(refused)),
        "refused_429": int(sum(status429)),
        "per_client_refused": refused,
        "per_client_total": [len(lat[j]) + refused[j] + errors[j] for j in range(len(tokens))],
        "wall_s": wall,
        "rps": float(sum(len(x) for x in lat) / wall),
        "p50_ms": float(np.percentile(all_lat, 50)),
        "p99_ms": float(np.percentile(all_lat, 99)),
    }


def single_client_ms(
    url: str, token: str, qs: list[np.ndarray], k: int, server_pid: int
) -> tuple[list[float], float]:
    """(wall ms per search, CPU ms per search of client + server) through the HTTP client."""
    from securecmr.client import Client

    with Client(url, token) as client:
        coll = client.collection("bench")
        for q in qs[:20]:
            coll.search(code=q, k=k)
        out = []
        c0, s0 = time.process_time(), proc_cpu_ms(server_pid)
        for _ in range(3):  # three passes: the server's CPU clock ticks every 10 ms
            for q in qs:
                t0 = time.perf_counter()
                coll.search(code=q, k=k)
                out.append((time.perf_counter() - t0) * 1000.0)
        cpu = ((time.process_time() - c0) * 1000.0 + proc_cpu_ms(server_pid) - s0) / len(out)
    return out, cpu


def fit_monitor(path: Path, exclude: list[str]) -> None:
    import securecmr
    from securecmr.monitor import QueryAnomalyDetector

    store = securecmr.Store.open(path, passphrase=PASS)
    try:
        store.monitor.fit(exclude=exclude, detector=QueryAnomalyDetector(stride=8, min_windows=20))
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="unused: the store is built from seeded codes (kept for the bench interface)",
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="server processes in the load phase")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nurses", type=int, default=6)
    ap.add_argument("--warmup-seconds", type=float, default=90.0)
    ap.add_argument("--nurse-pace", type=float, default=0.25, help="seconds between a nurse's queries")
    ap.add_argument(
        "--rate-limit", type=int, default=600, help="searches per user per minute (scraper phase)"
    )
    ap.add_argument("--attack-seconds", type=float, default=15.0)
    args = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(1)  # as the server does (--search-threads 1): same search either side

    loaders = [f"load-{i}" for i in range(args.clients)]
    nurses = [f"nurse-{i}" for i in range(args.nurses)]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        path = Path(tmp) / "store"
        t0 = time.perf_counter()
        tokens, codes = build(path, args.items, [*loaders, *nurses, "scraper"])
        build_s = time.perf_counter() - t0
        qs = queries(codes, 400, seed=1)
        # the load generators are service accounts: the per-user rate rule is lifted for phase one
        set_rules(path, max_searches=10**9, window_seconds=60.0)
        local, local_cpu = in_process_ms(path, tokens["load-0"], qs, args.k)

        server = Served(path, Path(tmp) / "server1.log")
        try:  # one process: the per-request overhead, and the paced traffic the monitor learns from
            remote, remote_cpu = single_client_ms(server.url, tokens["load-0"], qs, args.k, server.proc.pid)
            warm = drive(
                server.url,
                [tokens[u] for u in nurses],
                queries(codes, 4000, seed=3),
                args.k,
                args.warmup_seconds,
                pace=args.nurse_pace,
            )
        finally:
            server.stop()
        server = Served(path, Path(tmp) / "server-load.log", workers=args.workers)
        try:
            load = drive(
                server.url, [tokens[u] for u in loaders], queries(codes, 4000, seed=2), args.k, args.seconds
            )
        finally:
            server.stop()
        fit_monitor(path, exclude=loaders)
        # people: at most --rate-limit searches per user per minute, then 429 (the monitor's rate rule)
        set_rules(path, max_searches=args.rate_limit, window_seconds=60.0)
        server = Served(path, Path(tmp) / "server2.log")
        try:
            result: dict[str, Any] = {}

            def benign() -> None:
                result["benign"] = drive(
                    server.url,
                    [tokens[u] for u in nurses],
                    queries(codes, 4000, seed=4),
                    args.k,
                    args.attack_seconds,
                    pace=args.nurse_pace,
                )

            bt = threading.Thread(target=benign)
            bt.start()
            scrape = drive(
                server.url,
                [tokens["scraper"]],
                queries(codes, 20_000, seed=5),
                100,
                args.attack_seconds,
                max_requests=20_000,
            )
            bt.join()
        finally:
            server.stop()

    ben = result["benign"]
    benign_total = max(1, sum(ben["per_client_total"]))
    out = {
        "items": args.items,
        "clients": args.clients,
        "workers": args.workers,
        "seconds": args.seconds,
        "search_rps": round(load["rps"], 1),
        "search_p50_ms": round(load["p50_ms"], 3),
        "search_p99_ms": round(load["p99_ms"], 3),
        "errors": load["errors"],
        "requests": load["ok"] + load["errors"],
        "in_process_p50_ms": round(float(np.median(local)), 4),
        "http_p50_ms": round(float(np.median(remote)), 4),
        "http_overhead_ms": round(float(np.median(remote) - np.median(local)), 4),
        "in_process_cpu_ms": round(local_cpu, 4),
        "http_cpu_ms": round(remote_cpu, 4),
        "http_overhead_cpu_ms": round(remote_cpu - local_cpu, 4),
        "warmup_queries": warm["ok"],
        "warmup_refused": warm["refused"],
        "scraper_queries": scrape["ok"] + scrape["refused"],
        "scraper_served": scrape["ok"],
        "scraper_refused": scrape["refused"],
        "scraper_429": scrape["refused_429"],
        "benign_queries": benign_total,
        "benign_refusal_rate": round(ben["refused"] / benign_total, 4),
        "rate_limit_per_min": args.rate_limit,
        "build_s": round(build_s, 1),
        "note": "shared 2-core machine, other jobs running",
    }
    width = max(len(k) for k in out)
    for key, val in out.items():
        print(f"{key:<{width}}  {val}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
