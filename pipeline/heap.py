"""The process's heap and Python's cyclic garbage collector.

A livewatch process loads a few hundred thousand container objects before its first event (the rules, the
claims model's weights, pypinyin's and jieba's dictionaries, Faust and aiokafka) and keeps them to the end,
and its rooms' state grows for as long as new rooms come. With the collector's default thresholds
(700, 10, 10) a worker spent a fifth of a benchmark run collecting — 20 full collections of ≈ 0.2 s each, set
off by the growth of that long-lived heap, each one also a pause of the event loop (docs/performance.md).
The events' own objects die young, by reference counting; what the collector finds is rare.

"Young" is not young enough for the collector, though: a worker holds each message's objects (Faust's message,
its offset entry, the decoded event, its place in the merge) until its step is decided and committed, up to a
second, and a comment adds to its room's window for ten minutes. At a young threshold of 5,000 the collector
walked nearly every one of them twice (young, then middle) and found almost nothing: 3.4–3.9 s of a 20 s run of
section b in scripts/bench.py, ≈ 15 % of the worker. At 100,000 a young collection comes every few seconds,
most of a step's objects are gone by then, and the middle one is rare: 1.2 s, and the worker ≈ 15 % faster
(docs/performance.md, stop 37). A young collection then walks up to 100,000 objects, ≈ 50 ms — shorter than the
middle ones it replaces (≈ 75 ms, every second or so).
"""

from __future__ import annotations

import gc

#: young collections after this many new container objects (default 700; 5,000 until stop 37); a middle one after
#: 20 young ones (default 10); a full one considered after 100 middle ones (default 10) — and still only once the
#: long-lived heap has grown by a quarter since the last one (CPython's own rule)
THRESHOLDS = (100_000, 20, 100)

_owns_process = False


def own_process() -> None:
    """This process runs one livewatch command (the ``livewatch`` entry point, ``python -m pipeline.cli``, a
    benchmark): ``settle_heap`` may act. Library callers of ``pipeline.cli.main`` (the tests) do not say so."""
    global _owns_process
    _owns_process = True


def settle_heap() -> None:
    """Collect the start-up's garbage, keep everything loaded so far out of future collections (``gc.freeze``:
    a permanent generation the collector no longer walks; reference counting still frees those objects),
    and collect less often. Called once by a command (a worker, a replay) after it has loaded what it keeps.
    A no-op unless ``own_process`` was called: frozen objects that later become cyclic garbage are never
    collected, which a process that builds many runtimes (a test session) should not risk."""
    if not _owns_process:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
