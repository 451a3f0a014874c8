"""Room state for the worker: an in-memory cache in front of a changelog-backed Faust table.

Only the durable part of a room (ladders, durable detector state) goes to the table, and only when it
changed, so most events cost no changelog write. ``put`` only notes the room; ``write_changes`` (the worker
calls it once per batch, before the batch's changelog flush) serialises each room put since, once, and
writes those whose durable state changed: one table write per room per batch at most. A room put with
``changed=False`` (a viewer's comment, most of the input: ``Detector.may_change``) is not even serialised.
``dirty`` says a write is buffered and not yet flushed. Sliding-window state comes from a rebuild
(``adopt``) and lives in memory only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, MutableMapping

from pipeline.engine import RoomState
from pipeline.ruleset import Ruleset


class TableStateStore:
    persists = True

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

    def put(self, room_id: str, state: RoomState, changed: bool = True) -> None:
        """Keep ``state`` as the room's; its durable part reaches the table with the next ``write_changes``
        unless ``changed`` is False (the engine knows it did not: ``Detector.may_change``)."""
        self._cache[room_id] = state
        if changed:
            self._touched.add(room_id)

    def write_changes(self) -> int:
        """Write to the table the durable state of every room put since the last call whose durable state
        changed (sets ``dirty``); returns how many rooms were written."""
        changes = self._changes()
        for room_id, blob in changes:
            self.table[room_id.encode()] = blob
        if changes:
            self.dirty = True
        return len(changes)

    def take_changes(self, unlogged: MutableMapping[bytes, bytes]) -> list[tuple[str, bytes]]:
        """The same changes as ``write_changes``, put in ``unlogged`` (the table's own store, which Faust does
        not log) and returned: the caller writes them to the changelog itself, in its transaction."""
        changes = self._changes()
        for room_id, blob in changes:
            unlogged[room_id.encode()] = blob
        return changes

    def _changes(self) -> list[tuple[str, bytes]]:
        durable = self.ruleset().durable_detectors
        changes = []
        for room_id in self._touched:
            state = self._cache.get(room_id)
            if state is None:
                continue
            blob = state.to_json(only=durable)
            if self._written.get(room_id) != blob:
                self._written[room_id] = blob
                changes.append((room_id, blob))
        self._touched.clear()
        return changes

    def clear(self) -> None:
        """Drop the cache (partitions revoked): the table and the next rebuild are the truth again."""
        self._cache.clear()
        self._written.clear()
        self._rebuilt.clear()
        self._touched.clear()
