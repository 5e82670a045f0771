"""The cyclic garbage collector, kept out of work that makes many objects and no cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused"]


@contextmanager
def paused() -> Iterator[None]:
    """The cyclic collector off meanwhile (as it was before, after).

    Indexing or rendering a node of a cluster at Kubernetes' scale limits makes
    millions of short tuples and strings, none in a cycle; the collector would
    rescan them (and the cluster) again and again, a third of the time.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
