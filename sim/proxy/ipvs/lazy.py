"""A node's IPVS state built a Service port at a time, as packets ask for it.

On a cluster at Kubernetes' scale limits one node's IPVS mode holds tens of
thousands of virtual servers, a million real servers and sets of tens of
thousands of members; a packet asks IPVS for one virtual server and the sets
for a few members. `NodeIpvs` answers those questions from indexes kept once
per cluster (`IpvsIndex`: which Service ports own a virtual address and port,
which addresses and ports each of kube-proxy's sets holds), building a Service
port's virtual servers with the same `sync_port` the whole sync runs, when a
packet first reaches one of them.

The iptables rules IPVS mode writes are few and fixed; they are rendered at
once, from which sets have members (`write_iptables`, as the whole sync).
What a person sees (`ipvsadm-save -n`, `ipset save`, `iptables-save`, `ip addr
show kube-ipvs0`), the whole table (`services`, `bound`: the lab, `rules
--diff`) and every member of a set come from the whole sync, made when first
asked.

Below `LAZY_FROM_PORTS` Service ports a node is rendered whole at once, as it
costs less than the indexes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network
from typing import overload

from model.cluster import Cluster, Endpoint, Node
from model.ipset import IPSET_DIMENSIONS, IpSet
from model.ipvs import IpvsTable, VirtualServer
from model.packet import Proto
from sim.collector import paused
from sim.kernel.rules import ForeignRules
from sim.memo import PerCluster
from sim.proxy.endpoints import external_policy_local, listed_endpoints, port_listings
from sim.proxy.iptables.sync import ServicePortEntry, service_ports
from sim.proxy.ipvs.save import IpvsListing, iptables_save, listings_of
from sim.proxy.ipvs.sync import (
    IPSETS,
    IpvsSync,
    NodeView,
    ipvs_timeouts,
    node_view,
    sync,
    sync_port,
    write_iptables,
)

__all__ = [
    "LAZY_FROM_PORTS",
    "IpvsIndex",
    "LazyIpSet",
    "LazyIpvsTable",
    "LazyListings",
    "NodeIpvs",
    "ipvs_index",
    "renders_in_parts",
]

LAZY_FROM_PORTS = 1000
"""From how many Service ports a node's IPVS state is built as packets reach it (below, a
whole node renders in milliseconds)."""

Key = tuple[int, str, int]
"""An address (as an integer: an `IPv4Address` hashes through a string), a protocol, a port:
a member of a `hash:ip,port` set, or the virtual server at that address and port."""

_TYPES = {name: kind for name, kind, _ in IPSETS}

_BY_ADDRESS = (
    "KUBE-CLUSTER-IP",
    "KUBE-EXTERNAL-IP",
    "KUBE-EXTERNAL-IP-LOCAL",
    "KUBE-LOAD-BALANCER",
    "KUBE-LOAD-BALANCER-LOCAL",
    "KUBE-LOAD-BALANCER-FW",
)
"""The `hash:ip,port` sets whose members are the same on every node."""

_NODE_PORT_SETS = (
    "KUBE-NODE-PORT-TCP",
    "KUBE-NODE-PORT-LOCAL-TCP",
    "KUBE-NODE-PORT-UDP",
    "KUBE-NODE-PORT-LOCAL-UDP",
    "KUBE-NODE-PORT-SCTP-HASH",
    "KUBE-NODE-PORT-LOCAL-SCTP-HASH",
)
"""The NodePort sets: port numbers, which a node holds only when it has NodePort addresses
(the SCTP ones: each of those addresses with the port)."""

VIRTUAL_SERVER_BYTES = 700
"""About what one built virtual server holds, its tuple of real servers included."""
REAL_SERVER_BYTES = 120
"""About what each of its real servers adds (the `RealServer`s are shared by a node)."""
WHOLE_TEXT_FACTOR = 4
"""Bytes held per character of the whole listings once rendered (as `sim.cluster.rules`
counts a node rendered whole)."""


def renders_in_parts(cluster: Cluster) -> bool:
    """Whether `cluster`'s nodes are built as packets reach them (`NodeIpvs`)."""
    # The index counts the ports once per cluster (counting them again for each node
    # a packet reaches cost 10 ms a node at 10,000 Services).
    return len(ipvs_index(cluster).ports) >= LAZY_FROM_PORTS


@dataclass
class IpvsIndex:
    """A cluster's Service ports as every node's sync walks them, and what finds them fast."""

    ports: tuple[ServicePortEntry, ...]
    """Every Service port kube-proxy programs, in sync's order."""
    by_address: dict[Key, list[int]] = field(default_factory=dict)
    """(ClusterIP, external or LB IP; protocol; port) → the ports with a virtual server there."""
    by_node_port: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    """(protocol, NodePort) → the ports with a virtual server at every NodePort address."""
    addresses: set[int] = field(default_factory=set)
    """Every ClusterIP, external IP and LB IP of a programmed port."""
    cluster_ips: set[int] = field(default_factory=set)
    """Every programmed port's ClusterIP (each is bound to kube-ipvs0 on every node)."""
    external: set[int] = field(default_factory=set)
    """External and LB IPs (bound unless the node has them on another interface)."""
    members: dict[str, set[Key]] = field(default_factory=lambda: {n: set() for n in _BY_ADDRESS})
    """The `_BY_ADDRESS` sets' members."""
    source_cidrs: dict[Key, list[IPv4Network]] = field(default_factory=dict)
    """KUBE-LOAD-BALANCER-SOURCE-CIDR: (LB IP, protocol, port) → the source ranges."""
    ranged: list[int] = field(default_factory=list)
    """Ports with LB IPs and source ranges (what they write depends on the node's address)."""
    node_ports: dict[str, set[int]] = field(
        default_factory=lambda: {n: set() for n in _NODE_PORT_SETS}
    )
    """The NodePort sets' port numbers."""
    health: set[int] = field(default_factory=set)
    """KUBE-HEALTH-CHECK-NODE-PORT's port numbers."""
    _listed: dict[tuple[int, int], tuple[int, ...]] | None = None
    _local: dict[str, set[Key]] | None = None

    def endpoints(self, cluster: Cluster) -> dict[tuple[int, int], tuple[int, ...]]:
        """(endpoint address as an integer, port) → the ports whose slices list it."""
        if self._listed is None:
            with paused():
                self._listed = listed_endpoints(cluster, ((s, p) for _, s, p in self.ports))
        return self._listed

    def local(self, cluster: Cluster, node: str) -> set[Key]:
        """KUBE-LOOP-BACK's members on `node`: each endpoint on it (address, protocol, port)."""
        if self._local is None:
            local: dict[str, set[Key]] = {}
            with paused():
                for _, proto, number, endpoints in self._listings(cluster):
                    for ep in endpoints:
                        if ep.node is not None:
                            local.setdefault(ep.node, set()).add((int(ep.ip), proto, number))
            self._local = local
        return self._local.get(node, set())

    def _listings(self, cluster: Cluster) -> Iterator[tuple[int, str, int, tuple[Endpoint, ...]]]:
        """Each port's endpoints as its slices list them: (port, protocol, endpoint port,
        the slice's endpoints)."""
        for p, (_, svc, port) in enumerate(self.ports):
            for number, endpoints in port_listings(cluster, svc, port):
                yield p, port.protocol.value, number, endpoints


def _index(cluster: Cluster) -> IpvsIndex:
    index = IpvsIndex(service_ports(cluster))
    for p, (_, svc, port) in enumerate(index.ports):
        proto = port.protocol.value
        assert svc.cluster_ip is not None
        local_ext = external_policy_local(svc)
        cluster_ip = int(svc.cluster_ip)
        index.cluster_ips.add(cluster_ip)
        index.members["KUBE-CLUSTER-IP"].add((cluster_ip, proto, port.port))
        for eip in svc.external_ips:
            key = (int(eip), proto, port.port)
            index.members["KUBE-EXTERNAL-IP-LOCAL" if local_ext else "KUBE-EXTERNAL-IP"].add(key)
            index.external.add(key[0])
        for lbip in svc.load_balancer_ips:
            key = (int(lbip), proto, port.port)
            index.members["KUBE-LOAD-BALANCER"].add(key)
            index.external.add(key[0])
            if local_ext:
                index.members["KUBE-LOAD-BALANCER-LOCAL"].add(key)
            if svc.load_balancer_source_ranges:
                index.members["KUBE-LOAD-BALANCER-FW"].add(key)
                index.source_cidrs.setdefault(key, []).extend(svc.load_balancer_source_ranges)
        if svc.load_balancer_ips and svc.load_balancer_source_ranges:
            index.ranged.append(p)
        for addr in (svc.cluster_ip, *svc.external_ips, *svc.load_balancer_ips):
            index.addresses.add(int(addr))
            index.by_address.setdefault((int(addr), proto, port.port), []).append(p)
        if port.node_port:
            index.by_node_port.setdefault((proto, port.node_port), []).append(p)
            suffix = "SCTP-HASH" if proto == "sctp" else proto.upper()
            index.node_ports[f"KUBE-NODE-PORT-{suffix}"].add(port.node_port)
            if local_ext:
                index.node_ports[f"KUBE-NODE-PORT-LOCAL-{suffix}"].add(port.node_port)
        if svc.health_check_node_port and local_ext:
            index.health.add(svc.health_check_node_port)
    return index


ipvs_index = PerCluster(_index, many_objects=True)
"""`cluster`'s index, built once per cluster object."""


@dataclass
class _Whole:
    """The node's whole sync as the kernel holds it and as a person sees it."""

    table: IpvsTable
    """Every virtual server, every address on kube-ipvs0."""
    listings: tuple[IpvsListing, ...]
    """What each command prints."""

    @cached_property
    def sets(self) -> dict[str, IpSet]:
        """kube-proxy's sets, every member, as the printed `ipset save` parses (only `rules
        --diff` and the lab ask: `kubehop rules` prints the text)."""
        from sim.readers.ipset import parse_ipsets

        text = next(item.text for item in self.listings if item.command == "ipset save")
        return parse_ipsets(text, "kube-proxy's ipsets")


class NodeIpvs:
    """One node's IPVS state: virtual servers built a Service port at a time, set
    membership from the cluster's indexes, the whole sync when something asks for all."""

    def __init__(self, cluster: Cluster, node: Node, extra: ForeignRules | None = None) -> None:
        self.cluster = cluster
        self.node = node
        self.index = ipvs_index(cluster)
        self.view: NodeView = node_view(cluster, node)
        self._own = {int(ip) for ip in self.view.own}
        self._node_ips = {int(ip) for ip in self.view.node_ips}
        self._built: dict[int, tuple[VirtualServer, ...]] = {}
        self._held = 0
        self._whole: _Whole | None = None
        self._source_ips, out_filter = self._ranged()
        self.local = self.index.local(cluster, node.name)
        skeleton = IpvsSync(filter=out_filter)
        write_iptables(skeleton, cluster, [name for name, _, _ in IPSETS if self.filled(name)])
        self.text = iptables_save(skeleton, extra)
        """`iptables-save` of the node, as the whole sync's (the CNI's rules placed by it)."""

    def _ranged(self) -> tuple[set[Key], list[tuple[str, ...]]]:
        """KUBE-LOAD-BALANCER-SOURCE-IP's members and the KUBE-IPVS-OUT-FILTER rules: what
        Service ports with LB source ranges write, which depends on the node's address."""
        members: set[Key] = set()
        scratch = IpvsSync()
        for p in self.index.ranged:
            self._build(p, scratch)
            _, svc, port = self.index.ports[p]
            if any(self.node.internal_ip in cidr for cidr in svc.load_balancer_source_ranges):
                proto = port.protocol.value
                members.update((int(lbip), proto, port.port) for lbip in svc.load_balancer_ips)
        return members, scratch.filter

    # --- virtual servers ---------------------------------------------------------

    def _build(self, p: int, scratch: IpvsSync) -> tuple[VirtualServer, ...]:
        """Sync Service port `p` into `scratch` and keep its virtual servers (taken out of
        `scratch`; its sets and rules stay there)."""
        name, svc, port = self.index.ports[p]
        sync_port(self.cluster, self.view, scratch, name, svc, port)
        found = self._built[p] = tuple(scratch.services)
        scratch.services.clear()
        self._held += sum(
            VIRTUAL_SERVER_BYTES + REAL_SERVER_BYTES * len(vs.real_servers) for vs in found
        )
        return found

    def port_services(self, p: int) -> tuple[VirtualServer, ...]:
        """The virtual servers of Service port `p` on this node, in the order sync adds them."""
        found = self._built.get(p)
        return self._build(p, IpvsSync()) if found is None else found

    def lookup(self, proto: Proto, ip: IPv4Address, port: int) -> VirtualServer | None:
        """The virtual server at `ip:port/proto`: the last of those sync adds there, as the
        whole table keeps it."""
        addr = int(ip)
        owners = list(self.index.by_address.get((addr, proto.value, port), ()))
        if addr in self._node_ips:
            owners += self.index.by_node_port.get((proto.value, port), ())
        found: VirtualServer | None = None
        key = (proto, ip, port)
        for p in sorted(set(owners)):
            for vs in self.port_services(p):
                if vs.key == key:
                    found = vs
        return found

    def has_address(self, ip: IPv4Address) -> bool:
        """Some virtual server listens at `ip`."""
        addr = int(ip)
        return addr in self.index.addresses or (
            addr in self._node_ips and bool(self.index.by_node_port)
        )

    def serves(self, endpoint: tuple[IPv4Address, int]) -> bool:
        """Some virtual server has `endpoint` as a real server."""
        ip, number = endpoint
        owners = self.index.endpoints(self.cluster).get((int(ip), number), ())
        return any(
            rs.ip == ip and rs.port == number
            for p in owners
            for vs in self.port_services(p)
            for rs in vs.real_servers
        )

    # --- sets --------------------------------------------------------------------

    def filled(self, name: str) -> bool:
        """Whether kube-proxy's set `name` has members on this node."""
        if name == "KUBE-LOOP-BACK":
            return bool(self.local)
        if name == "KUBE-LOAD-BALANCER-SOURCE-IP":
            return bool(self._source_ips)
        if name == "KUBE-LOAD-BALANCER-SOURCE-CIDR":
            return bool(self.index.source_cidrs)
        if name in _NODE_PORT_SETS:
            return bool(self._node_ips) and bool(self.index.node_ports[name])
        if name == "KUBE-HEALTH-CHECK-NODE-PORT":
            return bool(self.index.health)
        if name == "KUBE-IPVS-IPS":
            return bool(self.index.cluster_ips)
        return bool(self.index.members[name])

    def contains(self, name: str, values: tuple[IPv4Address | tuple[str, int], ...]) -> bool:
        """Whether `values` (as `-m set` looks them up) are a member of set `name`, as the
        parsed `ipset save` of the whole sync answers."""
        dims = IPSET_DIMENSIONS[_TYPES[name]]
        if len(values) != len(dims):
            return False
        addrs: list[int] = []
        ports: list[tuple[str, int]] = []
        for dim, value in zip(dims, values, strict=True):
            if dim == "port":
                if not isinstance(value, tuple) or len(value) != 2:
                    return self.whole().sets[name].contains(values)
                ports.append(value)
            elif isinstance(value, IPv4Address):
                addrs.append(int(value))
            else:
                return False
        if _TYPES[name] == "bitmap:port":
            # A bitmap:port member is a port number, whatever the protocol.
            number = ports[0][1]
            if name == "KUBE-HEALTH-CHECK-NODE-PORT":
                return number in self.index.health
            return bool(self._node_ips) and number in self.index.node_ports[name]
        if name == "KUBE-IPVS-IPS":
            addr = addrs[0]
            return addr in self.index.cluster_ips or (
                addr in self.index.external and addr not in self._own
            )
        key = (addrs[0], ports[0][0], ports[0][1])
        if name in ("KUBE-LOOP-BACK", "KUBE-LOAD-BALANCER-SOURCE-IP"):
            found = self.local if name == "KUBE-LOOP-BACK" else self._source_ips
            return addrs[0] == addrs[1] and key in found
        if name == "KUBE-LOAD-BALANCER-SOURCE-CIDR":
            source = values[2]
            assert isinstance(source, IPv4Address)
            return any(source in cidr for cidr in self.index.source_cidrs.get(key, ()))
        if name in _NODE_PORT_SETS:
            # The SCTP sets: each NodePort address with the port.
            return (
                key[1] == "sctp"
                and key[0] in self._node_ips
                and key[2] in self.index.node_ports[name]
            )
        return key in self.index.members[name]

    # --- the whole ---------------------------------------------------------------

    def whole(self) -> _Whole:
        """The whole sync, rendered and parsed once (what a person sees, every member)."""
        if self._whole is None:
            synced = sync(self.cluster, self.node)
            name = self.node.name
            self._whole = _Whole(
                synced.table(f"{name} (rendered)", self.cluster),
                listings_of(self.cluster, name, synced, self.text),
            )
        return self._whole

    @property
    def whole_rendered(self) -> bool:
        """The whole sync has been made."""
        return self._whole is not None

    @property
    def held_bytes(self) -> int:
        """About how many bytes the node holds: its iptables text and what parsing it holds,
        the virtual servers built so far, and the whole listings once rendered."""
        size = WHOLE_TEXT_FACTOR * len(self.text) + self._held
        if self._whole is not None:
            size += WHOLE_TEXT_FACTOR * sum(len(item.text) for item in self._whole.listings)
        return size

    def release(self) -> None:
        """Drop what was built (what still refers to the node builds it anew)."""
        self._built.clear()
        self._held = 0
        self._whole = None


class LazyIpvsTable(IpvsTable):
    """A node's `IpvsTable` whose virtual servers are built as they are looked up; `services`
    and `bound` (every one) come from the whole sync."""

    state: NodeIpvs
    """The node."""

    def __init__(self, state: NodeIpvs) -> None:
        setter = object.__setattr__
        setter(self, "state", state)
        setter(self, "source", f"{state.node.name} (rendered)")
        setter(self, "timeouts", ipvs_timeouts(state.cluster))
        setter(self, "strict_arp", state.cluster.kube_proxy.ipvs_strict_arp)

    @property
    def services(self) -> tuple[VirtualServer, ...]:
        """Every virtual server, from the whole sync."""
        return self.state.whole().table.services

    @property
    def bound(self) -> tuple[IPv4Address, ...]:
        """Every address on kube-ipvs0, from the whole sync."""
        return self.state.whole().table.bound

    def lookup(self, proto: Proto, ip: IPv4Address, port: int) -> VirtualServer | None:
        """ip_vs_service_find: the virtual server at `ip:port/proto`, if any."""
        return self.state.lookup(proto, ip, port)

    def has_address(self, ip: IPv4Address) -> bool:
        """Some virtual server listens at `ip` (on any port)."""
        return self.state.has_address(ip)

    def serves(self, endpoint: tuple[IPv4Address, int]) -> bool:
        """Some virtual server has `endpoint` (address, port) as a real server."""
        return self.state.serves(endpoint)

    def __repr__(self) -> str:
        return f"LazyIpvsTable({self.source!r})"


class LazyIpSet(IpSet):
    """One of kube-proxy's sets on a node: membership from the cluster's indexes, every
    member (`members`) from the whole sync's `ipset save`."""

    state: NodeIpvs
    """The node."""

    def __init__(self, state: NodeIpvs, name: str) -> None:
        setter = object.__setattr__
        setter(self, "state", state)
        setter(self, "name", name)
        setter(self, "type", _TYPES[name])
        setter(self, "ipv6", False)

    @property
    def members(self) -> tuple[tuple[IPv4Network | tuple[str, int], ...], ...]:
        """Every member, as the whole sync's `ipset save` parses."""
        return self.state.whole().sets[self.name].members

    def contains(self, values: tuple[IPv4Address | tuple[str, int], ...]) -> bool:
        """Whether a packet's looked-up values are a member."""
        return self.state.contains(self.name, values)

    def __repr__(self) -> str:
        return f"LazyIpSet({self.name!r})"


def lazy_sets(state: NodeIpvs) -> dict[str, IpSet]:
    """kube-proxy's sets on the node, in the order `ipset save` lists them."""
    return {name: LazyIpSet(state, name) for name, _, _ in IPSETS}


class LazyListings(Sequence[IpvsListing]):
    """What a person sees on the node, command by command, rendered when first read."""

    def __init__(self, state: NodeIpvs) -> None:
        self.state = state

    def _all(self) -> tuple[IpvsListing, ...]:
        return self.state.whole().listings

    @overload
    def __getitem__(self, at: int) -> IpvsListing: ...

    @overload
    def __getitem__(self, at: slice) -> Sequence[IpvsListing]: ...

    def __getitem__(self, at: int | slice) -> IpvsListing | Sequence[IpvsListing]:
        return self._all()[at]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[IpvsListing]:
        return iter(self._all())
