"""One process of the multi-process store test (run by tests/test_store_processes.py).

    python _mp_worker.py ROLE INDEX STORE SECONDS OUT.json TOKENS.json

ROLE ``writer`` adds batches of items as the operator (and deletes some of its own) for SECONDS,
``reader`` searches through sessions of the users in TOKENS.json on a readonly store until the
parent creates ``stop`` beside TOKENS.json (after every writer ended), then once more. Writer 0 revokes user
``bob`` after a third of the run, writer 1 rotates the keys after half of it. Every acknowledged
call is written to OUT.json with the wall-clock time it started and ended.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import securecmr
from securecmr.errors import AuthenticationError, BlockedError, ThrottledError

PASS = "correct horse battery staple"


def main() -> None:
    role, index, store_path, seconds, out, tokens_file = sys.argv[1:7]
    idx, duration = int(index), float(seconds)
    tokens: dict[str, str] = json.loads(Path(tokens_file).read_text())
    rng = np.random.default_rng(100 + idx)
    log: dict[str, Any] = {k: [] for k in ("adds", "deletes", "searches", "refused", "throttled", "events")}
    start = time.time()
    end = start + duration  # writers
    if role == "writer":
        store = securecmr.Store.open(store_path, passphrase=PASS, timeout=60)
        coll = store.collection("c")
        start = time.time()  # the clock starts once the store is open (slow on a loaded machine)
        end = start + duration
        mine: list[str] = []
        i = 0
        revoked = rotated = False
        while time.time() < end:
            batch = [
                securecmr.Item(f"w{idx}-{i}-{j}", codes={"image": rng.integers(0, 256, 8, dtype=np.uint8)})
                for j in range(5)
            ]
            t0 = time.time()
            coll.add(batch)
            log["adds"].append({"ids": [it.id for it in batch], "t0": t0, "t1": time.time()})
            mine += [str(it.id) for it in batch]
            if i % 3 == 2:
                victim = mine.pop(int(rng.integers(0, len(mine))))
                t0 = time.time()
                coll.delete([victim])
                log["deletes"].append({"id": victim, "t0": t0, "t1": time.time()})
            if idx == 0 and not revoked and time.time() > start + duration / 3:
                store.revoke_user("bob")
                log["events"].append({"what": "revoke", "t1": time.time()})
                revoked = True
            if idx == 1 and not rotated and time.time() > start + duration / 2:
                store.rotate_keys(PASS, reencrypt=True)
                log["events"].append({"what": "rotate", "t1": time.time()})
                rotated = True
            i += 1
        store.close()
    else:
        store = securecmr.Store.open(store_path, passphrase=PASS, readonly=True)
        stop = Path(tokens_file).with_name("stop")
        while True:
            last_round = stop.exists()  # the writers are all done: one more round, then stop
            for name, tok in tokens.items():
                q = rng.integers(0, 256, 8, dtype=np.uint8)
                t0 = time.time()
                try:  # a fresh session per call: authenticated against the registry as it is now
                    hits = store.session(tok).collection("c").search(code=q, k=3)
                except AuthenticationError:
                    log["refused"].append({"user": name, "t0": t0})
                    continue
                except (ThrottledError, BlockedError):  # the monitor's rules (a long run): refused, audited
                    log["throttled"].append({"user": name, "t0": t0})
                    continue
                log["searches"].append({"user": name, "t0": t0, "t1": time.time(), "n": len(hits)})
            if last_round:
                break
        try:  # a new session with a revoked token is refused too
            store.session(tokens["bob"])
            log["events"].append({"what": "bob-session-ok", "t1": time.time()})
        except AuthenticationError:
            log["events"].append({"what": "bob-session-refused", "t1": time.time()})
        store.close()
    Path(out).write_text(json.dumps(log))


if __name__ == "__main__":
    main()
