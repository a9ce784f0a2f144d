"""Index the LPM lecture slides into a protected store, course by course, and search them as students.

    .venv/bin/python examples/education/lpm_course_search.py --data ../shared/data [--limit 2000]

``--data`` is the shared data folder (it must hold ``lpm/``), like the other examples, or the
``lpm`` folder itself.

One school (the tenant ``lpm-school``): its admin creates a salted+encrypted collection with the
course policy ``item.course in user.courses``; a teacher (curator of all eleven LPM courses) uploads
the slide text (``figure_annotations.csv``: course and lecture from the slide path, text from
``ocr``); two students ask the same questions and each sees only slides of the courses they are
enrolled in. One student then marks results relevant / not relevant and the query is refined with
Rocchio feedback before it is hashed. The audit log is verified at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "adapters"))

from securecmr_education import EducationIndex, create_course_collection, enroll, load_lpm  # noqa: E402

import securecmr  # noqa: E402

SCHOOL = "lpm-school"
QUESTIONS = [
    "how does the golgi apparatus package proteins?",
    "what is early fusion of modalities in multimodal learning?",
    "how should I structure the introduction of an essay?",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "data", help="data root holding lpm/"
    )
    p.add_argument("--models", type=Path, default=None, help="model dir (default $SECURECMR_HOME/models)")
    p.add_argument("--int8", action="store_true", help="use the int8 text encoder")
    p.add_argument("--limit", type=int, default=0, help="index only the first N slides (0 = all)")
    p.add_argument("-k", type=int, default=5)
    args = p.parse_args()

    data = args.data / "lpm" if (args.data / "lpm").is_dir() else args.data
    slides = load_lpm(data)
    if args.limit:
        slides = slides[: args.limit]
    courses = sorted({s.course for s in slides})
    print(f"{len(slides)} slides with text, {len({s.lecture for s in slides})} lectures, courses: {courses}")

    with tempfile.TemporaryDirectory() as tmp:
        store = securecmr.Store.create(Path(tmp) / "school", passphrase="example passphrase, use a real one")
        admin = store.session(store.create_user("head", role="admin", tenant=SCHOOL))
        create_course_collection(admin, "slides")  # salted+encrypted, item.course in user.courses
        teacher = store.session(enroll(store, "teacher", school=SCHOOL, courses=courses, role="curator"))
        upload = EducationIndex(
            teacher.collection("slides"),
            model_dir=args.models,
            int8=args.int8,
            render_px=None,
            store_text=True,
            max_text_chars=300,
            batch_items=256,
        )
        t0 = time.perf_counter()
        report = upload.add_slide_texts(slides)
        print(
            f"indexed {report.items} slides in {time.perf_counter() - t0:.1f} s "
            f"({len(report.problems)} skipped)"
        )

        students = {
            "ana (biology)": ["bio-1", "bio-3", "bio-4"],
            "ben (machine learning, speaking)": ["ml-1", "speaking"],
        }
        views = {}
        for who, enrolled in students.items():
            token = enroll(store, who.split()[0], school=SCHOOL, courses=enrolled)
            views[who] = EducationIndex(
                store.session(token).collection("slides"),
                model_dir=args.models,
                int8=args.int8,
                render_px=None,
            )
            views[who].text_encoder = upload.text_encoder  # share the loaded model
        for q in QUESTIONS:
            print(f"\nQ: {q}")
            for who, index in views.items():
                print(f"  as {who}:")
                for r in index.search(text=q, k=args.k):
                    print(f"    {r.score:.3f}  {r.where()}")

        # relevance feedback: ana judges her first results (by the slide text she was shown)
        ana = views["ana (biology)"]
        q = QUESTIONS[0]
        first = ana.search(text=q, k=args.k)  # hits carry the (sealed) slide text: store_text=True
        relevant = [h for h in first if h.text and "golgi" in h.text]
        others = [h for h in first if h not in relevant]
        print(f"\nana marks {len(relevant)} of {len(first)} results relevant (they mention the golgi):")
        for r in ana.search(text=q, k=args.k, relevant=relevant, nonrelevant=others):
            print(f"    {r.score:.3f}  {r.where()}")

        audit = store.audit
        audit.verify()
        print(f"\naudit log verified ({sum(1 for _ in audit.records())} records)")
        store.close()


if __name__ == "__main__":
    main()
