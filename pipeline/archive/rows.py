"""What one archived record is: its data class, its partition (day, platform), the columns analysts and the
backfill prune and order by, and its exact bytes.

Every data class has the same columns, so one writer, one reader and one Parquet schema serve them all:

- ``events``: every input message as it arrived (valid or not: a rejected one is evidence too);
- ``dead_letters``: the dead-letter records (reason, source, the raw bytes base64);
- ``alerts``: findings as published (account ids already pseudonymised, pipeline/privacy.py);
- ``actions``: enforcement actions as published.

The row's columns are read from the payload leniently: a payload that is not the JSON it should be is
archived all the same (``platform`` "_unknown", ``ts`` the fallback the caller gives), never dropped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from schemas.deadletter import MessageSource

DATA_CLASSES = ("events", "dead_letters", "alerts", "actions")
UNKNOWN_PLATFORM = "_unknown"
#: a platform name used as a directory name as is; any other is archived under "_other" (the payload keeps it)
_SAFE_PLATFORM = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: event times outside these bounds cannot be a real day of a live stream: the fallback time is used instead
_MIN_TS, _MAX_TS = 946_684_800_000, 4_102_444_800_000  # 2000-01-01, 2100-01-01

#: the columns of every archive file; ``day`` and ``platform`` are not among them: they are the directory
#: names (Hive-style ``day=2026-02-01/platform=douyin``), which DuckDB, Trino and Spark read as columns
SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # event_id / finding_id / action_id / dead letter's source
        pa.field("room_id", pa.string()),
        pa.field("kind", pa.string()),  # event kind / dead-letter reason / detector / action type
        pa.field("ts", pa.int64(), nullable=False),  # event time, ms since the epoch
        pa.field("time", pa.timestamp("ms", tz="UTC"), nullable=False),  # the same, as a timestamp
        pa.field("rule_id", pa.string()),  # alerts and actions
        pa.field("subject", pa.string()),  # events: user_id; alerts: pseudonym or room; actions: account or room
        pa.field("source_topic", pa.string()),  # where it came from: a Kafka position ...
        pa.field("source_partition", pa.int32()),
        pa.field("source_offset", pa.int64()),
        pa.field("source_file", pa.string()),  # ... or a file and line (the embedded runtime)
        pa.field("seq", pa.int64()),  # publisher's sequence header or the recording's line: ties in decision order
        # the exact bytes; a duplicate is the same id with the same payload. (No per-row digest column: 32
        # random bytes a row would double the archive's size, and each file's sha256 is in the manifest.)
        pa.field("payload", pa.binary(), nullable=False),
    ]
)


@dataclass(frozen=True, slots=True)
class ArchiveRow:
    data_class: str
    id: str
    room_id: str | None
    platform: str
    kind: str | None
    ts: int
    rule_id: str | None
    subject: str | None
    source: MessageSource
    seq: int | None
    payload: bytes

    @property
    def day(self) -> str:
        return day_of(self.ts)

    @property
    def partition(self) -> tuple[str, str, str]:
        return (self.data_class, self.day, self.platform)


def day_of(ts: int) -> str:
    """The UTC day of an event time: the archive's day partitions are UTC days (clamped to 2000..2099)."""
    ts = min(max(ts, _MIN_TS), _MAX_TS - 1)
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d")


def _json(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _platform(value: object) -> str:
    if not isinstance(value, str) or not value:
        return UNKNOWN_PLATFORM
    return value if _SAFE_PLATFORM.fullmatch(value) else "_other"


def _ts(value: object, fallback: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and _MIN_TS <= value < _MAX_TS:
        return value
    return fallback


def _subject_id(data: dict[str, Any]) -> str | None:
    subject = data.get("subject")
    return _str(subject.get("id")) if isinstance(subject, dict) else None


def event_row(payload: bytes, source: MessageSource, seq: int | None, fallback_ts: int) -> ArchiveRow:
    """An input message, exactly as it arrived. One that is not an event keeps its place by its source."""
    data = _json(payload)
    return ArchiveRow(
        "events",
        id=_str(data.get("event_id")) or str(source),
        room_id=_str(data.get("room_id")),
        platform=_platform(data.get("platform")),
        kind=_str(data.get("kind")),
        ts=_ts(data.get("ts"), fallback_ts),
        rule_id=None,
        subject=_str(data.get("user_id")),
        source=source,
        seq=seq,
        payload=payload,
    )


def dead_letter_row(payload: bytes, source: MessageSource, fallback_ts: int) -> ArchiveRow:
    """A dead-letter record; room, platform and time come from the rejected bytes inside it when they say."""
    data = _json(payload)
    try:
        rejected = _json(base64.b64decode(data.get("raw_b64") or ""))
    except ValueError:
        rejected = {}
    where = data.get("source") if isinstance(data.get("source"), dict) else {}
    assert isinstance(where, dict)
    # a dead letter is identified by the message it rejected (a worker that decides it again writes the same)
    origin = MessageSource(
        topic=_str(where.get("topic")),
        partition=where.get("partition") if isinstance(where.get("partition"), int) else None,
        offset=where.get("offset") if isinstance(where.get("offset"), int) else None,
        file=_str(where.get("file")),
        line=where.get("line") if isinstance(where.get("line"), int) else None,
    )
    return ArchiveRow(
        "dead_letters",
        id=str(origin) if where else str(source),
        room_id=_str(rejected.get("room_id")),
        platform=_platform(rejected.get("platform")),
        kind=_str(data.get("reason")),
        ts=_ts(rejected.get("ts"), fallback_ts),
        rule_id=None,
        subject=_str(rejected.get("user_id")),
        source=source,
        seq=None,
        payload=payload,
    )


def output_row(data_class: str, payload: bytes, source: MessageSource, fallback_ts: int) -> ArchiveRow:
    """An alert (finding) or an action, as published."""
    data = _json(payload)
    id_field, kind_field = ("finding_id", "detector") if data_class == "alerts" else ("action_id", "action")
    return ArchiveRow(
        data_class,
        id=_str(data.get(id_field)) or str(source),
        room_id=_str(data.get("room_id")),
        platform=_platform(data.get("platform")),
        kind=_str(data.get(kind_field)),
        ts=_ts(data.get("ts"), fallback_ts),
        rule_id=_str(data.get("rule_id")),
        subject=_subject_id(data),
        source=source,
        seq=None,
        payload=payload,
    )


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def to_table(rows: list[ArchiveRow]) -> pa.Table:
    """Rows as an Arrow table of ``SCHEMA``, sorted by room then event time: a room's rows sit together, so
    a room's query reads only the row groups whose room_id min/max statistics can hold it."""
    rows = sorted(rows, key=lambda r: (r.room_id or "", r.ts, r.seq if r.seq is not None else -1, r.id))
    return pa.table(
        {
            "id": [r.id for r in rows],
            "room_id": [r.room_id for r in rows],
            "kind": [r.kind for r in rows],
            "ts": [r.ts for r in rows],
            "time": [r.ts for r in rows],
            "rule_id": [r.rule_id for r in rows],
            "subject": [r.subject for r in rows],
            "source_topic": [r.source.topic for r in rows],
            "source_partition": [r.source.partition for r in rows],
            "source_offset": [r.source.offset for r in rows],
            "source_file": [r.source.file for r in rows],
            "seq": [r.seq if r.seq is not None else r.source.line for r in rows],
            "payload": [r.payload for r in rows],
        },
        schema=SCHEMA,
    )
