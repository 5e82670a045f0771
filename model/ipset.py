"""ipsets: named sets of addresses, networks and ports that `-m set` rules look up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

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


@dataclass(frozen=True)
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
        for member in self.members:
            if len(member) != len(values):
                continue
            if all(_dim_matches(m, v) for m, v in zip(member, values, strict=True)):
                return True
        return False


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
