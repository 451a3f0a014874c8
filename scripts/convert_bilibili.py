"""Convert a Bilibili danmaku dump (../shared/data/bilibili_danmaku_*.jsonl) to livewatch's wire format.

Input rows: {seq, ts_unix (s), offset_s (s from stream start), user, text}. ``ts_unix`` has whole
seconds only; ``offset_s`` has milliseconds, so event time is the stream start (the median of
ts_unix - offset_s) plus offset_s. Output: one ``danmaku`` event per row, sorted by event time.

    python scripts/convert_bilibili.py ../shared/data/bilibili_danmaku_2020-12-12.jsonl out/bili-12-12.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def convert(src: Path, dst: Path, room_id: str | None = None) -> int:
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    start_s = statistics.median(r["ts_unix"] - r["offset_s"] for r in rows)
    room = room_id or f"bilibili-{src.stem.rsplit('_', 1)[-1]}"
    events = [
        {
            "event_id": f"{room}-{r['seq']}",
            "kind": "danmaku",
            "room_id": room,
            "platform": "bilibili",
            "ts": round((start_s + r["offset_s"]) * 1000),
            "user_id": r["user"],
            "text": r["text"],
            "role": "viewer",
        }
        for r in rows
    ]
    events.sort(key=lambda e: e["ts"])
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "w", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    return len(events)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--room", default=None, help="room_id to use (default: bilibili-<date>)")
    args = p.parse_args()
    n = convert(args.src, args.dst, args.room)
    print(f"wrote {n:,} danmaku events to {args.dst}")


if __name__ == "__main__":
    main()
