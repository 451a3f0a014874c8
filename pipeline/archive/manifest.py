"""The manifest: a hash chain over every file the archive ever held, and its verification.

Each writer (an archiver, an embedded run, the maintenance commands) keeps a chain of its own under
``_manifest/<writer>/``, one small JSON file per entry, named by its sequence number, so that nothing is
ever appended to or rewritten (object stores cannot append). An entry records one operation:

- ``add``: a data file — its path, sha256, size, rows, partition, time range;
- ``remove``: a file deleted on purpose (retention, personal-data erasure), with its reason and digest.

Each entry carries the hash of the previous entry of its chain (``prev``) and its own (``hash``, sha256 of
the entry without it, keys sorted). Editing an entry breaks its hash; removing or reordering entries breaks
the next entry's ``prev``; changing, removing or swapping a data file breaks its recorded digest; a file
no entry lists is reported too. What a chain cannot show by itself is a rewrite of the whole chain by
someone holding write access: keep the head hash ``verify`` prints somewhere else (docs/archive.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.archive.storage import ArchiveError, Store

MANIFEST_DIR = "_manifest"
GENESIS = "0" * 64
PENDING = "pending.json"
DATA_GLOB = "*/day=*/platform=*/*.parquet"


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def entry_name(writer: str, seq: int) -> str:
    return f"{MANIFEST_DIR}/{writer}/{seq:012d}.json"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Chain:
    """One writer's chain: appends entries, each linked to the one before."""

    def __init__(self, store: Store, writer: str) -> None:
        if not writer or "/" in writer or writer.startswith(("_", ".")):
            raise ArchiveError(f"bad writer name {writer!r}: letters, digits, '-' (not starting with '_' or '.')")
        self.store, self.writer = store, writer
        names = store.glob(f"{MANIFEST_DIR}/{writer}/[0-9]*.json")
        if names:
            last = json.loads(store.read(names[-1]))
            self.seq, self.head = int(last["seq"]), str(last["hash"])
        else:
            self.seq, self.head = 0, GENESIS

    def append(self, op: str, **fields: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": self.seq + 1,
            "writer": self.writer,
            "op": op,
            **fields,
            "written_at": now_iso(),
            "prev": self.head,
        }
        entry["hash"] = entry_hash(entry)
        self.store.write_atomically(entry_name(self.writer, entry["seq"]), json.dumps(entry).encode())
        self.seq, self.head = entry["seq"], entry["hash"]
        return entry


def file_digest(store: Store, relative: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with store.fs.open(store.path(relative), "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


@dataclass
class LiveFile:
    """A data file the manifest vouches for (added, not removed)."""

    path: str
    sha256: str
    data_class: str
    day: str
    platform: str
    rows: int
    min_ts: int
    max_ts: int


@dataclass
class ManifestState:
    entries: list[dict[str, Any]] = field(default_factory=list)  # every chain's, in chain order per writer
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)  # writer → (seq, hash)
    live: dict[str, LiveFile] = field(default_factory=dict)  # path → file
    removed: dict[str, dict[str, Any]] = field(default_factory=dict)  # path → its remove entry


def writers(store: Store) -> list[str]:
    return sorted({name.split("/")[1] for name in store.glob(f"{MANIFEST_DIR}/*/[0-9]*.json")})


def load(store: Store) -> ManifestState:
    """Every chain's entries and the files they vouch for, without checking anything (``verify`` checks)."""
    state = ManifestState()
    for writer in writers(store):
        for name in store.glob(f"{MANIFEST_DIR}/{writer}/[0-9]*.json"):
            try:
                entry = json.loads(store.read(name))
                state.heads[writer] = (int(entry["seq"]), str(entry["hash"]))
            except (ValueError, KeyError, TypeError):
                continue  # a damaged entry: verify names it; readers go by the entries that are whole
            state.entries.append(entry)
    for entry in sorted(state.entries, key=lambda e: (str(e.get("written_at", "")), str(e.get("writer", "")))):
        try:
            _apply(state, entry)
        except (KeyError, TypeError):
            continue
    return state


def _apply(state: ManifestState, entry: dict[str, Any]) -> None:
    if entry.get("op") == "add":
        state.live[entry["path"]] = LiveFile(
            entry["path"],
            entry["sha256"],
            entry["data_class"],
            entry["day"],
            entry["platform"],
            entry["rows"],
            entry["min_ts"],
            entry["max_ts"],
        )
    elif entry.get("op") == "remove":
        state.live.pop(entry["path"], None)
        state.removed[entry["path"]] = entry


@dataclass(frozen=True)
class Problem:
    what: str  # "changed", "removed", "reordered", "entry-edited", "entry-missing", "unlisted", "unreadable"
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what} — {self.detail}"


@dataclass
class VerifyReport:
    problems: list[Problem] = field(default_factory=list)
    files_checked: int = 0
    bytes_checked: int = 0
    entries: int = 0
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(store: Store, from_day: str | None = None) -> VerifyReport:
    """Recompute every chain and the digest of every live file (of days ≥ ``from_day`` only, if given: the
    chains themselves are always checked whole, which is cheap). Problems are listed in chain order, so the
    first one is the first file that was changed, removed or reordered."""
    report = VerifyReport()
    seen_digests: dict[str, str] = {}  # digest → path that should hold it
    add_entries: list[dict[str, Any]] = []
    for writer in writers(store):
        prev, expected_seq = GENESIS, 1
        for name in store.glob(f"{MANIFEST_DIR}/{writer}/[0-9]*.json"):
            report.entries += 1
            try:
                entry = json.loads(store.read(name))
            except ValueError as e:
                report.problems.append(Problem("entry-edited", name, f"not JSON any more: {e}"))
                prev = ""
                continue
            seq = entry.get("seq")
            if name != entry_name(writer, seq if isinstance(seq, int) else -1):
                report.problems.append(Problem("entry-edited", name, f"its name does not match its seq {seq!r}"))
            elif seq != expected_seq:
                report.problems.append(
                    Problem("entry-missing", name, f"entries {expected_seq}..{seq - 1} of chain {writer!r} are gone")
                )
            intact = entry.get("hash") == entry_hash(entry)
            if not intact:
                report.problems.append(Problem("entry-edited", name, "the entry's hash does not match its content"))
            elif prev and entry.get("prev") != prev:
                report.problems.append(
                    Problem(
                        "reordered",
                        name,
                        f"its link to the previous entry is broken (chain {writer!r}, seq {seq}): an entry before "
                        "it was removed, replaced or moved",
                    )
                )
            prev = str(entry.get("hash", ""))
            expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
            if intact and entry.get("op") == "add" and {"path", "sha256", "day"} <= entry.keys():
                add_entries.append(entry)
                seen_digests[entry["sha256"]] = entry["path"]
        report.heads[writer] = (expected_seq - 1, prev)

    state = load(store)
    for entry in add_entries:
        path = entry["path"]
        if path not in state.live:
            continue  # removed on purpose later (retention, erasure): its remove entry is in a chain
        if from_day is not None and entry["day"] < from_day:
            continue
        if not store.exists(path):
            report.problems.append(Problem("removed", path, f"listed by {entry_name(entry['writer'], entry['seq'])}"))
            continue
        try:
            actual, size = file_digest(store, path)
        except OSError as e:
            report.problems.append(Problem("unreadable", path, str(e)))
            continue
        report.files_checked += 1
        report.bytes_checked += size
        if actual != entry["sha256"]:
            other = seen_digests.get(actual)
            detail = (
                f"it holds the content recorded for {other} (files swapped or moved)"
                if other and other != path
                else f"sha256 {actual[:16]}… differs from the manifest's {entry['sha256'][:16]}…"
            )
            report.problems.append(Problem("reordered" if other and other != path else "changed", path, detail))

    listed = set(state.live) | set(state.removed)
    for path in store.glob(DATA_GLOB):
        if path not in listed and (from_day is None or _day_of_path(path) >= from_day):
            report.problems.append(Problem("unlisted", path, "no manifest entry lists this file (added afterwards?)"))
    return report


def _day_of_path(path: str) -> str:
    for part in path.split("/"):
        if part.startswith("day="):
            return part[4:]
    return ""


def live_files(
    state: ManifestState,
    data_class: str,
    *,
    days: tuple[str, str] | None = None,
    ts_range: tuple[int, int] | None = None,
    platforms: Iterable[str] | None = None,
) -> list[LiveFile]:
    """Live files of a class, pruned by day, by each file's recorded time range and by platform."""
    wanted = set(platforms) if platforms is not None else None
    out = []
    for f in state.live.values():
        if f.data_class != data_class:
            continue
        if days is not None and not (days[0] <= f.day <= days[1]):
            continue
        if ts_range is not None and (f.max_ts < ts_range[0] or f.min_ts > ts_range[1]):
            continue
        if wanted is not None and f.platform not in wanted:
            continue
        out.append(f)
    return sorted(out, key=lambda f: f.path)
