"""What is worked out once per cluster object: indexes every trace of a cluster asks for.

A cluster is immutable, and an edit or `--mode` makes a new object, so what is
worked out from one (which Service port owns an address, kube-ipvs0's addresses)
is kept by the object's identity. The entry keeps the cluster itself too: an id
is reused once its object is freed, and an entry must never answer for another
cluster. A few clusters are kept, most recent last (the app holds the one on
show, and the one before an edit while a worker may still use it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from model.cluster import Cluster
from sim.collector import paused

__all__ = ["PerCluster"]

T = TypeVar("T")

KEPT = 4
"""Clusters whose results each `PerCluster` keeps."""


class PerCluster(Generic[T]):
    """`build(cluster)`, made once per cluster object and kept for the last `KEPT`."""

    def __init__(self, build: Callable[[Cluster], T], *, many_objects: bool = False) -> None:
        self._build = build
        self._many = many_objects
        self._kept: OrderedDict[int, tuple[Cluster, T]] = OrderedDict()

    def __call__(self, cluster: Cluster) -> T:
        """What `build` makes of `cluster`, made on the first call."""
        key = id(cluster)
        hit = self._kept.get(key)
        if hit is not None and hit[0] is cluster:
            self._kept.move_to_end(key)
            return hit[1]
        if self._many:
            # Hundreds of thousands of small objects, none cyclic: the collector
            # would rescan a big cluster's millions meanwhile.
            with paused():
                found = self._build(cluster)
        else:
            found = self._build(cluster)
        self._kept[key] = (cluster, found)
        while len(self._kept) > KEPT:
            self._kept.popitem(last=False)
        return found

    def peek(self, cluster: Cluster) -> T | None:
        """What is kept for `cluster`, without making it."""
        hit = self._kept.get(id(cluster))
        return hit[1] if hit is not None and hit[0] is cluster else None

    def clusters(self) -> Iterator[Cluster]:
        """The clusters something is kept for."""
        return (cluster for cluster, _ in self._kept.values())

    def values(self) -> Iterator[T]:
        """Everything kept."""
        return (found for _, found in self._kept.values())

    def clear(self) -> None:
        """Forget everything kept."""
        self._kept.clear()
