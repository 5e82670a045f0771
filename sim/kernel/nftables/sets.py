"""Named sets and maps as the kernel looks them up: a hash for exact keys, intervals for ranges.

A set is indexed once (a 10,000-Service node's `service-ips` map is one dict
lookup per packet, not a scan). A set whose elements are rendered as packets
ask for them (kube-proxy's maps in nftables mode, `sim.proxy.nftables.lazy`)
holds `KeyedElements`, which answer a lookup themselves. Elements the packet path adds (`update
@affinity-… { ip saddr }`) live in the netns's state, each with the virtual
time it expires at, and count only until then.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from model.nftables import NftElement, NftSet
from sim.kernel.netfilter.state import NftKey
from sim.kernel.nftables.values import Literal, literal

__all__ = ["DynamicSets", "KeyedElements", "SetIndex", "exact_key", "key_of", "set_index"]

# Selector whose values a set component of this type holds (for reading literals).
_COMPONENT = {
    "ipv4_addr": "ip daddr",
    "inet_proto": "meta l4proto",
    "inet_service": "th dport",
    "mark": "meta mark",
    "ct_state": "ct state",
    "ifname": "meta iifname",
}

Key = NftKey
"""An exact key: each component's value."""

DynamicSets = Mapping[str, Mapping[Key, float]]
"""Elements added from the packet path, per `family table set`: key → expiry (virtual seconds)."""


def key_of(key_type: Sequence[str], parts: Sequence[str]) -> tuple[Literal, ...]:
    """An element's key in comparable form, one literal per component."""
    return tuple(
        literal(_COMPONENT.get(kind, kind), part)
        for kind, part in zip(key_type, parts, strict=False)
    )


class KeyedElements(Sequence[NftElement]):
    """A set's elements that find the element a key falls on without being built all.

    As a sequence it is every element in listing order (which may build them
    all); `lookup` must answer as an index of that sequence would.
    """

    @abstractmethod
    def lookup(self, key: Key) -> NftElement | None:
        """The element `key` falls on, or None."""


@dataclass(frozen=True)
class SetIndex:
    """One named set or map, ready for lookups."""

    nft_set: NftSet
    """The set."""
    exact: dict[Key, NftElement]
    """Elements whose every component is one value."""
    ranges: tuple[tuple[tuple[Literal, ...], NftElement], ...]
    """Elements with a prefix or range in some component, in listing order."""
    keyed: KeyedElements | None = None
    """Elements that answer lookups themselves (then `exact` and `ranges` are empty)."""

    def lookup(self, key: Key) -> NftElement | None:
        """The element `key` falls on, or None."""
        if self.keyed is not None:
            return self.keyed.lookup(key)
        found = self.exact.get(key)
        if found is not None or not self.ranges:
            return found
        for lits, element in self.ranges:
            if all(_within(v, lit) for v, lit in zip(key, lits, strict=False)):
                return element
        return None


def _within(value: int | str | frozenset[str], lit: Literal) -> bool:
    if isinstance(lit, tuple):
        return isinstance(value, int) and lit[0] <= value <= lit[1]
    return value == lit


def exact_key(key_type: Sequence[str], parts: Sequence[str]) -> Key | None:
    """The key an element of this written key is found by when every component is one
    value (as packets' keys are); None when some component is a prefix or a range."""
    return _exact(key_of(key_type, parts))


def _exact(lits: tuple[Literal, ...]) -> Key | None:
    key: list[int | str | frozenset[str]] = []
    for lit in lits:
        if isinstance(lit, tuple):
            if lit[0] != lit[1]:
                return None
            key.append(lit[0])
        else:
            key.append(lit)
    return tuple(key)


_INDEXES: dict[int, SetIndex] = {}
_MAX_INDEXES = 4096


def set_index(nft_set: NftSet) -> SetIndex:
    """The index of `nft_set`, built on first use (kept while the set object lives here)."""
    hit = _INDEXES.get(id(nft_set))
    if hit is not None and hit.nft_set is nft_set:
        return hit
    exact: dict[Key, NftElement] = {}
    ranges: list[tuple[tuple[Literal, ...], NftElement]] = []
    if isinstance(nft_set.elements, KeyedElements):
        # Kept out of the cache: the elements hold what a lookup needs, and the cache
        # would keep a dropped node's elements alive.
        return SetIndex(nft_set, exact, (), nft_set.elements)
    for element in nft_set.elements:
        lits = key_of(nft_set.key_type, element.key)
        key = _exact(lits)
        if key is None:
            ranges.append((lits, element))
        else:
            exact.setdefault(key, element)
    index = SetIndex(nft_set, exact, tuple(ranges))
    if len(_INDEXES) >= _MAX_INDEXES:
        _INDEXES.clear()
    _INDEXES[id(nft_set)] = index
    return index
