"""ipsets: named sets of addresses, networks and ports that `-m set` rules look up."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network

from model.frozen import frozen

__all__ = ["IPSET_DIMENSIONS", "IpSet", "IpSets"]

# The set types whose members kubehop can compare with a packet: each
# dimension is an address (ip, net) or a port.
IPSET_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "hash:ip": ("ip",),
    "hash:net": ("net",),
    "bitmap:ip": ("ip",),
    "hash:ip,port": ("ip", "port"),
    "hash:net,port": ("net", "port"),
    "hash:ip,port,ip": ("ip", "port", "ip"),
    "hash:ip,port,net": ("ip", "port", "net"),
    "hash:net,net": ("net", "net"),
    "hash:net,port,net": ("net", "port", "net"),
    "bitmap:port": ("port",),
}
"""Set type → what each dimension of a member is: an address (ip, net) or a port."""


@frozen
class IpSet:
    """One set: its type and members, each a tuple with one value per dimension."""

    name: str
    """The set's name."""
    type: str
    """`hash:net`, `hash:ip,port`, …"""
    members: tuple[tuple[IPv4Network | tuple[str, int], ...], ...]
    """Each member's dimensions: a network (an address is a /32), or (protocol, port); a
    bitmap:port set's ports have no protocol (""), and match a port of any."""
    ipv6: bool = False
    """`family inet6`: never matches an IPv4 packet."""

    def contains(self, values: tuple[IPv4Address | tuple[str, int], ...]) -> bool:
        """Whether a packet's looked-up values are a member."""
        exact = self._exact
        if exact is not None:
            found = _exact_lookup(exact, values)
            if found is not None:
                return found
        for member in self.members:
            if len(member) != len(values):
                continue
            if all(_dim_matches(m, v) for m, v in zip(member, values, strict=True)):
                return True
        return False

    @cached_property
    def _exact(self) -> _Exact | None:
        """The members as a hash set when each of them is exact (every address a /32): the
        kernel's hash lookup, not a scan; None when a member is a wider network."""
        keys: set[tuple[int | tuple[str, int], ...]] = set()
        any_protocol = False
        for member in self.members:
            key: list[int | tuple[str, int]] = []
            for dim in member:
                if isinstance(dim, IPv4Network):
                    if dim.prefixlen != dim.max_prefixlen:
                        return None
                    key.append(int(dim.network_address))
                else:
                    any_protocol = any_protocol or dim[0] == ""
                    key.append(dim)
            keys.add(tuple(key))
        return _Exact(frozenset(keys), any_protocol)


@frozen
class _Exact:
    """A set's exact members, each an address as an integer or a (protocol, port)."""

    keys: frozenset[tuple[int | tuple[str, int], ...]]
    """The members."""
    any_protocol: bool
    """Some member's port has no protocol (a bitmap:port set's): it matches any."""


def _exact_lookup(exact: _Exact, values: tuple[IPv4Address | tuple[str, int], ...]) -> bool | None:
    """`IpSet.contains` over exact members: the same answer as comparing every member; None
    for values no packet gives (a port that is not a (protocol, port) pair)."""
    choices: list[tuple[int | tuple[str, int], ...]] = []
    for value in values:
        if isinstance(value, IPv4Address):
            choices.append((int(value),))
        elif isinstance(value, tuple) and len(value) == 2:
            # A member port without a protocol matches this port of any protocol.
            port = (value[0], value[1])
            choices.append((port, ("", value[1])) if exact.any_protocol else (port,))
        else:
            return None
    return any(key in exact.keys for key in itertools.product(*choices))


def _dim_matches(
    member: IPv4Network | tuple[str, int], value: IPv4Address | tuple[str, int]
) -> bool:
    if isinstance(member, IPv4Network):
        return isinstance(value, IPv4Address) and value in member
    if isinstance(value, tuple) and member[0] == "":
        return member[1] == value[1]
    return member == value


IpSets = Mapping[str, IpSet]
"""Sets by name."""
