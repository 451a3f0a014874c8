"""Deleting on purpose: files past their data class's retention, and one account's rows (personal-data
erasure). Both leave the chain whole: a ``remove`` entry, carrying the file's digest and the reason, is
chained *before* the file is deleted, so ``verify`` knows the deletion was made by livewatch and why.

Erasure rewrites each file holding the account's rows without them (the new file chained first, the old one
removed after: a crash in between leaves both, and the reader removes the duplicates). The remove entry
names the request's reference, never the account.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, timedelta

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.archive.manifest import Chain, LiveFile, load
from pipeline.archive.rows import DATA_CLASSES, digest
from pipeline.archive.storage import ArchiveError, Store

#: the live-commerce measures: interaction records kept at least three years
LEGAL_MINIMUM_DAYS = 3 * 365 + 1
EVIDENCE_CLASSES = ("events", "alerts", "actions")
DEFAULT_RETENTION_DAYS = dict.fromkeys(DATA_CLASSES, LEGAL_MINIMUM_DAYS)
MAINTENANCE_WRITER = "maintenance"


def retention_of(configured: dict[str, int], allow_short: bool = False) -> dict[str, int]:
    """Days per data class: the configured ones over the defaults; evidence below three years is refused
    unless ``allow_short`` (a jurisdiction with a shorter duty, a test archive)."""
    unknown = set(configured) - set(DATA_CLASSES)
    if unknown:
        raise ArchiveError(f"retention for unknown data class(es) {sorted(unknown)}: known are {list(DATA_CLASSES)}")
    days = {**DEFAULT_RETENTION_DAYS, **configured}
    short = [c for c in EVIDENCE_CLASSES if days[c] < LEGAL_MINIMUM_DAYS]
    if short and not allow_short:
        raise ArchiveError(
            f"retention of {', '.join(f'{c}={days[c]}' for c in short)} days is below the three years the "
            f"live-commerce measures require ({LEGAL_MINIMUM_DAYS} days); pass --allow-short-retention if "
            "that is really meant"
        )
    return days


@dataclass
class PruneReport:
    removed: list[LiveFile] = field(default_factory=list)
    bytes: int = 0


def prune(store: Store, retention_days: dict[str, int], today: date, *, dry_run: bool = False) -> PruneReport:
    """Delete the live files whose day is older than their class's retention."""
    report = PruneReport()
    state = load(store)
    chain = None if dry_run else Chain(store, MAINTENANCE_WRITER)
    for f in sorted(state.live.values(), key=lambda f: f.path):
        cutoff = (today - timedelta(days=retention_days[f.data_class])).isoformat()
        if f.day >= cutoff:
            continue
        report.removed.append(f)
        if chain is not None:
            chain.append(
                "remove",
                path=f.path,
                sha256=f.sha256,
                reason=f"retention: {f.data_class} kept {retention_days[f.data_class]} days",
            )
            store.delete(f.path)
    return report


@dataclass
class ErasureReport:
    rows: int = 0
    files_rewritten: int = 0


def forget(store: Store, *, user_id: str, pseudonym: str, reference: str) -> ErasureReport:
    """Remove the rows of one account: its messages and dead letters (by user id), alerts about it (by its
    pseudonym), actions on it (by user id). ``reference`` (a ticket, a request number) goes in the manifest."""
    if not reference:
        raise ArchiveError("an erasure needs --reference (the request it answers): the manifest records it")
    report = ErasureReport()
    state = load(store)
    chain = Chain(store, MAINTENANCE_WRITER)
    for f in sorted(state.live.values(), key=lambda f: f.path):
        who = pseudonym if f.data_class == "alerts" else user_id
        with store.fs.open(store.path(f.path), "rb") as handle:
            table = pq.read_table(handle)
        hit = pc.fill_null(pc.equal(table["subject"], who), False)
        count = pc.sum(hit).as_py() or 0
        if not count:
            continue
        kept = table.filter(pc.invert(hit))
        directory = f.path.rsplit("/", 1)[0]
        new_path = f"{directory}/{MAINTENANCE_WRITER}-{chain.seq + 1:012d}.parquet"
        if kept.num_rows:
            buffer = io.BytesIO()
            pq.write_table(kept, buffer, compression="zstd")
            data = buffer.getvalue()
            store.write_atomically(new_path, data)
            ts = kept["ts"]
            chain.append(
                "add",
                path=new_path,
                sha256=digest(data),
                bytes=len(data),
                rows=kept.num_rows,
                data_class=f.data_class,
                day=f.day,
                platform=f.platform,
                min_ts=pc.min(ts).as_py(),
                max_ts=pc.max(ts).as_py(),
                replaces=f.path,
            )
        chain.append(
            "remove", path=f.path, sha256=f.sha256, reason=f"erasure {reference}: {count} row(s) of one account"
        )
        store.delete(f.path)
        report.rows += count
        report.files_rewritten += 1
    return report
