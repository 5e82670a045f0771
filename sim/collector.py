"""The cyclic garbage collector, kept out of work that makes many objects and no cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused"]


@contextmanager
def paused(freeze_over: int | None = None) -> Iterator[None]:
    """The cyclic collector off meanwhile (as it was before, after).

    Indexing or rendering a node of a cluster at Kubernetes' scale limits makes
    millions of short tuples and strings, none in a cycle; the collector would
    rescan them (and the cluster) again and again, a third of the time.

    With `freeze_over`, if more objects than that were made meanwhile, everything
    alive is frozen (`gc.freeze`) into the generation the collector never scans
    before it is turned back on (a load: see `sim.readers.cluster.load`).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            if freeze_over is not None and gc.get_count()[0] > freeze_over:
                gc.freeze()
            gc.enable()
