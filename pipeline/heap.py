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
walked nearly every one of them twice (young, then middle) and found almost nothing: 2.7–3.3 s of young and middle
collections in a worker's ≈ 20 s of deciding section b's input (scripts/bench.py), 13–15 % of it. At 100,000 a
young collection comes every 0.4–10 s under that load, most of a step's objects are gone by then, and middle ones
are rare: 0.7 s, and the worker ≈ 15 % faster (docs/performance-history.md, stop 37). The price: a young collection
walks up to 100,000 live objects, a pause of 40–190 ms, where the middle ones it replaced took ≈ 75 ms about every
second; and a full collection now comes after ≈ 200 million new objects (half an hour under load), so what little
cyclic garbage reaches the old generation waits that long.
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
