"""Instructions per event of the embedded runtime, counted by valgrind's callgrind (issue #11).

    python scripts/bench_instructions.py                      # 12 slices of 300 events spread over c's input
    python scripts/bench_instructions.py --part comments      # the sample's viewer comments only (--part rest)
    python scripts/bench_instructions.py --slices 4 --events 100 --quick   # small, ≈ 1 min
    python scripts/bench_instructions.py --detectors          # also with no detector, then each detector alone

Section c of ``scripts/bench.py`` times events/s, and this machine's speed drifts by ±30 % within minutes: a change
worth 3 % cannot be told from the noise in any number of alternating runs. An instruction count does not drift. The
same code on the same input executes the same instructions whatever else the machine is doing, so two versions of
the code are compared by running this on each. Instructions are not time (cache misses, branch mispredictions), so
this is a comparison, not a target: the targets stay section c's.

How: this process builds section c's input (``bench.build_corpus``) and takes the sample — ``--slices`` runs of
``--events`` consecutive events, spread evenly over the input ordered by event time, so that the kinds, the rooms and
their state are those of the whole (a room's events stay in order, each slice continues the state of the one
before). It then starts itself under ``valgrind --tool=callgrind --instr-atstart=no``. There it warms up as section
c does (the input's first 2,000 events in a runtime of their own; imports, the claims model, caches), builds a fresh
``EmbeddedRuntime``, switches instrumentation on (``callgrind_control -i on``), runs the sample, and switches it off.
Only that run is counted: set-up, imports and the warm-up are not. ``PYTHONHASHSEED=0`` makes the hashing, and so
every set's and dict's layout, the same in every run. ``--detectors`` counts the sample again with no detector (decode,
validate, route and write) and with each detector's rules only, as section c's one-detector rows do (a copy of the
rules with every other detector's rules ``off``): what each detector costs, its text's normalisation included.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

WARM_UP_EVENTS = 2_000


def sample(lines: list[bytes], slices: int, events: int) -> list[bytes]:
    """``slices`` runs of ``events`` consecutive lines, their starts spread evenly over ``lines``."""
    if slices * events >= len(lines):
        return list(lines)
    stride = len(lines) // slices
    return [line for i in range(slices) for line in lines[i * stride : i * stride + events]]


def inner(sample_file: Path, out_dir: Path) -> None:
    """Under callgrind: warm up, then count the sample's run only."""
    from pipeline.embedded import EmbeddedRuntime
    from pipeline.heap import own_process, settle_heap
    from schemas.deadletter import MessageSource

    own_process()  # as section c: the heap settled as `livewatch replay` settles it
    data = pickle.loads(sample_file.read_bytes())
    rules = data["rules"]
    warm = EmbeddedRuntime(out_dir / "warm", rules_dir=rules, reload_every_s=3600)
    warm.run((MessageSource(file="warm", line=i), raw) for i, raw in enumerate(data["warm"], start=1))
    settle_heap()  # as section c and `livewatch replay` do once the runtime is loaded
    runtime = EmbeddedRuntime(out_dir / "run", rules_dir=rules, reload_every_s=3600)
    messages = [(MessageSource(file="bench", line=i), raw) for i, raw in enumerate(data["sample"], start=1)]
    _instrument("on")
    stats = runtime.run(messages)
    _instrument("off")
    print(json.dumps({"events": stats.events, "findings": stats.findings, "actions": stats.actions}), flush=True)


def _instrument(state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True)


def count(lines: list[bytes], warm: list[bytes], tmp: Path, rules: Path | None = None) -> tuple[int, dict[str, int]]:
    """(instructions executed by the sample's run, the run's counts) in a callgrind child process; ``rules``: a rules
    directory other than the shipped one."""
    sample_file = tmp / "sample.pkl"
    sample_file.write_bytes(pickle.dumps({"warm": warm, "sample": lines, "rules": rules}))
    out_file = tmp / "callgrind.out"
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_file}",
        sys.executable,
        __file__,
        "--inner",
        str(sample_file),
        str(tmp),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the callgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    totals = re.search(r"^totals:\s+(\d+)", out_file.read_text(), re.MULTILINE)
    if totals is None:
        raise RuntimeError(f"no totals in {out_file}")
    return int(totals.group(1)), counts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slices", type=int, default=12, help="runs of consecutive events in the sample (default 12)")
    p.add_argument("--events", type=int, default=300, help="events in each run (default 300)")
    p.add_argument("--part", choices=("all", "comments", "rest"), default="all", help="the sample's events counted")
    p.add_argument("--quick", action="store_true", help="section c's --quick input (3,228 events)")
    p.add_argument("--detectors", action="store_true", help="also with no detector, then each detector's rules only")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--inner", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.inner:
        inner(*args.inner)
        return
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            sys.exit(f"bench_instructions: {tool} not found (Debian's valgrind package)")

    from scripts import bench

    with tempfile.TemporaryDirectory(prefix="livewatch-instr-") as name:
        tmp = Path(name)
        corpus = bench.build_corpus(bench.QUICK if args.quick else bench.FULL, tmp)
        lines = corpus.lines
        chosen = sample(lines, args.slices, args.events)
        if args.part != "all":
            chosen = bench.split_viewer_comments(chosen)[0 if args.part == "comments" else 1]
        print(
            f"bench_instructions: {len(chosen):,} events ({args.part}) of {corpus.describe()}, under callgrind",
            flush=True,
        )
        instructions, counts = count(chosen, lines[:WARM_UP_EVENTS], tmp)
        per_event = instructions / max(counts["events"], 1)
        print(
            f"{instructions:,} instructions for {counts['events']:,} events ({counts['findings']:,} alerts, "
            f"{counts['actions']:,} actions): {per_event:,.0f} per event",
            flush=True,
        )
        by_detector = per_detector(chosen, lines[:WARM_UP_EVENTS], tmp) if args.detectors else {}
    if args.json:
        figures = {**vars(args), "json": str(args.json), **counts, "instructions": instructions}
        figures |= {"per_event": per_event, "by_detector": by_detector}
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def per_detector(chosen: list[bytes], warm: list[bytes], tmp: Path) -> dict[str, float]:
    """Instructions per event with no detector, then with each detector's rules only (printed as they come)."""
    from pipeline.ruleset import DEFAULT_RULES_DIR, load_ruleset
    from scripts import bench

    out: dict[str, float] = {}
    for keep in ["", *sorted(load_ruleset(DEFAULT_RULES_DIR).configured)]:
        label = keep or "none"
        rules = bench.rules_with_only({keep} if keep else set(), tmp / f"rules-{label}")
        instructions, counts = count(chosen, warm, tmp, rules)
        out[label] = instructions / max(counts["events"], 1)
        extra = f" (+{out[label] - out['none']:,.0f} over none)" if keep else ""
        print(f"  detectors: {label}: {out[label]:,.0f} per event{extra}", flush=True)
    return out


if __name__ == "__main__":
    main()
