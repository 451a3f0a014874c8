"""What a rebuild of sliding-window state after a rebalance costs: events re-read and fed, and how long.

    python scripts/bench_rebuild.py                          # starts its own broker (deploy/kafka/start.sh)
    python scripts/bench_rebuild.py --windows 600 3600 --broker 127.0.0.1:19092

1. Offline: the engine's rebuild entry point (``Engine.warm``) alone, on the real Bilibili stream
   (48,598 danmaku in one room), with the flood rules on: events/s.
2. Through the broker, for each window (``window_s`` of the flood detector): the stream is published, one
   worker decides it and leaves; a second worker takes over and rebuilds the window before the end of
   the stream. Its log line says how many events it fed, from how many records, and how long the read
   and the whole rebuild took.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.engine import Engine  # noqa: E402
from pipeline.ruleset import DEFAULT_RULES_DIR, load_ruleset  # noqa: E402
from schemas.events import event_adapter  # noqa: E402
from scripts.convert_bilibili import convert  # noqa: E402
from tests.builders import floods_on_rules  # noqa: E402
from tests.kafka_harness import Broker, Worker, start_broker, wait_for  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "bilibili_danmaku_2020-12-12.jsonl"
REBUILT = re.compile(
    r"partition (\d+): rebuilt (\d+) rooms from (\d+) events from (\d+) records .* in ([\d.]+) s "
    r"\(read ([\d.]+) s\)"
)


def offline(recording: Path, rules: Path) -> None:
    events = [event_adapter.validate_json(line) for line in recording.read_bytes().splitlines() if line.strip()]
    engine = Engine(load_ruleset(rules))
    start = time.perf_counter()
    engine.warm(events)
    elapsed = time.perf_counter() - start
    print(f"OFFLINE  Engine.warm: {len(events):,} events in {elapsed:.2f} s = {len(events) / elapsed:,.0f} events/s")


def through_broker(broker: Broker, recording: Path, rules: Path, window_s: int, tmp: Path) -> None:
    prefix = f"rebuild{window_s}x{int(time.time())}."
    env = {**os.environ, "LIVEWATCH_BROKER": broker.url, "LIVEWATCH_TOPIC_PREFIX": prefix, "LIVEWATCH_PARTITIONS": "4"}
    subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "publish", str(recording)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    n = sum(1 for line in recording.read_bytes().splitlines() if line.strip())
    first = Worker(broker, prefix, tmp, f"first{window_s}", rules_dir=rules)
    try:
        first.wait_assigned()
        wait_for(
            lambda: first.total("livewatch_events_total") >= n, 900, "the first worker to decide the stream", interval=1
        )
        time.sleep(6)  # two commit intervals: the committed offsets reach the end
    finally:
        first.stop()
    second = Worker(broker, prefix, tmp, f"second{window_s}", rules_dir=rules)
    try:
        second.wait_assigned()
        wait_for(lambda: second.total("livewatch_rebuilds_total") >= 4, 300, "the rebuilds", interval=0.5)
        lines = [m for m in map(REBUILT.search, second.log_path.read_text(errors="replace").splitlines()) if m]
    finally:
        second.stop()
    for m in lines:
        partition, rooms, events, records, took, read = m.groups()
        if int(events):
            print(
                f"BROKER   window_s={window_s}: partition {partition} rebuilt {int(events):,} events "
                f"(read {int(records):,} records) in {float(took):.2f} s, of which reading {float(read):.2f} s"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", help="host:port of a running broker (default: start one)")
    ap.add_argument("--windows", type=int, nargs="+", default=[600, 3600, 4 * 3600])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="livewatch-bench-rebuild-") as d:
        tmp = Path(d)
        recording = tmp / "bili.jsonl"
        convert(DATA, recording)
        if args.broker:
            host, port = args.broker.rsplit(":", 1)
            broker = Broker(int(port), tmp / "unused")
        else:
            broker = start_broker(tmp / "kafka")
        try:
            for window_s in args.windows:
                rules = floods_on_rules(DEFAULT_RULES_DIR, tmp / f"rules{window_s}", window_s=window_s)
                if window_s == args.windows[0]:
                    offline(recording, rules)
                through_broker(broker, recording, rules, window_s, tmp)
        finally:
            if not args.broker:
                broker.stop()


if __name__ == "__main__":
    main()
