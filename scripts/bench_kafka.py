"""The Kafka sections of ``scripts/bench.py`` under their old names (kept so old commands still work).

    python scripts/bench_kafka.py --only throughput          # = scripts/bench.py --only b
    python scripts/bench_kafka.py --only latency --rate 500 --seconds 30
                                                             # = scripts/bench.py --only d --rates 500 --seconds 30
    python scripts/bench_kafka.py --broker 127.0.0.1:19092   # both

Every figure, its method and its target: scripts/bench.py and docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts import bench


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", help="host:port of a running broker (default: start one)")
    p.add_argument(
        "--rate", type=float, default=None, help="offered events/s of the latency run (default 500,1000,2000,5000)"
    )
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--only", choices=["throughput", "latency"], help="run one of the two measurements")
    p.add_argument("--quick", action="store_true", help="small inputs")
    args = p.parse_args(argv)
    sections = {"throughput": "b", "latency": "d", None: "b,d"}[args.only]
    forward = ["--only", sections]
    if args.broker:
        forward += ["--broker", args.broker]
    if args.rate:
        forward += ["--rates", f"{args.rate:g}"]
    if args.seconds:
        forward += ["--seconds", f"{args.seconds:g}"]
    if args.quick:
        forward.append("--quick")
    return bench.main(forward)


if __name__ == "__main__":
    sys.exit(main())
