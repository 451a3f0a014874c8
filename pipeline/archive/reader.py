"""Reading the archive with DuckDB: one view per data class over the files the manifest vouches for, with
duplicates removed (the same id with the same bytes: at-least-once archiving writes some rows twice).

Only files the manifest lists are read — not whatever a glob finds — so a file slipped into the archive
afterwards is never evidence, and a query for a few days opens only those days' files (pruned by the
manifest's day and time range before DuckDB opens anything; inside a file, by row-group statistics).

Trino, Spark or DuckDB on their own read the same files by glob (``events/**/*.parquet``, Hive partitions
``day``/``platform``); they then see duplicates and must drop them by (id, payload) as the views here do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from pipeline.archive.manifest import ManifestState, live_files, load
from pipeline.archive.rows import DATA_CLASSES, SCHEMA, day_of
from pipeline.archive.storage import Store

#: same as pipeline.kafka.merge.NO_SEQ: events without a publisher sequence sort after those with one
NO_SEQ = 1 << 62
#: the worker's decision order (pipeline/kafka/merge.order_key), so a backfill decides as the worker did
DECISION_ORDER = f"ts, coalesce(seq, {NO_SEQ}), coalesce(source_topic, ''), coalesce(source_offset, 0), id"


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class StoredEvent:
    room_id: str
    ts: int
    payload: bytes
    source: str


class ArchiveReader:
    def __init__(self, store: Store, state: ManifestState | None = None) -> None:
        self.store = store
        self.state = state if state is not None else load(store)
        self.con = duckdb.connect()
        if not store.is_local:
            self.con.register_filesystem(store.fs)
        self.con.register("_empty_rows", SCHEMA.empty_table())

    def view(
        self,
        data_class: str,
        *,
        ts_range: tuple[int, int] | None = None,
        platforms: Sequence[str] | None = None,
        rooms: Sequence[str] | None = None,
        subjects: Sequence[str] | None = None,
        name: str | None = None,
    ) -> str:
        """Create (or replace) a view of one class's live files, pruned to a time range (and to rooms or
        subjects: filtered before the de-duplication, which could not push such a filter below itself and would
        read every row of the range first); return its name."""
        if data_class not in DATA_CLASSES:
            raise ValueError(f"unknown data class {data_class!r}: one of {', '.join(DATA_CLASSES)}")
        days = (day_of(ts_range[0]), day_of(ts_range[1])) if ts_range else None
        files = live_files(self.state, data_class, days=days, ts_range=ts_range, platforms=platforms)
        view = name or data_class
        if files:
            paths = ", ".join(sql_literal(self.store.url_of(f.path)) for f in files)
            source = f"read_parquet([{paths}], hive_partitioning = true, hive_types_autocast = false)"
        else:
            source = "(SELECT *, NULL::VARCHAR AS day, NULL::VARCHAR AS platform FROM _empty_rows)"
        conditions = []
        if ts_range is not None:
            conditions.append(f"ts BETWEEN {int(ts_range[0])} AND {int(ts_range[1])}")
        if rooms is not None:
            conditions.append(f"room_id IN ({', '.join(sql_literal(r) for r in rooms) or 'NULL'})")
        if subjects is not None:
            conditions.append(f"subject IN ({', '.join(sql_literal(r) for r in subjects) or 'NULL'})")
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        # a duplicate is the same message twice: same id, same bytes (so also the same room and subject)
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {source} {where}"
            "QUALIFY row_number() OVER (PARTITION BY id, payload ORDER BY day, platform) = 1"
        )
        return view

    def views(self, ts_range: tuple[int, int] | None = None) -> None:
        for data_class in DATA_CLASSES:
            self.view(data_class, ts_range=ts_range)

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        result = self.con.execute(sql, list(params))
        columns = [d[0] for d in result.description or []]
        return columns, result.fetchall()

    def rooms(self, start_ms: int, end_ms: int) -> list[str]:
        self.view("events", ts_range=(start_ms, end_ms))
        _, rows = self.query(
            "SELECT DISTINCT room_id FROM events WHERE room_id IS NOT NULL AND ts BETWEEN ? AND ? ORDER BY 1",
            (start_ms, end_ms),
        )
        return [r[0] for r in rows]

    def events(self, rooms: Sequence[str], start_ms: int, end_ms: int) -> list[StoredEvent]:
        """The rooms' input messages with start ≤ ts ≤ end, exact bytes, in the worker's decision order."""
        self.view("events", ts_range=(start_ms, end_ms), rooms=rooms)
        _, rows = self.query(
            "SELECT room_id, ts, payload, coalesce(source_topic || '[' || source_partition || ']@' || source_offset,"
            " source_file || ':' || seq, '') FROM events "
            f"ORDER BY {DECISION_ORDER}",
        )
        return [StoredEvent(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    def outputs(self, data_class: str, rooms: Sequence[str], start_ms: int, end_ms: int) -> list[bytes]:
        """Alerts or actions decided for the rooms with start ≤ ts ≤ end, as published."""
        view = self.view(data_class, ts_range=(start_ms, end_ms), rooms=rooms)
        _, rows = self.query(f"SELECT payload FROM {view} ORDER BY ts, id")
        return [bytes(r[0]) for r in rows]
