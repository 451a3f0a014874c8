"""Write examples/prices_ai_labels.jsonl: the price-marking and AI-label rooms of the demo simulator.

    python scripts/make_examples.py [--check]

The recording is deterministic (pipeline/simulator.py, ``example_events``): every rule of the
``price_marking`` and ``ai_label`` detectors fires in it, and the negatives of issue #5 — a basis shown,
an original price really charged within 7 days, a label shown within its grace — sit beside them in
rooms that must stay quiet. ``--check`` exits 1 if the file differs from what the simulator writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.simulator import example_lines  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "examples" / "prices_ai_labels.jsonl"


def render() -> bytes:
    return b"".join(line + b"\n" for line in example_lines())


def main(argv: list[str]) -> int:
    data = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_bytes() != data:
            print(f"{OUT} is out of date; run: python scripts/make_examples.py", file=sys.stderr)
            return 1
        print(f"{OUT} is up to date")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(data)
    print(f"wrote {OUT} ({len(data.splitlines())} events)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
