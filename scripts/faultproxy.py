"""A TCP proxy between a worker and the broker that slows or breaks the worker's output sends (scripts/faults.py).

The worker's bootstrap points at the proxy, and the broker advertises the proxy's port on the listener the
proxy forwards to (``proxied_broker`` in faults.py), so every connection the worker opens — bootstrap,
fetches, produce, group coordination — goes through here. Only Kafka *Produce* requests (API key 0: outputs,
dead letters and changelog writes) are slowed or failed: the proxy reads the client→broker stream frame by
frame (a 4-byte size, then the request, whose header starts with the API key), so fetches, commits and
heartbeats keep flowing and the fault is the one named. Modes:

- ``pass``: bytes through unchanged;
- ``slow``: each Produce request held ``delay_s`` (uniform in the range) before it is forwarded; the
  requests behind it on that connection wait too, as they would behind a slow link;
- ``fail``: a connection that carries a Produce request is reset (RST, not FIN) before the request reaches
  the broker, with probability ``fail_p``: the client sees a connection reset with its send unanswered.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

PRODUCE = 0


@dataclass
class Counts:
    connections: int = 0
    produce_requests: int = 0
    delayed: int = 0
    resets: int = 0


@dataclass
class FaultProxy:
    upstream_port: int
    listen_port: int
    host: str = "127.0.0.1"
    mode: str = "pass"
    delay_s: tuple[float, float] = (0.2, 0.5)
    fail_p: float = 1.0
    seed: int = 1
    counts: Counts = field(default_factory=Counts)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # --- control, from any thread ---

    def start(self) -> None:
        self._thread.start()
        self._call(self._start()).result(10)

    def stop(self) -> None:
        self._call(self._stop()).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def set(self, mode: str) -> None:
        assert mode in ("pass", "slow", "fail"), mode
        self.mode = mode  # read by the forwarding tasks at each request: a plain attribute is enough

    def _call(self, coro) -> Future:  # type: ignore[no-untyped-def,type-arg]
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # --- the proxy, on its own loop ---

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.listen_port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for w in list(self._writers):
            w.transport.abort()

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        try:
            b_reader, b_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            c_writer.transport.abort()  # broker down: the client sees a refused connection, as without us
            return
        self._writers |= {c_writer, b_writer}
        up = asyncio.ensure_future(self._requests(c_reader, b_writer, c_writer))
        down = asyncio.ensure_future(self._pipe(b_reader, c_writer))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        for w in (c_writer, b_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: asyncio.StreamWriter
    ) -> None:
        """Client → broker, one Kafka request at a time, so a Produce request can be told apart."""
        while True:
            try:
                size = await reader.readexactly(4)
                body = await reader.readexactly(struct.unpack(">i", size)[0])
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if struct.unpack(">h", body[:2])[0] == PRODUCE:
                self.counts.produce_requests += 1
                if self.mode == "slow":
                    self.counts.delayed += 1
                    await asyncio.sleep(self._rng.uniform(*self.delay_s))
                elif self.mode == "fail" and self._rng.random() < self.fail_p:
                    self.counts.resets += 1
                    sock = client.transport.get_extra_info("socket")
                    if sock is not None:  # linger 0: close with a RST, "connection reset by peer"
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
            writer.write(size + body)
            await writer.drain()
