"""A fault for tests through the real broker, loaded by a worker started with ``PYTHONPATH`` on this directory.

``LIVEWATCH_TEST_WITHHOLD=<topic suffix>:<seconds>``: the worker's consumer hands over nothing of that topic's
partitions for ``seconds`` from its first fetch that returned a record, while the other inputs flow. The
withheld records wait in aiokafka's fetch buffer, as they do when a partition's leader is unavailable after a
broker restart (fetches of it fail with NotLeaderForPartition while the rest are served)."""

from __future__ import annotations

import asyncio
import os
import time

_SPEC = os.environ.get("LIVEWATCH_TEST_WITHHOLD")

if _SPEC:
    from faust.transport.drivers import aiokafka as _driver

    _suffix, _seconds = _SPEC.rsplit(":", 1)
    _getmany = _driver.AIOKafkaConsumerThread.getmany
    _since: list[float] = []

    async def _withholding_getmany(self, active_partitions, timeout):  # type: ignore[no-untyped-def]
        if _since and time.monotonic() - _since[0] >= float(_seconds):
            return await _getmany(self, active_partitions, timeout)
        kept = {tp for tp in active_partitions or () if not tp.topic.endswith(_suffix)}
        if not kept:  # an empty set asks aiokafka for every partition
            await asyncio.sleep(timeout)
            return {}
        records = await _getmany(self, kept, timeout)
        if records and not _since:
            _since.append(time.monotonic())
        return records

    _driver.AIOKafkaConsumerThread.getmany = _withholding_getmany
