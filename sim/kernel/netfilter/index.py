"""The candidate index: a big chain walked without comparing every rule, first match kept.

KUBE-SERVICES of a node at Kubernetes' scale limits holds tens of thousands
of rules, each for one ClusterIP and port. Bucketing rules by the exact
destination, protocol and port they require lets a packet visit only the
rules it could match, in their order, so the result is the linear walk's.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from types import MappingProxyType

from model.netfilter import (
    AddrMatch,
    Chain,
    PortMatch,
    ProtoMatch,
    RecentMatch,
    Rule,
    StatisticMatch,
    UnknownMatch,
)
from model.packet import Packet

__all__ = ["INDEX_MIN_RULES", "ChainIndex", "Key", "build_index", "chain_index", "rule_key"]

INDEX_MIN_RULES = 32
"""Chains with at least this many rules are walked through a candidate index."""

Key = tuple[IPv4Address | None, str | None, int | None]

# Matches that change state or need an assumption when evaluated. A key
# taken from a match after one of these would let the index skip a rule whose
# earlier match the kernel evaluates, so such keys are not taken.
_IMPURE = (StatisticMatch, RecentMatch, UnknownMatch)


@dataclass(frozen=True)
class ChainIndex:
    """Rule positions of one chain bucketed by the exact values their matches require.

    A rule's key holds `-d X/32`, `-p P` and `--dport N` when present (None
    when absent); a packet can match only rules whose every keyed value equals
    its own, so walking those candidates in order is first-match exact.
    """

    buckets: Mapping[Key, tuple[int, ...]]
    """Positions (0-based, ascending) of the rules with each key."""

    def candidates(self, pkt: Packet) -> list[int]:
        """Positions of the rules `pkt` could match, ascending."""
        found: list[tuple[int, ...]] = []
        for dst in (pkt.dst, None):
            for proto in (pkt.proto.value, None):
                for dport in (pkt.dport, None):
                    positions = self.buckets.get((dst, proto, dport))
                    if positions:
                        found.append(positions)
        if len(found) == 1:
            return list(found[0])
        return list(heapq.merge(*found))


def rule_key(rule: Rule) -> Key:
    """The values `rule` requires of a packet's destination, protocol and destination port."""
    dst: IPv4Address | None = None
    proto: str | None = None
    dport: int | None = None
    for m in rule.matches:
        if isinstance(m, AddrMatch):
            if m.field == "dst" and not m.negate and m.net.prefixlen == 32:
                dst = m.net.network_address
        elif isinstance(m, ProtoMatch):
            if not m.negate and m.proto != "all":
                proto = m.proto
        elif isinstance(m, PortMatch):
            if m.field == "dport" and not m.negate and m.ports.lo == m.ports.hi:
                dport = m.ports.lo
        elif isinstance(m, _IMPURE):
            break
    return (dst, proto, dport)


def build_index(chain: Chain) -> ChainIndex:
    """Index `chain`'s rules by `rule_key`."""
    buckets: dict[Key, list[int]] = {}
    for pos, rule in enumerate(chain.rules):
        buckets.setdefault(rule_key(rule), []).append(pos)
    return ChainIndex(MappingProxyType({k: tuple(v) for k, v in buckets.items()}))


_INDEX_CACHE: dict[int, tuple[Chain, ChainIndex]] = {}
_INDEX_CACHE_SIZE = 512


def register_index(chain: Chain, index: ChainIndex) -> None:
    """Make `index` the one `chain_index(chain)` returns (a reader that knows its chain's
    candidates better than a build from every rule), as the newest entry of the cache."""
    _INDEX_CACHE.pop(id(chain), None)
    if len(_INDEX_CACHE) >= _INDEX_CACHE_SIZE:
        del _INDEX_CACHE[next(iter(_INDEX_CACHE))]
    _INDEX_CACHE[id(chain)] = (chain, index)


def registered_index(chain: Chain) -> ChainIndex | None:
    """The index `chain_index(chain)` would return without building one, if any."""
    hit = _INDEX_CACHE.get(id(chain))
    return hit[1] if hit is not None and hit[0] is chain else None


def forget_index(chain: Chain) -> None:
    """Drop `chain`'s index (its rules are being released)."""
    hit = _INDEX_CACHE.get(id(chain))
    if hit is not None and hit[0] is chain:
        del _INDEX_CACHE[id(chain)]


def chain_index(chain: Chain) -> ChainIndex:
    # Keyed by identity: a Chain is immutable, and the cache holds it so the id
    # cannot be reused while the entry lives.
    cached = registered_index(chain)
    if cached is not None:
        return cached
    index = build_index(chain)
    register_index(chain, index)
    return index
