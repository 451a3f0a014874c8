"""Backfill: a stored range of rooms re-run through a ruleset, and what it would have decided compared with
what was decided then.

Rooms are independent (a room's state never reads another's), so a backfill splits rooms into shards by a
stable hash and runs each shard in its own process; each shard reads its own rooms' events from the archive.
The output is sorted canonically — (ts, room, id) — so one process and N shards write the same bytes.

A range that starts in the middle of a room's history starts with empty room state (no ladder steps, no
price history): choose the range from the room's start for an exact re-run, or read the diff knowing that.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from pipeline.archive.reader import ArchiveReader
from pipeline.archive.storage import open_store
from schemas.deadletter import MessageSource

#: fields that differ between two rulesets without the decision differing: ignored when comparing
NOT_A_DECISION = frozenset({"ruleset_version"})
OUTPUTS = (("alerts", "finding_id"), ("actions", "action_id"))


def shard_of(room_id: str, shards: int) -> int:
    """A room's shard: stable across processes and runs (Python's hash() of a str is salted per process)."""
    return zlib.crc32(room_id.encode()) % shards


@dataclass
class ShardResult:
    events: int = 0
    lines: dict[str, list[str]] = field(default_factory=dict)  # "alerts"/"actions"/"dlq" → JSON lines


def run_shard(
    archive_url: str,
    rooms: Sequence[str],
    start_ms: int,
    end_ms: int,
    rules_dir: str | None,
    pseudonym_key: str,
    work_dir: str,
) -> ShardResult:
    """Decide one shard's rooms in one process (the embedded runtime's engine, output to ``work_dir``)."""
    from pipeline.embedded import ACTIONS_FILE, ALERTS_FILE, DLQ_FILE, EmbeddedRuntime

    reader = ArchiveReader(open_store(archive_url))
    stored = reader.events(rooms, start_ms, end_ms)
    out = Path(work_dir)
    runtime = EmbeddedRuntime(
        out,
        rules_dir=Path(rules_dir) if rules_dir else None,
        pseudonym_key=pseudonym_key,
        reload_every_s=1e9,  # one ruleset for the whole backfill
    )
    messages = ((MessageSource(file=f"archive:{e.source}", line=i), e.payload) for i, e in enumerate(stored, 1))
    stats = runtime.run(messages)
    result = ShardResult(events=stats.events)
    for name, file in (("alerts", ALERTS_FILE), ("actions", ACTIONS_FILE), ("dlq", DLQ_FILE)):
        result.lines[name] = (out / file).read_text(encoding="utf-8").splitlines()
    return result


def _canonical(lines: list[str]) -> list[str]:
    def key(line: str) -> tuple[int, str, str]:
        d = json.loads(line)
        return (int(d.get("ts") or 0), str(d.get("room_id") or ""), line)

    return sorted(lines, key=key)


@dataclass
class Diff:
    """New, gone and changed outputs, per rule."""

    by_rule: dict[str, Counter[str]] = field(default_factory=dict)  # "alerts:rule" → {"new": n, …}
    items: list[dict[str, Any]] = field(default_factory=list)  # one per difference

    def add(self, output: str, change: str, record: dict[str, Any], then: Any, now: Any) -> None:
        rule_id, id_field = str(record.get("rule_id")), dict(OUTPUTS)[output]
        self.by_rule.setdefault(f"{output}:{rule_id}", Counter())[change] += 1
        self.items.append(
            {
                "output": output,
                "change": change,
                "rule_id": rule_id,
                "room_id": record.get("room_id"),
                "id": record.get(id_field),
                "then": then,
                "now": now,
            }
        )

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.by_rule.values():
            total.update(counts)
        return total


def diff_outputs(then: dict[str, list[bytes | str]], now: dict[str, list[str]]) -> Diff:
    """Compare decided-then with would-decide-now, by finding and action id; per rule."""
    diff = Diff()
    for output, id_field in OUTPUTS:
        before = {d[id_field]: d for d in (json.loads(x) for x in then.get(output, []))}
        after = {d[id_field]: d for d in (json.loads(x) for x in now.get(output, []))}
        for id_ in sorted(after.keys() - before.keys()):
            diff.add(output, "new", after[id_], None, after[id_])
        for id_ in sorted(before.keys() - after.keys()):
            diff.add(output, "gone", before[id_], before[id_], None)
        for id_ in sorted(before.keys() & after.keys()):
            a = {k: v for k, v in before[id_].items() if k not in NOT_A_DECISION}
            b = {k: v for k, v in after[id_].items() if k not in NOT_A_DECISION}
            if a != b:
                changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
                diff.add(output, "changed", after[id_], {k: a.get(k) for k in changed}, {k: b.get(k) for k in changed})
    return diff


@dataclass
class BackfillReport:
    rooms: list[str]
    events: int
    outputs: dict[str, int]
    diff: Diff
    shards: int

    def summary(self) -> str:
        t = self.diff.totals()
        return (
            f"{len(self.rooms)} room(s), {self.events:,} events in {self.shards} shard(s): "
            f"{self.outputs.get('alerts', 0)} alerts, {self.outputs.get('actions', 0)} actions; "
            f"against what was decided then: {t['new']} new, {t['gone']} gone, {t['changed']} changed"
        )


def backfill(
    archive_url: str,
    rooms: Sequence[str] | None,
    start_ms: int,
    end_ms: int,
    out: Path,
    *,
    rules_dir: Path | None = None,
    shards: int = 1,
    pseudonym_key: str,
) -> BackfillReport:
    """Re-run the rooms (all rooms with events in the range if None) and write ``out``/alerts.jsonl,
    actions.jsonl, dlq.jsonl (canonical order), diff.json and diff.md."""
    reader = ArchiveReader(open_store(archive_url, create=False))
    chosen = sorted(set(rooms)) if rooms else reader.rooms(start_ms, end_ms)
    groups: list[list[str]] = [[] for _ in range(shards)]
    for room in chosen:
        groups[shard_of(room, shards)].append(room)
    out.mkdir(parents=True, exist_ok=True)
    args = [
        (
            archive_url,
            group,
            start_ms,
            end_ms,
            str(rules_dir) if rules_dir else None,
            pseudonym_key,
            str(out / f"shard-{i}"),
        )
        for i, group in enumerate(groups)
        if group
    ]
    if len(args) <= 1:
        results = [run_shard(*a) for a in args]
    else:
        # spawn, not fork: DuckDB's and the engine's threads do not survive a fork
        with ProcessPoolExecutor(len(args), mp_context=get_context("spawn")) as pool:
            results = list(pool.map(run_shard, *zip(*args, strict=True)))
    now: dict[str, list[str]] = {}
    for name in ("alerts", "actions", "dlq"):
        merged = _canonical([line for r in results for line in r.lines.get(name, [])])
        now[name] = merged
        (out / f"{name}.jsonl").write_text("".join(line + "\n" for line in merged), encoding="utf-8")
    for a in args:  # the shards' own files are merged above
        for file in Path(a[-1]).glob("*.jsonl"):
            file.unlink()
        Path(a[-1]).rmdir()
    then: dict[str, list[bytes | str]] = {
        name: list(reader.outputs(name, chosen, start_ms, end_ms)) for name, _ in OUTPUTS
    }
    diff = diff_outputs(then, now)
    report = BackfillReport(chosen, sum(r.events for r in results), {k: len(v) for k, v in now.items()}, diff, shards)
    (out / "diff.json").write_text(
        json.dumps(
            {
                "rooms": chosen,
                "between": [start_ms, end_ms],
                "totals": dict(diff.totals()),
                "by_rule": {k: dict(v) for k, v in sorted(diff.by_rule.items())},
                "items": diff.items,
            },
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    (out / "diff.md").write_text(diff_table(diff), encoding="utf-8")
    return report


def diff_table(diff: Diff) -> str:
    lines = ["| output:rule | new | gone | changed |", "|---|---:|---:|---:|"]
    for key, counts in sorted(diff.by_rule.items()):
        lines.append(f"| {key} | {counts['new']} | {counts['gone']} | {counts['changed']} |")
    if len(lines) == 2:
        lines.append("| (no difference) | 0 | 0 | 0 |")
    return "\n".join(lines) + "\n"
