"""Index real CCTV-style clips and search them by text; prints merged per-camera time ranges.

    .venv/bin/python examples/surveillance/search_footage.py --data ../shared/data [--blur-faces]

The three real clips in ``<data>/media`` play three cameras: vtest.avi (fixed camera, pedestrians),
bikes.mp4 (cyclists) and carphone_pristine.mp4 (a man on a phone in a car). Each is streamed, cut into
segments (10 s windows and scene changes), encoded with the int8 built-in encoders and stored with
camera, site, wall-clock times and a sealed footage reference in an encrypted store collection with a
72 h TTL and a site policy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "adapters"))

from securecmr_surveillance import FaceBlur, SurveillanceIndex, create_surveillance_collection  # noqa: E402

import securecmr  # noqa: E402

CAMERAS = [  # file, camera id, site, recording start (UTC)
    ("vtest.avi", "cam-plaza-1", "plaza", datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)),
    ("bikes.mp4", "cam-road-7", "ring-road", datetime(2026, 3, 2, 9, 5, 0, tzinfo=UTC)),
    ("carphone_pristine.mp4", "cam-car-2", "fleet", datetime(2026, 3, 2, 9, 7, 30, tzinfo=UTC)),
]
QUERIES = [
    "pedestrians walking across a paved square",
    "people riding bicycles on the road",
    "a man talking on a mobile phone inside a car",
    "a red car",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--models", type=Path, default=None)
    p.add_argument("--blur-faces", action="store_true", help="blur frontal faces before encoding")
    p.add_argument("-k", type=int, default=6)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        passphrase = "example passphrase, use a real one"
        store = securecmr.Store.create(Path(tmp) / "cctv", passphrase=passphrase)
        collection = create_surveillance_collection(store, "footage")  # 72 h TTL, site policy
        index = SurveillanceIndex.with_builtin_encoders(
            collection, model_dir=args.models, int8=True,
            privacy_filter=FaceBlur() if args.blur_faces else None,
        )
        for name, camera, site, start in CAMERAS:
            report = index.ingest(args.data / "media" / name, camera=camera, site=site,
                                  recording_start=start, ref_base=f"vault://{site}/{name}")
            unit = "segment" if report.segments == 1 else "segments"
            print(f"ingested {name:<24} as {camera:<12} {report.segments:>3} {unit}, "
                  f"{report.seconds:6.1f} s of video")
        for q in QUERIES:
            print(f"\nquery: {q!r}")
            for r in index.search(text=q, k=args.k)[:3]:
                print("  ", r)
        store.close()


if __name__ == "__main__":
    main()
