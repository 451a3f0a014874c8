"""The process's heap and Python's cyclic garbage collector.

A livewatch process loads a few hundred thousand container objects before its first event (the rules, the
claims model's weights, pypinyin's and jieba's dictionaries, Faust and aiokafka) and keeps them to the end,
and its rooms' state grows for as long as new rooms come. With the collector's default thresholds
(700, 10, 10) a worker spent a fifth of a benchmark run collecting — 20 full collections of ≈ 0.2 s each, set
off by the growth of that long-lived heap, each one also a pause of the event loop (docs/performance.md).
The events' own objects die young, by reference counting; what the collector finds is rare.
"""

from __future__ import annotations

import gc

#: young collections after this many new container objects (default 700); a middle one after 20 young ones
#: (default 10); a full one considered after 100 middle ones (default 10) — and still only once the
#: long-lived heap has grown by a quarter since the last one (CPython's own rule)
THRESHOLDS = (5_000, 20, 100)

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
