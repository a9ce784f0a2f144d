"""Every public object may be shared by threads: policy readers searching while a writer adds,
deletes, holds and compacts, with the query monitor fitted and guarding. Each search sees one
committed version of the collection: 0 unauthorised hits, 0 errors, every result equal to brute
force over some version committed while it ran, and the audit log verifies afterwards."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _store_helpers import new_store

import securecmr
from securecmr.monitor import GuardPolicy, QueryAnomalyDetector

N0 = 1500
K = 10
READERS = 4
SECONDS = 3.0


def _brute(state: dict[str, tuple[str, np.ndarray]], q: np.ndarray, k: int) -> list[tuple[str, int]]:
    rows = []
    for pos, (item_id, (ward, code)) in enumerate(state.items()):
        if ward == "a":
            rows.append((int(np.unpackbits(code ^ q).sum()), pos, item_id))
    rows.sort()
    return [(i, d) for d, _, i in rows[:k]]


def test_policy_readers_and_a_writer_in_threads_see_committed_versions(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    store = new_store(tmp_path)
    coll = store.create_collection("c", policy="item.ward in user.wards")
    state: dict[str, tuple[str, np.ndarray]] = {}
    first = []
    for i in range(N0):
        ward, code = "ab"[i % 2], rng.integers(0, 256, 8, dtype=np.uint8)
        state[f"i{i}"] = (ward, code)
        first.append(securecmr.Item(f"i{i}", attrs={"ward": ward}, codes={"image": code}))
    coll.add(first)
    readers = [
        store.session(store.create_user(f"r{j}", role="reader", attrs={"wards": ["a"]})).collection("c")
        for j in range(READERS)
    ]
    for r in readers:  # normal use, then fit the monitor so it guards the threaded run
        for _ in range(60):
            r.search(code=rng.integers(0, 256, 8, dtype=np.uint8), k=K)
    store.monitor.policy = GuardPolicy(action="alert")
    store.monitor.fit(
        detector=QueryAnomalyDetector(window=16, min_events=16, stride=4, min_windows=5, n_estimators=20)
    )
    assert store.monitor.guard is not None

    history: list[dict[str, tuple[str, np.ndarray]]] = [dict(state)]
    reads: list[tuple[int, int, np.ndarray, list[tuple[Any, int | None, str]]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    def reader(j: int) -> None:
        local = np.random.default_rng(100 + j)
        try:
            while not stop.is_set():
                q = local.integers(0, 256, 8, dtype=np.uint8)
                v0 = len(history) - 1
                hits = readers[j].search(code=q, k=K)
                v1 = len(history) - 1
                with lock:
                    reads.append((v0, v1, q, [(h.id, h.distance, h.attrs.get("ward")) for h in hits]))
        except BaseException as exc:
            errors.append(exc)

    def writer() -> None:
        local = np.random.default_rng(7)
        nxt = N0
        try:
            while not stop.is_set():
                op = local.integers(0, 4)
                live = list(state)
                if op == 0:
                    batch = []
                    for _ in range(20):
                        ward, code = (
                            "ab"[int(local.integers(0, 2))],
                            local.integers(0, 256, 8, dtype=np.uint8),
                        )
                        batch.append((f"i{nxt}", ward, code))
                        nxt += 1
                    coll.add([securecmr.Item(i, attrs={"ward": w}, codes={"image": c}) for i, w, c in batch])
                    for i, w, c in batch:
                        state[i] = (w, c)
                elif op == 1 and len(live) > 100:
                    gone = [live[int(x)] for x in local.choice(len(live), 10, replace=False)]
                    coll.delete(gone)
                    for g in gone:
                        del state[g]
                elif op == 2:
                    some = [live[int(x)] for x in local.choice(len(live), 5, replace=False)]
                    coll.hold(some)
                    coll.release(some)
                else:
                    store.compact(by="test")
                history.append(dict(state))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(j,)) for j in range(READERS)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(history) > 5 and len(reads) > 50
    unauthorised = sum(1 for *_, hits in reads for _, _, ward in hits if ward != "a")
    assert unauthorised == 0
    for v0, v1, q, hits in reads:
        got = [(i, d) for i, d, _ in hits]
        versions = history[v0 : min(len(history), v1 + 2)]
        assert any(_brute(s, q, K) == got for s in versions), "a search saw no committed version"
    store.monitor.flush()
    assert store.audit.verify().records == sum(1 for _ in store.audit.records())
    store.close()
    with securecmr.Store.open(tmp_path / "store", "correct horse battery staple") as again:
        assert set(again.collection("c").ids()) == set(history[-1])
