"""Room state for the worker: an in-memory cache in front of a changelog-backed Faust table.

Only the durable part of a room (ladders, durable detector state) goes to the table, and only when it
changed, so most events cost no changelog write. ``put`` only notes the room; ``write_changes`` (the worker
calls it once per batch, before the batch's changelog flush) serialises each room put since, once, and
writes those whose durable state changed: one table write per room per batch at most. ``dirty`` says a
write is buffered and not yet flushed. Sliding-window state comes from a rebuild (``adopt``) and lives in
memory only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, MutableMapping

from pipeline.engine import RoomState
from pipeline.ruleset import Ruleset


class TableStateStore:
    def __init__(self, table: MutableMapping[bytes, bytes], ruleset: Callable[[], Ruleset]) -> None:
        self.table = table
        self.ruleset = ruleset
        self._cache: dict[str, RoomState] = {}
        self._written: dict[str, bytes] = {}
        # rebuilt non-durable detector state, joined to a room's durable state when the room is first
        # loaded (not before: the table may still be recovering from the changelog during a rebuild)
        self._rebuilt: dict[str, RoomState] = {}
        self._touched: set[str] = set()  # rooms put since the last write_changes
        self.dirty = False

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, room_id: str) -> RoomState | None:
        state = self._cache.get(room_id)
        if state is None:
            stored = self.table.get(room_id.encode())
            if stored:
                state = RoomState.from_json(json.loads(stored), self.ruleset())
                self._written[room_id] = bytes(stored)
            rebuilt = self._rebuilt.pop(room_id, None)
            if rebuilt is not None:
                state = state if state is not None else RoomState()
                state.detectors.update(rebuilt.detectors)
            if state is not None:
                self._cache[room_id] = state
        return state

    def adopt(self, rebuilt: dict[str, RoomState]) -> None:
        for room_id, part in rebuilt.items():
            cached = self._cache.get(room_id)
            if cached is not None:
                cached.detectors.update(part.detectors)
            else:
                self._rebuilt[room_id] = part

    def put(self, room_id: str, state: RoomState) -> None:
        """Keep ``state`` as the room's; its durable part reaches the table with the next ``write_changes``."""
        self._cache[room_id] = state
        self._touched.add(room_id)

    def write_changes(self) -> int:
        """Write to the table the durable state of every room put since the last call whose durable state
        changed (sets ``dirty``); returns how many rooms were written."""
        durable = self.ruleset().durable_detectors
        written = 0
        for room_id in self._touched:
            state = self._cache.get(room_id)
            if state is None:
                continue
            blob = state.to_json(only=durable)
            if self._written.get(room_id) != blob:
                self.table[room_id.encode()] = blob
                self._written[room_id] = blob
                written += 1
        self._touched.clear()
        if written:
            self.dirty = True
        return written

    def clear(self) -> None:
        """Drop the cache (partitions revoked): the table and the next rebuild are the truth again."""
        self._cache.clear()
        self._written.clear()
        self._rebuilt.clear()
        self._touched.clear()
