"""Routing tables and longest-prefix lookup, as `ip route get` answers it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network


@dataclass(frozen=True)
class Route:
    """One route of the main table, as `ip route` prints it."""

    dst: IPv4Network
    """The destination prefix (0.0.0.0/0 is `default`)."""
    dev: str
    """The interface packets leave by."""
    via: IPv4Address | None = None
    """The next hop, None for a directly connected prefix."""
    src: IPv4Address | None = None
    """The preferred source address."""
    proto: str = "static"
    """Who installed it: kernel (connected), static, or the CNI."""
    scope: str = "global"
    """link for connected prefixes."""
    onlink: bool = False
    """The next hop is reached on `dev` though no address there covers it."""
    assumed: str | None = None
    """What kubehop assumed to put this route here (the data had no word of it)."""
    by: str | None = None
    """Who put it there, for the hop's sentence (`the CNI's host-gw route`); not printed."""
    nexthops: tuple[IPv4Address, ...] = ()
    """A multipath route's next hops (`nexthop via … nexthop via …`); `via` is then None."""

    def resolved(self, src: IPv4Address | None, dst: IPv4Address) -> Route:
        """The route as `ip route get` answers for one flow: a multipath route's chosen hop.

        Linux hashes a flow onto one next hop (fib_multipath_hash; policy 0, the
        default, hashes the source and destination addresses); kubehop hashes the
        same two fields with its own function, so it picks a hop the same way for
        every packet of a flow, though not necessarily the kernel's.
        """
        if not self.nexthops:
            return self
        key = f"{src}>{dst}".encode()
        chosen = self.nexthops[
            int.from_bytes(hashlib.sha256(key).digest()[:4]) % len(self.nexthops)
        ]
        return replace(self, via=chosen, nexthops=())

    def __str__(self) -> str:
        # iproute2 prints a host route without its /32.
        if self.dst.prefixlen == 0:
            dst = "default"
        elif self.dst.prefixlen == 32:
            dst = str(self.dst.network_address)
        else:
            dst = str(self.dst)
        text = dst
        if self.nexthops:
            hops = " ".join(f"nexthop via {hop} dev {self.dev} weight 1" for hop in self.nexthops)
            return f"{text} proto {self.proto} {hops}"
        if self.via is not None:
            text += f" via {self.via}"
        text += f" dev {self.dev}"
        if self.proto != "static":
            text += f" proto {self.proto}"
        if self.scope != "global":
            text += f" scope {self.scope}"
        if self.src is not None:
            text += f" src {self.src}"
        if self.onlink:
            text += " onlink"
        return text


@dataclass(frozen=True)
class RouteTable:
    """A netns's main routing table."""

    routes: tuple[Route, ...]
    """Routes in `ip route` order."""

    @cached_property
    def _by_prefix(self) -> dict[int, dict[IPv4Network, Route]]:
        # One dict per prefix length makes a lookup at most 33 probes, however
        # many routes a node of a 5,000-node cluster has.
        index: dict[int, dict[IPv4Network, Route]] = {}
        for route in self.routes:
            index.setdefault(route.dst.prefixlen, {}).setdefault(route.dst, route)
        return index

    @cached_property
    def _lengths(self) -> tuple[int, ...]:
        return tuple(sorted(self._by_prefix, reverse=True))

    def lookup(self, dst: IPv4Address) -> Route | None:
        """The longest-prefix match for `dst`, or None (the kernel's ENETUNREACH)."""
        for length in self._lengths:
            net = IPv4Network((int(dst) >> (32 - length) << (32 - length), length))
            route = self._by_prefix[length].get(net)
            if route is not None:
                return route
        return None
