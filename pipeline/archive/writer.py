"""The archive writer: buffers rows per partition (data class, day, platform), and on ``flush`` writes each
buffered partition as one Parquet file, atomically, then chains it into the manifest.

Rolling: the caller asks ``due()`` — buffered bytes past ``roll_bytes`` or the oldest buffered row older
than ``roll_seconds`` — and flushes. A flush writes every partition at once, so that after it returns every
row added so far is on storage and in the manifest: the Kafka archiver commits its offsets only then
(at-least-once; a crash before the commit archives those rows again, and the reader drops the duplicates).

A crash between a file's rename and its manifest entry would leave a complete file no entry lists. Before
writing, a flush records the files it is about to write (``_manifest/<writer>/pending.json``); the next
writer of that name adopts whichever of them exist (they are whole: the rename is atomic) and clears the
rest. Nothing written is ever lost or left unlisted.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from pipeline.archive.manifest import MANIFEST_DIR, PENDING, Chain, file_digest
from pipeline.archive.rows import ArchiveRow, digest, to_table
from pipeline.archive.storage import Store

DEFAULT_ROLL_BYTES = 64 * 1024 * 1024
DEFAULT_ROLL_SECONDS = 300.0
#: Parquet row groups of this many rows: readers skip groups by their min/max statistics (room, time)
ROW_GROUP_ROWS = 64 * 1024


@dataclass
class FlushStats:
    files: int = 0
    rows: int = 0
    bytes: int = 0  # compressed, on storage
    payload_bytes: int = 0  # the archived messages' own size


class ArchiveWriter:
    def __init__(
        self,
        store: Store,
        writer: str = "main",
        *,
        roll_bytes: int = DEFAULT_ROLL_BYTES,
        roll_seconds: float = DEFAULT_ROLL_SECONDS,
        compression: str = "zstd",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.chain = Chain(store, writer)
        self.roll_bytes, self.roll_seconds, self.compression, self.clock = roll_bytes, roll_seconds, compression, clock
        self._buffers: dict[tuple[str, str, str], list[ArchiveRow]] = {}
        self._buffered_bytes = 0
        self._oldest: float | None = None
        self.totals = FlushStats()
        self._recover()

    @property
    def writer(self) -> str:
        return self.chain.writer

    def _pending_name(self) -> str:
        return f"{MANIFEST_DIR}/{self.writer}/{PENDING}"

    def _recover(self) -> None:
        """Adopt the files an interrupted flush renamed but did not chain; forget the ones it never wrote."""
        if not self.store.exists(self._pending_name()):
            return
        planned = json.loads(self.store.read(self._pending_name()))
        for item in planned["files"]:
            if item["seq"] <= self.chain.seq or not self.store.exists(item["path"]):
                continue
            sha, size = file_digest(self.store, item["path"])
            meta = pq.read_metadata(self.store.fs.open(self.store.path(item["path"]), "rb"))
            self.chain.append(
                "add",
                path=item["path"],
                sha256=sha,
                bytes=size,
                rows=meta.num_rows,
                data_class=item["data_class"],
                day=item["day"],
                platform=item["platform"],
                min_ts=item["min_ts"],
                max_ts=item["max_ts"],
                recovered=True,
            )
        for temp in self.store.glob(f"*/day=*/platform=*/_tmp-*-{self.writer}-*.parquet.partial"):
            self.store.delete(temp)  # a half-written temporary file: its rows were never acknowledged
        self.store.delete(self._pending_name())

    def add(self, row: ArchiveRow) -> None:
        self._buffers.setdefault(row.partition, []).append(row)
        self._buffered_bytes += len(row.payload) + 64
        if self._oldest is None:
            self._oldest = self.clock()

    @property
    def buffered_rows(self) -> int:
        return sum(len(rows) for rows in self._buffers.values())

    def due(self) -> bool:
        if self._buffered_bytes >= self.roll_bytes:
            return True
        return self._oldest is not None and self.clock() - self._oldest >= self.roll_seconds

    def flush(self) -> FlushStats:
        """Write every buffered partition as one file and chain it; return what was written."""
        stats = FlushStats()
        if not self._buffers:
            return stats
        parts = sorted(self._buffers.items())
        planned: list[dict[str, Any]] = []
        for i, ((data_class, day, platform), rows) in enumerate(parts, start=1):
            seq = self.chain.seq + i
            path = f"{data_class}/day={day}/platform={platform}/{self.writer}-{seq:012d}.parquet"
            planned.append(
                {
                    "seq": seq,
                    "path": path,
                    "data_class": data_class,
                    "day": day,
                    "platform": platform,
                    "min_ts": min(r.ts for r in rows),
                    "max_ts": max(r.ts for r in rows),
                }
            )
        self.store.write_atomically(self._pending_name(), json.dumps({"files": planned}).encode())
        for item, (_, rows) in zip(planned, parts, strict=True):
            buffer = io.BytesIO()
            pq.write_table(
                to_table(rows),
                buffer,
                compression=self.compression,
                row_group_size=ROW_GROUP_ROWS,
                # statistics on the pruning columns only: the payload's min/max would be large and useless
                write_statistics=["id", "room_id", "kind", "ts", "time", "rule_id", "subject"],
            )
            data = buffer.getvalue()
            self.store.write_atomically(item["path"], data)
            self.chain.append(
                "add",
                path=item["path"],
                sha256=digest(data),
                bytes=len(data),
                rows=len(rows),
                data_class=item["data_class"],
                day=item["day"],
                platform=item["platform"],
                min_ts=item["min_ts"],
                max_ts=item["max_ts"],
            )
            stats.files += 1
            stats.rows += len(rows)
            stats.bytes += len(data)
            stats.payload_bytes += sum(len(r.payload) for r in rows)
        self.store.delete(self._pending_name())
        self._buffers.clear()
        self._buffered_bytes = 0
        self._oldest = None
        for name in ("files", "rows", "bytes", "payload_bytes"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(stats, name))
        return stats

    def close(self) -> FlushStats:
        return self.flush()
