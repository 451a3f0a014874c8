"""Backfill speed-up with shards of rooms (issue #13 item 3), printed for docs/archive.md:

    python scripts/bench_backfill.py [--rooms 400] [--comments 40] [--shards 1,2,4]

Builds an archive with the embedded runtime's sink from bench.py's synthetic commerce rooms (real Douyin and
Bilibili comment texts, host speech, prices), then runs ``replay --from-archive`` over every room with each
shard count, checks that every run wrote the same bytes, and prints wall time and speed-up against one shard.
This machine has 2 cores (shared with other work): more than 2 shards cannot be faster than 2.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import comment_texts, commerce_events, dumps  # type: ignore[import-not-found]

from pipeline.archive.backfill import backfill
from pipeline.archive.sink import ArchiveSink
from pipeline.archive.storage import open_store
from pipeline.archive.writer import ArchiveWriter
from pipeline.embedded import EmbeddedRuntime
from pipeline.privacy import DEV_KEY
from schemas.deadletter import MessageSource


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the shard processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rooms", type=int, default=2000)
    p.add_argument("--comments", type=int, default=40, help="viewer comments per room")
    p.add_argument("--shards", default="1,2,4")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    try:
        lines = dumps(commerce_events(args.rooms, args.comments, comment_texts()))
        sink = ArchiveSink(ArchiveWriter(open_store(str(tmp / "archive")), "bench"))
        t = time.perf_counter()
        stats = EmbeddedRuntime(tmp / "decided", archive=sink, reload_every_s=3600).run(
            (MessageSource(file="bench", line=i), line) for i, line in enumerate(lines, 1)
        )
        print(
            f"archive: {stats.events:,} events in {args.rooms} rooms, {stats.findings} alerts, {stats.actions} "
            f"actions, decided and archived in {time.perf_counter() - t:.1f} s (embedded runtime + sink)"
        )
        outputs: dict[int, bytes] = {}
        base = None
        for shards in (int(s) for s in args.shards.split(",")):
            t = time.perf_counter()
            cpu0 = _cpu_s()
            report = backfill(
                str(tmp / "archive"), None, 0, 1 << 50, tmp / f"out-{shards}", shards=shards, pseudonym_key=DEV_KEY
            )
            elapsed = time.perf_counter() - t
            cpu = _cpu_s() - cpu0
            base = base or elapsed
            written = (tmp / f"out-{shards}" / f"{n}.jsonl" for n in ("alerts", "actions"))
            outputs[shards] = b"".join(f.read_bytes() for f in written)
            totals = report.diff.totals()
            print(
                f"  {shards} shard(s): {elapsed:.1f} s, {report.events / elapsed:,.0f} events/s, speed-up "
                f"{base / elapsed:.2f}x; CPU {cpu:.1f} s in all processes = {cpu / elapsed:.2f} cores busy on average; "
                f"diff against the archive: {dict(totals) or 'none'}"
            )
        same = len(set(outputs.values())) == 1
        print(f"same alerts and actions, byte for byte, for every shard count: {same} ({os.cpu_count()} cores here)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
