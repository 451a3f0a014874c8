"""How fast the console's pages answer with many findings in the store (issue #15: queue page < 300 ms at 100,000).

    python scripts/bench_console.py [--findings 100000] [--db URL] [--repeat 20]

Fills a fresh store (an SQLite file in a temporary directory unless --db names one, e.g. the PostgreSQL
server of deploy/postgres/start.sh) with findings copied from the demo's alerts — new ids, 1,000 rooms,
one finding a second of event time, every severity and rule of the demo — then requests each page through
the real Flask application (logged in, templates rendered) and prints the median and the slowest time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.cli import main as livewatch  # noqa: E402
from pipeline.console.decisions import JsonlSink  # noqa: E402
from pipeline.console.store import QueueFilter, Store  # noqa: E402
from pipeline.console.users import add_user  # noqa: E402
from pipeline.console.web import create_app  # noqa: E402
from schemas.findings import Finding, derived_id  # noqa: E402

TARGET_MS = 300.0
PASSWORD = "bench password"


def demo_findings(tmp: Path) -> list[Finding]:
    with contextlib.redirect_stdout(io.StringIO()):
        livewatch(["demo", "--fast", "--out", str(tmp / "demo")])
    lines = (tmp / "demo" / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    return [Finding.model_validate_json(line) for line in lines]


def fill(store: Store, templates: list[Finding], n: int) -> float:
    start = time.perf_counter()
    base = min(f.ts for f in templates)
    batch: list[Finding] = []
    for i in range(n):
        t = templates[i % len(templates)]
        room = f"bench-room-{i % 1000:04d}"
        batch.append(
            t.model_copy(
                update={
                    "finding_id": derived_id("bench", i),
                    "room_id": room,
                    "ts": base + i * 1000,
                    "subject": t.subject if t.subject.kind == "account" else t.subject.model_copy(update={"id": room}),
                }
            )
        )
        if len(batch) == 5000:
            store.add_findings(batch)
            batch = []
    store.add_findings(batch)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--findings", type=int, default=100_000)
    p.add_argument("--db", default=None, help="store URL (default: a new SQLite file)")
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        store = Store(args.db or f"sqlite:///{tmp / 'bench.db'}")
        filled = fill(store, demo_findings(tmp), args.findings)
        store.analyze()  # as the server's autovacuum would after a bulk load
        total = store.count(QueueFilter(state="all", include_shadow=True))
        print(f"store {store.engine.url.render_as_string()}: {total:,} findings (filled in {filled:.1f} s)")

        add_user(store, "bench", PASSWORD, "reviewer")
        client = create_app(store, JsonlSink(tmp / "decisions")).test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        client.post("/login", data={"csrf_token": token, "username": "bench", "password": PASSWORD})
        one = store.queue(QueueFilter(), limit=1)[0]
        pages = {
            "queue (open, most severe first)": "/",
            "queue, page 100": "/?page=100",
            "queue by room": "/?room=bench-room-0042",
            "queue by severity + rule + age 1 h": f"/?severity=high&rule={one['rule_id']}&age=60",
            "live count": "/api/count",
            "finding": f"/finding/{one['finding_id']}",
            "room (timeline)": "/room/bench-room-0042",
        }
        print(f"{'page':<38} {'median ms':>10} {'max ms':>8}   (each {args.repeat} times)")
        worst_queue = 0.0
        for name, path in pages.items():
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, f"{path}: {response.status_code}"
            print(f"{name:<38} {statistics.median(times):>10.1f} {max(times):>8.1f}")
            if name.startswith("queue"):
                worst_queue = max(worst_queue, statistics.median(times))
        met = "met" if worst_queue < TARGET_MS else "NOT met"
        print(f"slowest queue page (median): {worst_queue:.1f} ms — target < {TARGET_MS:.0f} ms: {met}")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
