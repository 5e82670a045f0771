"""A netns's conntrack table: immutable, looked up by either tuple of a connection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import field
from enum import StrEnum

from immutables import Map

from model.frozen import frozen
from model.packet import ConntrackEntry, ConntrackTuple
from model.trace import HopKind, Trace


class CtDirection(StrEnum):
    """Which way a packet travels relative to its connection (`IP_CT_DIR_*`)."""

    ORIGINAL = "original"
    REPLY = "reply"


@frozen
class ConntrackLookup:
    """A connection found for a tuple, and the direction the tuple travels in."""

    entry: ConntrackEntry
    """The connection."""
    direction: CtDirection
    """ORIGINAL when the tuple is the entry's original tuple, REPLY when it is its reply tuple."""


@frozen
class ConntrackTable:
    """Confirmed connections of one netns, keyed like the kernel's hash by both tuples.

    The two maps are persistent (immutables.Map, a HAMT): a change returns a
    new table sharing all but a few nodes with the old, so the N flows of
    "send N requests" through one netns cost O(N log N), not the O(N²) of
    copying a dict per connection.
    """

    by_original: Map[ConntrackTuple, ConntrackEntry] = field(default_factory=Map)
    """Entries keyed by their original tuple."""
    by_reply: Map[ConntrackTuple, ConntrackTuple] = field(default_factory=Map)
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
        return cls(Map(by_original), Map(by_reply))

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
        by_original, by_reply = self.by_original, self.by_reply
        old = by_original.get(entry.original)
        if old is not None:
            by_reply = by_reply.delete(old.reply)
        return ConntrackTable(
            by_original.set(entry.original, entry), by_reply.set(entry.reply, entry.original)
        )

    def without(self, original: ConntrackTuple) -> ConntrackTable:
        """A new table without the entry whose original tuple is `original`."""
        by_original, by_reply = self.by_original, self.by_reply
        old = by_original.get(original)
        if old is None:
            return self
        return ConntrackTable(by_original.delete(original), by_reply.delete(old.reply))

    def __len__(self) -> int:
        return len(self.by_original)

    def __iter__(self) -> Iterator[ConntrackEntry]:
        return iter(self.by_original.values())

    def __contains__(self, key: object) -> bool:
        return key in self.by_original or key in self.by_reply


@frozen
class ConntrackView:
    """A hop's conntrack entry in its netns, before and after the hop.

    Only netfilter hooks look up, create, confirm or update an entry; at any
    other hop the entry is as the netns's last hook left it.
    """

    before: ConntrackEntry | None
    """The entry as the packet found it (None: no entry yet in this netns)."""
    after: ConntrackEntry | None
    """The entry as the packet leaves the hop."""
    at_hook: bool
    """The hop is a netfilter hook, the only place the entry can change."""

    @property
    def changed(self) -> frozenset[str]:
        """What the hop changed: `state`, `nat`, `mark`, `confirmed`, `reply`, or `new`."""
        before, after = self.before, self.after
        if after is None or before == after:
            return frozenset()
        if before is None:
            return frozenset({"new"})
        return frozenset(
            name
            for name, old, new in (
                ("state", before.state, after.state),
                ("nat", (before.dnat, before.snat), (after.dnat, after.snat)),
                ("mark", before.mark, after.mark),
                ("confirmed", before.confirmed, after.confirmed),
                ("reply", before.reply, after.reply),
            )
            if old != new
        )


def conntrack_view(trace: Trace, seq: int) -> ConntrackView:
    """The conntrack entry of hop `seq`'s netns before and after that hop."""
    hop = trace.hops[seq]
    at_hook = hop.kind is HopKind.NETFILTER
    earlier = _last_hook_entry(trace, seq, hop.where.netns)
    if at_hook:
        return ConntrackView(earlier, hop.conntrack, at_hook=True)
    return ConntrackView(earlier, earlier, at_hook=False)


def _last_hook_entry(trace: Trace, seq: int, netns: str) -> ConntrackEntry | None:
    """The entry the latest hook before hop `seq` in `netns` left (None if there was none)."""
    for hop in reversed(trace.hops[:seq]):
        if hop.kind is HopKind.NETFILTER and hop.where.netns == netns:
            return hop.conntrack
    return None
