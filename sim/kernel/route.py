"""Routing tables and longest-prefix lookup, as `ip route get` answers it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network
from operator import attrgetter

from model.frozen import frozen

__all__ = ["NodeRouteTable", "Route", "RouteTable", "SharedRoutes"]

# A prefix's first address as an int and its length, read without `ipaddress`'s Python-level
# properties (`int(net.network_address)`, `net.prefixlen`): 5,000 of them index in a
# millisecond instead of ten.
_PREFIX = attrgetter("network_address._ip", "_prefixlen")


@frozen
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


@frozen
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

    @property
    def held(self) -> int:
        """How many routes it holds (a cache's measure)."""
        return len(self.routes)


@dataclass(frozen=True, eq=False)
class SharedRoutes:
    """Routes every node's table has but one: a route per other node's podCIDR (or Calico
    block), the same on each node but its owner's, which routes its own differently.

    Kept once per cluster and indexed by prefix; a node's table (`NodeRouteTable`) looks
    them up there instead of holding 5,000 routes of its own. Each route is built when a
    lookup or a listing first needs it.
    """

    owners: tuple[str, ...]
    """Per entry, in `ip route` order, the node whose table lacks it."""
    dsts: tuple[IPv4Network, ...]
    """Per entry, its destination prefix."""
    make: Callable[[int], Route]
    """Builds entry i's route (its destination is `dsts[i]`)."""
    _built: dict[int, Route] = field(default_factory=dict, repr=False)

    @cached_property
    def _by_prefix(self) -> dict[int, dict[int, list[int]]]:
        # Keyed by the prefix's first address as an int: hashing 5,000 `IPv4Network`s
        # in Python would cost the first lookup more than the lookups ever do.
        index: dict[int, dict[int, list[int]]] = {}
        for i, (network, length) in enumerate(map(_PREFIX, self.dsts)):
            index.setdefault(length, {}).setdefault(network, []).append(i)
        return index

    @cached_property
    def lengths(self) -> frozenset[int]:
        """The prefix lengths of its entries."""
        return frozenset(self._by_prefix)

    def route(self, i: int) -> Route:
        """Entry i's route."""
        found = self._built.get(i)
        if found is None:
            found = self._built[i] = self.make(i)
        return found

    def first(self, length: int, network: int, owner: str) -> Route | None:
        """The first entry for exactly the prefix `network`/`length` (its first address as an
        int) that `owner`'s table has."""
        for i in self._by_prefix.get(length, {}).get(network, ()):
            if self.owners[i] != owner:
                return self.route(i)
        return None

    def of(self, owner: str) -> tuple[Route, ...]:
        """Every entry `owner`'s table has, in order."""
        return tuple(self.route(i) for i, o in enumerate(self.owners) if o != owner)


@dataclass(frozen=True, eq=False)
class NodeRouteTable:
    """A node's main table: its own routes, then the cluster's shared ones but its own entry.

    Looks up and lists exactly as a `RouteTable` of `own + shared.of(owner)` would: at each
    prefix length the first route for a prefix wins, and the node's own routes come first.
    """

    own: tuple[Route, ...]
    """The node's own routes (default, node network, its pods'), first in `ip route` order."""
    shared: SharedRoutes
    """The routes to other nodes' pods, shared with every node."""
    owner: str
    """The node's name: the shared entry it does not have."""

    @cached_property
    def routes(self) -> tuple[Route, ...]:
        """Routes in `ip route` order (built whole on first use: `kubehop routes`, the lab)."""
        return self.own + self.shared.of(self.owner)

    @cached_property
    def _own(self) -> RouteTable:
        return RouteTable(self.own)

    @cached_property
    def _lengths(self) -> tuple[int, ...]:
        return tuple(sorted(self.shared.lengths | set(self._own._by_prefix), reverse=True))

    def lookup(self, dst: IPv4Address) -> Route | None:
        """The longest-prefix match for `dst`, or None (the kernel's ENETUNREACH)."""
        own = self._own._by_prefix
        addr = int(dst)
        for length in self._lengths:
            network = addr >> (32 - length) << (32 - length)
            mine = own.get(length)
            route = mine.get(IPv4Network((network, length))) if mine else None
            if route is None:
                route = self.shared.first(length, network, self.owner)
            if route is not None:
                return route
        return None

    @property
    def held(self) -> int:
        """How many routes it holds itself (the shared ones are the cluster's)."""
        return len(self.own) + (len(self.routes) if "routes" in self.__dict__ else 0)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NodeRouteTable | RouteTable):
            return self.routes == other.routes
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.routes)
