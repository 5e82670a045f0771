"""One node's view of what a CNI programs about every other node, shared by all nodes.

A VXLAN device on each node holds a neighbour entry and an FDB entry per other
node: 5,000 nodes make 5,000 of each on every node a packet crosses. The
entries are the same on every node but for the node's own, so they are made
once per cluster (`peer_entries`) and each node sees them without its own
(`Peers`), as if the CNI had written a table for it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import TypeVar

__all__ = ["Peers", "peer_entries"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Entries = Mapping[K, tuple[tuple[str, V], ...]]
"""Each key → every node that writes it, with its value, in the nodes' order."""


def peer_entries(items: Iterable[tuple[str, K, V]]) -> dict[K, tuple[tuple[str, V], ...]]:
    """(node, key, value) for every node → each key's writers in order."""
    found: dict[K, tuple[tuple[str, V], ...]] = {}
    for node, key, value in items:
        found[key] = (*found.get(key, ()), (node, value))
    return found


class Peers(Mapping[K, V]):
    """The entries every node but `node` writes: what `{key: value for other nodes}` holds
    (a key two other nodes write has the later one's value)."""

    def __init__(self, entries: Entries[K, V], node: str) -> None:
        self._entries = entries
        self._node = node

    def __getitem__(self, key: K) -> V:
        for node, value in reversed(self._entries[key]):
            if node != self._node:
                return value
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        writers = self._entries.get(key, ())  # type: ignore[arg-type]
        return any(node != self._node for node, _ in writers)

    def __iter__(self) -> Iterator[K]:
        return (
            key
            for key, writers in self._entries.items()
            if any(node != self._node for node, _ in writers)
        )

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"Peers({dict(self)!r})"
