"""A netns's conntrack table: immutable, looked up by either tuple of a connection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from model.packet import ConntrackEntry, ConntrackTuple


class CtDirection(StrEnum):
    """Which way a packet travels relative to its connection (`IP_CT_DIR_*`)."""

    ORIGINAL = "original"
    REPLY = "reply"


@dataclass(frozen=True)
class ConntrackLookup:
    """A connection found for a tuple, and the direction the tuple travels in."""

    entry: ConntrackEntry
    """The connection."""
    direction: CtDirection
    """ORIGINAL when the tuple is the entry's original tuple, REPLY when it is its reply tuple."""


@dataclass(frozen=True)
class ConntrackTable:
    """Confirmed connections of one netns, keyed like the kernel's hash by both tuples.

    Each change copies the two dicts and wraps them read-only, so a table is
    never mutated once built; at a few thousand entries a copy costs
    microseconds, which is cheaper than a persistent map in pure Python.
    """

    by_original: Mapping[ConntrackTuple, ConntrackEntry] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Entries keyed by their original tuple."""
    by_reply: Mapping[ConntrackTuple, ConntrackTuple] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Each entry's reply tuple mapped to its original tuple."""

    @classmethod
    def of(cls, entries: Iterable[ConntrackEntry] = ()) -> ConntrackTable:
        """A table holding `entries` (a later entry with the same original tuple wins)."""
        by_original: dict[ConntrackTuple, ConntrackEntry] = {}
        by_reply: dict[ConntrackTuple, ConntrackTuple] = {}
        for entry in entries:
            old = by_original.get(entry.original)
            if old is not None:
                del by_reply[old.reply]
            by_original[entry.original] = entry
            by_reply[entry.reply] = entry.original
        return cls(MappingProxyType(by_original), MappingProxyType(by_reply))

    def lookup(self, key: ConntrackTuple) -> ConntrackLookup | None:
        """The connection `key` belongs to, as the kernel's hash lookup finds it."""
        entry = self.by_original.get(key)
        if entry is not None:
            return ConntrackLookup(entry, CtDirection.ORIGINAL)
        original = self.by_reply.get(key)
        if original is not None:
            return ConntrackLookup(self.by_original[original], CtDirection.REPLY)
        return None

    def get(self, original: ConntrackTuple) -> ConntrackEntry | None:
        """The entry whose original tuple is `original`."""
        return self.by_original.get(original)

    def tuple_in_use(self, key: ConntrackTuple) -> bool:
        """Whether some connection already owns `key` as either tuple (a NAT clash)."""
        return key in self.by_original or key in self.by_reply

    def with_entry(self, entry: ConntrackEntry) -> ConntrackTable:
        """A new table with `entry` added, or replacing the entry with its original tuple."""
        by_original = dict(self.by_original)
        by_reply = dict(self.by_reply)
        old = by_original.get(entry.original)
        if old is not None:
            del by_reply[old.reply]
        by_original[entry.original] = entry
        by_reply[entry.reply] = entry.original
        return ConntrackTable(MappingProxyType(by_original), MappingProxyType(by_reply))

    def without(self, original: ConntrackTuple) -> ConntrackTable:
        """A new table without the entry whose original tuple is `original`."""
        old = self.by_original.get(original)
        if old is None:
            return self
        by_original = dict(self.by_original)
        by_reply = dict(self.by_reply)
        del by_original[original]
        del by_reply[old.reply]
        return ConntrackTable(MappingProxyType(by_original), MappingProxyType(by_reply))

    def __len__(self) -> int:
        return len(self.by_original)

    def __iter__(self) -> Iterator[ConntrackEntry]:
        return iter(self.by_original.values())

    def __contains__(self, key: object) -> bool:
        return key in self.by_original or key in self.by_reply
