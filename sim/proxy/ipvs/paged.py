"""A node's IPVS listings whose lines are spelled when read: what a view of a big node draws.

At Kubernetes' scale limits `ipvsadm-save -n` prints about 200,000 lines on a
node, and the whole sync that spells them takes seconds; a view shows a
screenful. `node_pages` knows where every virtual server starts without
building one:

- the virtual servers every node has (each Service port's at its ClusterIP,
  external IPs and LB IPs) are sorted once per cluster, as libipvs sorts them,
  with how many real servers each has on a node none of the port's endpoints is
  on (counted from the EndpointSlices, no real server made);
- a node merges in its own: its NodePort virtual servers on its own addresses
  (each placed by one search), and new counts for the ports whose real servers
  differ on it (a Local traffic policy, an endpoint listed twice, where one of
  the port's endpoints is on it).

A line is spelled by building its Service port's virtual servers on the node
(`NodeIpvs.port_services`, as traces do) and its virtual server's real servers
sorted; a virtual server is checked against its count when first read. `ipset
save` is the sets every node has alike (made once per cluster) around the
node's own (KUBE-LOOP-BACK, …); `ip addr show kube-ipvs0` spells an address's
lines from the addresses bound, in the order sync binds them.

libipvs compares addresses by their difference as a signed 32-bit integer,
which orders them only while they fit in half the address space; where a
node's do not, the order depends on how the sort visits them, and its listing
is not paged (`node_pages` gives None: the whole text is rendered).

The rows are exactly `listings_of`'s texts' lines (tests join them and compare).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from itertools import accumulate, pairwise
from typing import overload

from model.cluster import Cluster
from sim.memo import PerCluster
from sim.proxy.endpoints import (
    Categorized,
    categorize,
    external_policy_local,
    internal_policy_local,
    port_endpoints,
    port_listings,
    uses_local_endpoints,
)
from sim.proxy.iptables.sync import ServicePortEntry
from sim.proxy.ipvs.lazy import NodeIpvs, ipvs_index
from sim.proxy.ipvs.save import (
    bound_lines,
    ip_addr_head,
    real_lines,
    set_lines,
    virtual_line,
)
from sim.proxy.ipvs.sync import IPSETS
from sim.readers.pages import Pages, Row, TextPages, locate

__all__ = ["IpvsadmPages", "LinePages", "node_pages", "shared_part_ready"]

_RING = 1 << 32
_HALF = 1 << 31
_PROTO_NUMBER = {"tcp": 6, "udp": 17, "sctp": 132}
"""IP protocol numbers: libipvs sorts virtual servers by protocol first."""
_SWITCH = {"-t": "tcp", "-u": "udp", "--sctp-service": "sctp"}

_SHARED_SETS = (
    "KUBE-CLUSTER-IP",
    "KUBE-EXTERNAL-IP",
    "KUBE-EXTERNAL-IP-LOCAL",
    "KUBE-LOAD-BALANCER",
    "KUBE-LOAD-BALANCER-FW",
    "KUBE-LOAD-BALANCER-LOCAL",
    "KUBE-LOAD-BALANCER-SOURCE-CIDR",
    "KUBE-HEALTH-CHECK-NODE-PORT",
)
"""Sets whose members are the same on every node."""
_NODE_PORT_SETS = (
    "KUBE-NODE-PORT-TCP",
    "KUBE-NODE-PORT-LOCAL-TCP",
    "KUBE-NODE-PORT-UDP",
    "KUBE-NODE-PORT-LOCAL-UDP",
)
"""Port-number sets: the same on every node that has a NodePort address, empty elsewhere."""

SortKey = tuple[int, int, int, int, int]
"""A virtual server's place: protocol number, address as an offset from where the cluster's
addresses start (`_Arc`), port, then sync's order (Service port, then the port's own order)."""


@dataclass(frozen=True)
class _Arc:
    """A protocol's shared virtual addresses, as offsets from where they start on the ring."""

    origin: int
    """The address the sort starts at: the one after the widest gap between addresses."""
    length: int
    """The offset of the last address (less than half the ring)."""

    def offset(self, ip: int) -> int:
        return (ip - self.origin) % _RING


def _arc(addresses: set[int]) -> _Arc | None:
    """Where `addresses` start and end on the ring, None if they span half of it or more (then
    libipvs's signed comparison is no order)."""
    ordered = sorted(addresses)
    if not ordered:
        return _Arc(0, 0)
    gaps = [b - a for a, b in pairwise(ordered)]
    gaps.append(ordered[0] + _RING - ordered[-1])
    at = max(range(len(gaps)), key=gaps.__getitem__)
    if gaps[at] <= _HALF:
        return None
    return _Arc(ordered[(at + 1) % len(ordered)], _RING - gaps[at])


@dataclass
class _Shared:
    """What every node of a cluster shares: its virtual servers sorted, counted; its sets."""

    ports: tuple[ServicePortEntry, ...]
    arcs: dict[str, _Arc | None]
    """Per protocol, where its shared virtual addresses lie (None: no order)."""
    keys: list[SortKey] = field(default_factory=list)
    """The shared virtual servers, sorted."""
    items: list[tuple[int, int]] = field(default_factory=list)
    """Each of `keys`' Service port and place in it (0: the ClusterIP, then external, LB IPs)."""
    counts: array[int] = field(default_factory=lambda: array("q"))
    """Real servers of each of `keys` on a node none of its port's endpoints is on."""
    starts: array[int] = field(default_factory=lambda: array("q", [0]))
    """The row each of `keys` starts at (one more: the end)."""
    by_key: dict[tuple[str, int, int], list[int]] = field(default_factory=dict)
    """(protocol, address, port) → the shared virtual servers there."""
    slots: dict[int, list[int]] = field(default_factory=dict)
    """Service port → its shared virtual servers' indexes, in its own order."""
    internal: list[int] = field(default_factory=list)
    """Per Service port: the ClusterIP virtual server's real servers (on a node with none of its
    endpoints)."""
    external: list[int] = field(default_factory=list)
    """Per Service port: its other virtual servers' real servers (likewise)."""
    per_node: frozenset[int] = frozenset()
    """Ports whose real servers differ on a node one of their endpoints is on."""
    hosted: dict[str, list[int]] = field(default_factory=dict)
    """Node → the Service ports with an endpoint on it, in sync's order."""
    node_ports: list[int] = field(default_factory=list)
    """Service ports with a NodePort, in sync's order."""
    node_port_protocols: set[str] = field(default_factory=set)
    """Their protocols."""
    sets: dict[str, list[str]] = field(default_factory=dict)
    """`_SHARED_SETS` and `_NODE_PORT_SETS`: their `ipset save` lines, `create` first."""
    bound: list[tuple[int, bool]] = field(default_factory=list)
    """kube-ipvs0's candidate addresses in the order sync binds them; True for an external or
    LB IP (not bound where the node has it)."""
    external_ips: frozenset[int] = frozenset()
    """The external and LB IPs among them."""
    everywhere: list[int] = field(default_factory=list)
    """What a node none of whose addresses is an external IP binds, in order."""
    ipvs_ips: list[str] = field(default_factory=list)
    """KUBE-IPVS-IPS's `ipset save` lines on such a node."""
    spelled: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    """The lines of shared virtual servers read lately whose lines are the same on every node
    (not `per_node`): another node reading there spells nothing."""


def _count(endpoints_ready: int, serving_terminating: int) -> int:
    return endpoints_ready or serving_terminating


def _shared(cluster: Cluster) -> _Shared:
    ports = ipvs_index(cluster).ports
    per_node: set[int] = set()
    hosted: dict[str, list[int]] = {}
    internal: list[int] = []
    external: list[int] = []
    addresses: dict[str, set[int]] = {}
    for p, (_, svc, port) in enumerate(ports):
        seen: set[tuple[int, int]] = set()
        listed = ready = ending = 0
        nodes: set[str] = set()
        for number, endpoints in port_listings(cluster, svc, port):
            listed += len(endpoints)
            for ep in endpoints:
                seen.add((int(ep.ip), number))
                if ep.ready:
                    ready += 1
                elif ep.serving and ep.terminating:
                    ending += 1
                if ep.node is not None:
                    nodes.add(ep.node)
        for node in nodes:
            hosted.setdefault(node, []).append(p)
        if len(seen) != listed or uses_local_endpoints(svc, port):
            per_node.add(p)
            # "" is no node's name: every endpoint is remote, as on most nodes.
            cat = categorize(port_endpoints(cluster, svc, port, ""), svc, port)
            internal.append(_servers(cat, internal_policy_local(svc)))
            external.append(_servers(cat, external_policy_local(svc)))
        else:
            internal.append(_count(ready, ending))
            external.append(internal[-1])
        assert svc.cluster_ip is not None
        for addr in (svc.cluster_ip, *svc.external_ips, *svc.load_balancer_ips):
            addresses.setdefault(port.protocol.value, set()).add(int(addr))
    shared = _Shared(ports, {proto: _arc(found) for proto, found in addresses.items()})
    shared.node_ports = [p for p, (_, _, port) in enumerate(ports) if port.node_port]
    shared.node_port_protocols = {ports[p][2].protocol.value for p in shared.node_ports}
    shared.per_node = frozenset(per_node)
    shared.hosted = hosted
    shared.internal = internal
    shared.external = external
    if all(shared.arcs.values()):
        _sort(shared)
    _sets(shared)
    _bound(shared)
    return shared


def _servers(cat: Categorized, only_local: bool) -> int:
    """How many real servers `_real_servers` gives a virtual server (sync.py)."""
    return len(cat.local) if only_local and cat.local else len(cat.cluster)


def _sort(shared: _Shared) -> None:
    found: list[tuple[SortKey, int]] = []
    for p, (_, svc, port) in enumerate(shared.ports):
        proto = port.protocol.value
        arc = shared.arcs[proto]
        assert arc is not None and svc.cluster_ip is not None
        number = _PROTO_NUMBER.get(proto, 0)
        addrs = (svc.cluster_ip, *svc.external_ips, *svc.load_balancer_ips)
        for k, addr in enumerate(addrs):
            count = shared.internal[p] if k == 0 else shared.external[p]
            found.append(((number, arc.offset(int(addr)), port.port, p, k), count))
    found.sort()
    shared.keys = [key for key, _ in found]
    shared.items = [(key[3], key[4]) for key, _ in found]
    shared.counts = array("q", (count for _, count in found))
    shared.starts = array("q", accumulate((1 + count for _, count in found), initial=0))
    for i, (_, _, vport, p, k) in enumerate(shared.keys):
        _, svc, port = shared.ports[p]
        found_at = (svc.cluster_ip, *svc.external_ips, *svc.load_balancer_ips)[k]
        assert found_at is not None
        shared.by_key.setdefault((port.protocol.value, int(found_at), vport), []).append(i)
        shared.slots.setdefault(p, []).append(i)
    for slots in shared.slots.values():
        slots.sort(key=lambda i: shared.items[i][1])


def _sets(shared: _Shared) -> None:
    """The members of the sets every node shares, added as `sync_port` adds them."""
    members: dict[str, dict[str, None]] = {n: {} for n in (*_SHARED_SETS, *_NODE_PORT_SETS)}
    for _, svc, port in shared.ports:
        proto = port.protocol.value
        local_ext = external_policy_local(svc)
        members["KUBE-CLUSTER-IP"][f"{svc.cluster_ip},{proto}:{port.port}"] = None
        for eip in svc.external_ips:
            name = "KUBE-EXTERNAL-IP-LOCAL" if local_ext else "KUBE-EXTERNAL-IP"
            members[name][f"{eip},{proto}:{port.port}"] = None
        for lbip in svc.load_balancer_ips:
            entry = f"{lbip},{proto}:{port.port}"
            members["KUBE-LOAD-BALANCER"][entry] = None
            if local_ext:
                members["KUBE-LOAD-BALANCER-LOCAL"][entry] = None
            if svc.load_balancer_source_ranges:
                members["KUBE-LOAD-BALANCER-FW"][entry] = None
                for cidr in svc.load_balancer_source_ranges:
                    members["KUBE-LOAD-BALANCER-SOURCE-CIDR"][f"{entry},{cidr}"] = None
        if port.node_port and proto != "sctp":
            members[f"KUBE-NODE-PORT-{proto.upper()}"][str(port.node_port)] = None
            if local_ext:
                members[f"KUBE-NODE-PORT-LOCAL-{proto.upper()}"][str(port.node_port)] = None
        if svc.health_check_node_port and local_ext:
            members["KUBE-HEALTH-CHECK-NODE-PORT"][str(svc.health_check_node_port)] = None
    kinds = {name: kind for name, kind, _ in IPSETS}
    shared.sets = {name: set_lines(name, kinds[name], found) for name, found in members.items()}


def _bound(shared: _Shared) -> None:
    """kube-ipvs0's addresses as sync binds them, Service port after Service port."""
    bound: list[tuple[int, bool]] = []
    for _, svc, _ in shared.ports:
        assert svc.cluster_ip is not None
        bound.append((int(svc.cluster_ip), False))
        bound += ((int(ip), True) for ip in (*svc.external_ips, *svc.load_balancer_ips))
    shared.bound = bound
    shared.external_ips = frozenset(ip for ip, external in bound if external)
    shared.everywhere = list(dict.fromkeys(ip for ip, _ in bound))
    shared.ipvs_ips = _ipvs_ips(shared.everywhere)


def _ipvs_ips(bound: list[int]) -> list[str]:
    return set_lines("KUBE-IPVS-IPS", "hash:ip", (str(IPv4Address(ip)) for ip in bound))


_shared_part = PerCluster(_shared, many_objects=True)
"""What every node of a cluster shares, made once per cluster object."""


def shared_part_ready(cluster: Cluster) -> bool:
    """Whether what every node of `cluster` shares is sorted and counted (the slow part of a
    node's pages: each node's own part then takes milliseconds)."""
    return _shared_part.peek(cluster) is not None


class LinePages:
    """Lines outside every table, held in parts (lists a cluster shares, a node's own), as
    pages."""

    rule_count = 0
    chain_width = 0
    most_rules = 0

    def __init__(self, parts: Sequence[Sequence[str]]) -> None:
        self._parts = [part for part in parts if len(part)]
        self._firsts = list(accumulate((len(part) for part in self._parts), initial=0))

    def __len__(self) -> int:
        return self._firsts[-1]

    def row(self, r: int) -> Row:
        """Row `r`."""
        at, offset = locate(self._firsts, self._firsts[-1], r)
        return self._parts[at][offset], "", "", 0

    def find(self, table: str, chain: str, number: int) -> int | None:
        """None: these lines hold no iptables rule."""
        return None

    def find_line(self, line: str) -> int | None:
        """None: these lines are no `ipvsadm-save` line."""
        return None


class _BoundLines(Sequence[str]):
    """`ip addr show kube-ipvs0`'s lines of the bound addresses, two each, spelled when read."""

    def __init__(self, addresses: Sequence[int]) -> None:
        self._addresses = addresses

    def __len__(self) -> int:
        return 2 * len(self._addresses)

    @overload
    def __getitem__(self, at: int) -> str: ...
    @overload
    def __getitem__(self, at: slice) -> Sequence[str]: ...
    def __getitem__(self, at: int | slice) -> str | Sequence[str]:
        if isinstance(at, slice):
            return [self[i] for i in range(*at.indices(len(self)))]
        if not 0 <= at < len(self):
            raise IndexError(at)
        return bound_lines(IPv4Address(self._addresses[at // 2]))[at % 2]


_SPELLED_KEPT = 16
"""Virtual servers whose lines a node's pages keep spelled (a view reads a few at a time)."""
_SHARED_SPELLED_KEPT = 64
"""Virtual servers alike on every node whose lines a cluster keeps spelled (then forgets all:
a few screens' worth, which the next node shown reads at the same place)."""


class IpvsadmPages:
    """A node's `ipvsadm-save -n` as rows spelled when read.

    Its virtual servers are the cluster's shared ones (`_Shared.keys`) with the
    node's own merged in (its NodePort virtual servers) and some shared ones
    recounted (`_own`, `_recounted`). Both kinds are "specials" here, kept in
    the merged order with where each starts, so a row is found by two searches.
    """

    rule_count = 0
    chain_width = 0
    most_rules = 0

    def __init__(self, state: NodeIpvs, shared: _Shared, shifts: dict[str, int]) -> None:
        self._state = state
        self._shared = shared
        cluster = state.cluster
        name = state.node.name
        hosted = shared.hosted.get(name, [])
        internal = {p: shared.internal[p] for p in hosted}
        external = {p: shared.external[p] for p in hosted}
        for p in hosted:
            if p in shared.per_node:
                _, svc, port = shared.ports[p]
                cat = categorize(port_endpoints(cluster, svc, port, name), svc, port)
                internal[p] = _servers(cat, internal_policy_local(svc))
                external[p] = _servers(cat, external_policy_local(svc))
        self._recounted: dict[int, int] = {}
        for p in hosted:
            for i in shared.slots.get(p, ()):
                count = internal[p] if shared.items[i][1] == 0 else external[p]
                if count != shared.counts[i]:
                    self._recounted[i] = count
        own: list[tuple[SortKey, int, int]] = []
        node_ips = state.view.node_ips
        for p in shared.node_ports if node_ips else ():
            _, svc, port = shared.ports[p]
            assert port.node_port is not None
            proto = port.protocol.value
            arc = shared.arcs[proto]
            assert arc is not None
            shift = shifts[proto]
            first = 1 + len(svc.external_ips) + len(svc.load_balancer_ips)
            count = external.get(p, shared.external[p])
            for j, ip in enumerate(node_ips):
                # Its offset from the node's start, less the shared addresses' (so that it
                # compares with theirs: one sorting before them comes out negative).
                offset = (arc.offset(int(ip)) - shift) % _RING - (-shift) % _RING
                key = (_PROTO_NUMBER.get(proto, 0), offset, port.node_port, p, first + j)
                own.append((key, count, int(ip)))
        own.sort()
        self._own_keys = [key for key, _, _ in own]
        self._own_counts = [count for _, count, _ in own]
        self._own_by_key: dict[tuple[str, int, int], list[int]] = {}
        for j, (key, _, address) in enumerate(own):
            proto = shared.ports[key[3]][2].protocol.value
            self._own_by_key.setdefault((proto, address, key[2]), []).append(j)
        self._place()
        self._spelled: OrderedDict[tuple[int, int], list[str]] = OrderedDict()

    def _place(self) -> None:
        """The specials in merged order: where each starts, its size, the rows it adds."""
        shared = self._shared
        specials: list[tuple[int, int, int]] = []  # (position, own index or -1, shared index)
        for j, key in enumerate(self._own_keys):
            specials.append((2 * bisect_left(shared.keys, key), j, -1))
        specials += ((2 * i + 1, -1, i) for i in self._recounted)
        specials.sort()
        self._positions = [position for position, _, _ in specials]
        self._what = [(j, i) for _, j, i in specials]
        starts = array("q")
        sizes = array("q")
        extra = array("q")
        added = 0
        self._own_special = [0] * len(self._own_keys)
        for s, (position, j, i) in enumerate(specials):
            if j >= 0:
                self._own_special[j] = s
                size = 1 + self._own_counts[j]
                starts.append(shared.starts[position // 2] + added)
                added += size
            else:
                size = 1 + self._recounted[i]
                starts.append(shared.starts[i] + added)
                added += size - (1 + shared.counts[i])
            sizes.append(size)
            extra.append(added)
        self._starts, self._sizes, self._extra = starts, sizes, extra
        self._len = shared.starts[-1] + added

    def __len__(self) -> int:
        return self._len

    def _locate(self, r: int) -> tuple[int, int, int, int]:
        """The virtual server holding row `r`: its Service port, its place there, its real
        servers, and the row's place in it (0: its `-A` line)."""
        s = bisect_right(self._starts, r) - 1
        if s >= 0 and r < self._starts[s] + self._sizes[s]:
            j, i = self._what[s]
            offset = r - self._starts[s]
            if j >= 0:
                _, _, _, p, k = self._own_keys[j]
                return p, k, self._own_counts[j], offset
            p, k = self._shared.items[i]
            return p, k, self._recounted[i], offset
        shifted = r - (self._extra[s] if s >= 0 else 0)
        starts = self._shared.starts
        i = bisect_right(starts, shifted) - 1
        p, k = self._shared.items[i]
        return p, k, self._shared.counts[i], shifted - starts[i]

    def _lines(self, p: int, k: int, count: int) -> list[str]:
        """The `-A` line and `-a` lines of virtual server `k` of Service port `p`."""
        found = self._spelled.get((p, k))
        if found is not None:
            self._spelled.move_to_end((p, k))
            return found
        shared = self._shared
        alike = p not in shared.per_node and k < len(shared.slots.get(p, ()))
        found = shared.spelled.get((p, k)) if alike else None
        if found is None:
            vs = self._state.port_services(p)[k]
            # Every later virtual server's place rests on this count.
            assert len(vs.real_servers) == count, (
                f"{vs.save_name}: {len(vs.real_servers)} real servers rendered, {count} counted"
            )
            found = [virtual_line(vs), *real_lines(vs)]
            if alike:
                if len(shared.spelled) >= _SHARED_SPELLED_KEPT:
                    shared.spelled.clear()
                shared.spelled[p, k] = found
        self._spelled[p, k] = found
        while len(self._spelled) > _SPELLED_KEPT:
            self._spelled.popitem(last=False)
        return found

    def row(self, r: int) -> Row:
        """Row `r`."""
        if not 0 <= r < self._len:
            raise IndexError(r)
        p, k, count, offset = self._locate(r)
        return self._lines(p, k, count)[offset], "", "", 0

    def find(self, table: str, chain: str, number: int) -> int | None:
        """None: ipvsadm-save prints no iptables rule."""
        return None

    def _shared_row(self, i: int) -> int:
        s = bisect_left(self._positions, 2 * i + 1) - 1
        return self._shared.starts[i] + (self._extra[s] if s >= 0 else 0)

    def find_line(self, line: str) -> int | None:
        """The row of an `-A` or `-a` line (the last, should one repeat)."""
        words = line.split(" ")
        if len(words) < 3 or words[0] not in ("-A", "-a") or words[1] not in _SWITCH:
            return None
        address, _, number = words[2].rpartition(":")
        try:
            key = (_SWITCH[words[1]], int(IPv4Address(address)), int(number))
        except ValueError:
            return None
        found: list[tuple[int, int, int, int]] = []
        for i in self._shared.by_key.get(key, ()):
            p, k = self._shared.items[i]
            found.append(
                (self._shared_row(i), p, k, self._recounted.get(i, self._shared.counts[i]))
            )
        for j in self._own_by_key.get(key, ()):
            _, _, _, p, k = self._own_keys[j]
            found.append((self._starts[self._own_special[j]], p, k, self._own_counts[j]))
        best: int | None = None
        for first, p, k, count in found:
            lines = self._lines(p, k, count)
            if words[0] == "-A":
                at = 0 if lines[0] == line else -1
            else:
                at = lines.index(line, 1) if line in lines else -1
            if at >= 0 and (best is None or first + at > best):
                best = first + at
        return best


def _node_shifts(shared: _Shared, state: NodeIpvs) -> dict[str, int] | None:
    """Per protocol, where the node's sort starts, as an offset from the shared addresses'
    start: 0, unless some of its NodePort addresses sort before them; None if its addresses
    span half the ring or more."""
    protos = shared.node_port_protocols
    found: dict[str, int] = {}
    for proto, arc in shared.arcs.items():
        if arc is None:
            return None
        found[proto] = 0
        if proto not in protos:
            continue
        offsets = (arc.offset(int(ip)) for ip in state.view.node_ips)
        outside = sorted(o for o in offsets if o > arc.length)
        if not outside:
            continue
        points = [arc.length, *outside, _RING]
        gaps = [b - a for a, b in pairwise(points)]
        at = max(range(len(gaps)), key=gaps.__getitem__)
        if gaps[at] <= _HALF:
            return None
        # The sort starts after the widest gap; the shared addresses keep their order.
        found[proto] = points[at + 1] % _RING
    return found


def node_pages(state: NodeIpvs, iptables_text: str) -> tuple[tuple[str, Pages], ...] | None:
    """The node's listings (`listings_of`'s commands, in order) as pages; None where libipvs's
    order of its virtual servers is no order (the whole text is rendered)."""
    shared = _shared_part(state.cluster)
    shifts = _node_shifts(shared, state)
    if shifts is None:
        return None
    return (
        ("ipvsadm-save -n", IpvsadmPages(state, shared, shifts)),
        ("ipset save", LinePages(_ipset_parts(state, shared))),
        ("iptables-save", TextPages(iptables_text)),
        ("ip addr show kube-ipvs0", LinePages(_ip_addr_parts(state, shared))),
    )


def _ipset_parts(state: NodeIpvs, shared: _Shared) -> list[Sequence[str]]:
    """`ipset save`'s lines in parts: the sets every node shares as they are, the node's own
    made (their members added as `sync_port` adds them)."""
    cluster, node = state.cluster, state.node
    node_ips = state.view.node_ips
    own: dict[str, dict[str, None]] = {
        "KUBE-LOOP-BACK": {},
        "KUBE-LOAD-BALANCER-SOURCE-IP": {},
        "KUBE-NODE-PORT-SCTP-HASH": {},
        "KUBE-NODE-PORT-LOCAL-SCTP-HASH": {},
    }
    loop = own["KUBE-LOOP-BACK"]
    name = node.name
    for p in shared.hosted.get(name, ()):
        _, svc, port = shared.ports[p]
        proto = port.protocol.value
        # An endpoint listed on the node is local however else it is listed (the local copy
        # wins in `port_endpoints`).
        for number, endpoints in port_listings(cluster, svc, port):
            for ep in endpoints:
                if ep.node == name:
                    loop[f"{ep.ip},{proto}:{number},{ep.ip}"] = None
    for p in ipvs_index(cluster).ranged:
        _, svc, port = shared.ports[p]
        if any(node.internal_ip in cidr for cidr in svc.load_balancer_source_ranges):
            for lbip in svc.load_balancer_ips:
                entry = f"{lbip},{port.protocol.value}:{port.port},{lbip}"
                own["KUBE-LOAD-BALANCER-SOURCE-IP"][entry] = None
    for p in shared.node_ports if node_ips else ():
        _, svc, port = shared.ports[p]
        if port.protocol.value == "sctp":
            for ip in node_ips:
                own["KUBE-NODE-PORT-SCTP-HASH"][f"{ip},sctp:{port.node_port}"] = None
                if external_policy_local(svc):
                    own["KUBE-NODE-PORT-LOCAL-SCTP-HASH"][f"{ip},sctp:{port.node_port}"] = None
    parts: list[Sequence[str]] = []
    bound = _bound_of(state, shared)
    for name, kind, _ in IPSETS:
        if name in own:
            parts.append(set_lines(name, kind, own[name]))
        elif name in _NODE_PORT_SETS and not node_ips:
            parts.append(set_lines(name, kind, ()))
        elif name == "KUBE-IPVS-IPS":
            fresh = bound is shared.everywhere
            parts.append(shared.ipvs_ips if fresh else _ipvs_ips(bound))
        else:
            parts.append(shared.sets[name])
    return parts


def _bound_of(state: NodeIpvs, shared: _Shared) -> list[int]:
    """kube-ipvs0's addresses on the node, in the order sync binds them."""
    own = {int(ip) for ip in state.view.own}
    if own.isdisjoint(shared.external_ips):
        return shared.everywhere
    return list(dict.fromkeys(ip for ip, ext in shared.bound if not ext or ip not in own))


def _ip_addr_parts(state: NodeIpvs, shared: _Shared) -> list[Sequence[str]]:
    """`ip addr show kube-ipvs0`'s lines in parts: the device's, then the bound addresses'."""
    # kube-ipvs0 comes after lo, eth0 and the CNI's bridge, as `listings_of` numbers it.
    return [ip_addr_head(state.node.name, 4), _BoundLines(_bound_of(state, shared))]
