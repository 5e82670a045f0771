"""The machines of a cluster as Linux sees them: a netns per node, pod and external client.

A node is a netns with `lo`, `eth0` on the node network, a default route to
the node network's router, and whatever its CNI adds (`sim.cni`: for host-gw
the bridge `cni0` with its pods' veths, and routes to other nodes' pods). A pod
is a netns with `lo` and the `eth0` its CNI gives it. An external client on
the node network is a netns with `eth0` there; one elsewhere (the Internet, an
office) sits behind the node network's router, a netns of its own whose link
to each such client stands for everything between them. This is the kernel's
`Network` for one cluster: the walker asks it for namespaces and neighbours.

A dump holds neither the node network's prefix nor its router: kubehop infers
the prefix from the nodes' InternalIPs alone (never from clients, which may be
anywhere) and assumes the router at the network's first free address, and the
routes it puts there say so on the hops that use them.

Netns are built on demand and cached, so a cluster of 150,000 pods costs only
the few namespaces a trace passes through; what a netns needs from the whole
cluster (which EndpointSlices list an address, which node announces a
LoadBalancer IP) is looked up in indexes built once per cluster, not computed
for every Service or endpoint while the first trace waits. The cache is bounded
by what the namespaces hold (`CACHE_ENTRIES`), so thousands of traces over
thousands of nodes keep memory flat.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from operator import attrgetter

from model.cluster import Cluster, ExternalClient, Node, Pod, ProxyMode, Service, TrafficPolicy
from model.frozen import frozen
from model.packet import Packet, Proto
from sim.cni import CNI, cni_of
from sim.cni.base import pod_ns_name, pods_on, stable_mac
from sim.cni.peers import Peers
from sim.kernel.devices import IfKind, Interface, Listener, Netns, NetnsKind
from sim.kernel.route import NodeRouteTable, Route, RouteTable

__all__ = [
    "CACHE_ENTRIES",
    "ROUTER_NS",
    "ClusterNetwork",
    "client_ns_name",
    "network_of",
    "node_ns_name",
    "pod_ns_name",
]

ROUTER_NS = "router"
"""The netns of the node network's router."""

CACHE_ENTRIES = 200_000
"""About how many entries (interfaces, routes, neighbour and FDB entries, listed ports) the
cached namespaces of one cluster's network may hold together, as `held_entries` counts them
(the newest is always kept). A node of a 5,000-node cluster holds about 5,000 (a route per
other node's podCIDR), a pod a handful."""

_LOOPBACK_ADDR = IPv4Interface("127.0.0.1/8")


def node_ns_name(node: str) -> str:
    """The netns name of a node."""
    return node


def client_ns_name(client: ExternalClient) -> str:
    """The netns name of an external client."""
    return f"client/{client.name}"


@frozen
class ClusterNetwork:
    """A cluster's namespaces, built lazily from the (immutable) cluster."""

    cluster: Cluster
    """The cluster this network belongs to."""
    extra_clients: tuple[ExternalClient, ...] = ()
    """Clients the file does not list (an address a user traced from)."""
    _cache: OrderedDict[str, Netns] = field(default_factory=OrderedDict, compare=False, repr=False)
    _held: list[int] = field(default_factory=lambda: [0], compare=False, repr=False)

    @cached_property
    def clients(self) -> tuple[ExternalClient, ...]:
        """Every external client: the file's, then the ones traced from."""
        return self.cluster.clients + self.extra_clients

    @cached_property
    def cni(self) -> CNI:
        """The CNI that wires the pods and routes between nodes."""
        return cni_of(self.cluster)

    def netns(self, name: str) -> Netns:
        """The netns called `name`, built on first use."""
        cache = self._cache
        found = cache.get(name)
        if found is not None:
            cache.move_to_end(name)
            return found
        found = self._build(name)
        cache[name] = found
        self._held[0] += held_entries(found)
        while self._held[0] > CACHE_ENTRIES and len(cache) > 1:
            _, dropped = cache.popitem(last=False)
            self._held[0] -= held_entries(dropped)
        return found

    def cached_entries(self) -> int:
        """About how many entries the cached namespaces hold together (`held_entries`)."""
        return self._held[0]

    @cached_property
    def _node_by_ip(self) -> dict[IPv4Address, Node]:
        return {n.internal_ip: n for n in self.cluster.nodes}

    @cached_property
    def _client_by_ip(self) -> dict[IPv4Address, ExternalClient]:
        return {c.ip: c for c in self.clients}

    @cached_property
    def _endpoint_ips(self) -> tuple[list[int], list[int]]:
        """Every EndpointSlice's endpoint addresses as integers, slice after slice, and where
        each slice's run ends: searched for one address at a time (a C-speed scan of a list of
        ints), where a dict of 150,000 `IPv4Address` keys would hash each in Python."""
        ips: list[int] = []
        ends: list[int] = []
        for slice_ in self.cluster.endpoint_slices:
            ips += map(_endpoint_int, slice_.endpoints)
            ends.append(len(ips))
        return ips, ends

    def listed_at(self, addr: IPv4Address) -> dict[tuple[Proto, int], str]:
        """The ports some EndpointSlice lists at `addr`, and whose slice lists each (the
        first slice, in the cluster's order, that lists the port there)."""
        ips, ends = self._endpoint_ips
        slices = self.cluster.endpoint_slices
        key = int(addr)
        found: dict[tuple[Proto, int], str] = {}
        at = 0
        while True:
            try:
                at = ips.index(key, at)
            except ValueError:
                return found
            index = bisect_right(ends, at)
            slice_ = slices[index]
            name = f"{slice_.namespace}/{slice_.service}"
            for port in slice_.ports:
                found.setdefault((port.protocol, port.port), name)
            at = ends[index]  # the rest of this slice adds nothing

    def _pod_of_ns(self, name: str) -> Pod | None:
        """The pod (not on its node's network) whose netns is called `name`."""
        if not name.startswith("pod/"):
            return None
        namespace, _, pod_name = name[len("pod/") :].partition("/")
        pod = self.cluster.pod(namespace, pod_name)
        if pod is None or pod.host_network or pod_ns_name(pod) != name:
            return None
        return pod

    @cached_property
    def _client_by_ns(self) -> dict[str, ExternalClient]:
        return {client_ns_name(c): c for c in self.clients}

    @cached_property
    def node_network(self) -> IPv4Network:
        """The node network: the smallest /24-or-wider network covering every node's address."""
        if self.cluster.node_network is not None:
            return self.cluster.node_network
        addrs = [n.internal_ip for n in self.cluster.nodes]
        if not addrs:
            return IPv4Network("0.0.0.0/32")
        prefix = 24
        while prefix > 0:
            net = IPv4Network(f"{addrs[0]}/{prefix}", strict=False)
            if all(a in net for a in addrs):
                return net
            prefix -= 1
        return IPv4Network("0.0.0.0/0")

    @cached_property
    def gateway(self) -> tuple[IPv4Address, str]:
        """The node network's router: its address and why kubehop put it there.

        The network's first address unless a node or client has it, then its
        last usable one, then the first free: never a machine's address.
        """
        net = self.node_network
        # As ints: hashing 5,000 nodes' `IPv4Address`es would each call into Python.
        taken = set(map(_NODE_INT, self.cluster.nodes)) | {int(c.ip) for c in self.clients}
        first, last = net.network_address + 1, net.broadcast_address - 1
        if int(first) not in taken:
            why = "the network's first address"
        elif int(last) not in taken:
            owner = next((n.name for n in self.cluster.nodes if n.internal_ip == first), None)
            why = f"its last usable address ({first} is {owner or 'a client'}'s)"
            first = last
        else:
            first = next((a for a in net.hosts() if int(a) not in taken), net.network_address + 1)
            why = "the first address no machine has"
        return first, (
            f"kubehop assumes the node network {net} (from the nodes' InternalIPs) has its"
            f" router at {first}, {why}: a dump names no gateway"
        )

    def on_node_network(self, client: ExternalClient) -> bool:
        """Whether `client` is on the node network (else it is behind the router)."""
        return client.ip in self.node_network

    @cached_property
    def _beyond_router(self) -> tuple[ExternalClient, ...]:
        return tuple(c for c in self.clients if not self.on_node_network(c))

    def bridge_member(self, node: str, addr: IPv4Address) -> tuple[str, str] | None:
        """Who answers ARP for `addr` behind `node`'s pod-facing devices: (netns, interface)."""
        return self.cni.neighbour(node, addr)

    def bridge_port_for_mac(self, node: str, mac: str | None) -> str | None:
        """The bridge port on `node` behind which `mac` lives (what the FDB learned)."""
        return self.cni.port_for_mac(node, mac) if mac else None

    def segment_owner(self, addr: IPv4Address) -> tuple[str, str] | None:
        """Who answers ARP for `addr` on the node network: (netns, interface)."""
        node = self._node_by_ip.get(addr)
        if node is not None:
            return node_ns_name(node.name), "eth0"
        client = self._client_by_ip.get(addr)
        if client is not None and self.on_node_network(client):
            return client_ns_name(client), "eth0"
        if addr == self.gateway[0]:
            return ROUTER_NS, "eth0"
        announced = self._announced.get(addr)
        if announced is not None:
            return node_ns_name(announced[0]), "eth0"
        return None

    def arp_note(self, addr: IPv4Address) -> str | None:
        """Who answers for a LoadBalancer IP on the node network is kubehop's assumption."""
        announced = self._announced.get(addr)
        return announced[1] if announced is not None else None

    @cached_property
    def _announced(self) -> dict[IPv4Address, tuple[str, str]]:
        """LoadBalancer IPs on the node network: the node that answers ARP for each, and why.

        An implementation such as MetalLB's layer-2 mode elects one node per IP
        to answer; kubehop takes the first node that may take the traffic.
        """
        found: dict[IPv4Address, tuple[str, str]] = {}
        net = self.node_network
        for service in self.cluster.services:
            if not service.load_balancer_ips:
                continue
            addrs = [ip for ip in service.load_balancer_ips if ip in net]
            if not addrs:
                continue
            first, which = self._first_load_balanced(service)
            if first is None:
                continue
            for ip in addrs:
                found[ip] = (
                    first.name,
                    f"kubehop assumes {first.name} answers ARP for {service.key}'s"
                    f" LoadBalancer IP {ip} on the node network (a layer-2 load balancer such as"
                    f" MetalLB elects one node to announce it, among {which})",
                )
        return found

    @cached_property
    def _node_order(self) -> dict[str, int]:
        """Each node's name → its first place in the cluster's list."""
        order: dict[str, int] = {}
        for i, node in enumerate(self.cluster.nodes):
            order.setdefault(node.name, i)
        return order

    def _ready_nodes(self, service: Service) -> set[str | None]:
        """The nodes of `service`'s ready endpoints, as its EndpointSlices name them."""
        return {
            e.node
            for s in self.cluster.slices_of(service)
            if (s.namespace, s.service) == (service.namespace, service.name)
            for e in s.endpoints
            if e.ready
        }

    def _first_load_balanced(self, service: Service) -> tuple[Node | None, str]:
        """The first of `_load_balanced`'s nodes (in the cluster's order), without listing
        them all: the one a layer-2 load balancer is assumed to elect."""
        if service.external_traffic_policy is TrafficPolicy.LOCAL:
            order = self._node_order
            places = [order[n] for n in self._ready_nodes(service) if n in order]
            first = self.cluster.nodes[min(places)] if places else None
            return first, _LOCAL_NODES
        return (self.cluster.nodes[0] if self.cluster.nodes else None), _CLUSTER_NODES

    def _load_balanced(self, service: Service) -> tuple[list[Node], str]:
        """The nodes a load balancer sends `service`'s traffic to, and which those are."""
        if service.external_traffic_policy is TrafficPolicy.LOCAL:
            ready = self._ready_nodes(service)
            nodes = [n for n in self.cluster.nodes if n.name in ready]
            return nodes, _LOCAL_NODES
        return list(self.cluster.nodes), _CLUSTER_NODES

    def wire_note(self, pkt: Packet) -> str | None:
        """The CNI's sentence for a packet crossing the node network; None for others."""
        return self.cni.wire_note(pkt)

    def _build(self, name: str) -> Netns:
        if name == ROUTER_NS:
            return self._router_netns()
        pod = self._pod_of_ns(name)
        if pod is not None:
            return self._pod_netns(pod)
        client = self._client_by_ns.get(name)
        if client is not None:
            return self._client_netns(client)
        node = self.cluster.node(name)
        if node is not None:
            return self._node_netns(node)
        raise KeyError(name)

    def _lo(self, ns: str) -> Interface:
        return Interface("lo", ns, IfKind.LOOPBACK, "00:00:00:00:00:00", (_LOOPBACK_ADDR,))

    def _node_routes(self, node: Node) -> NodeRouteTable:
        """The node's main table: default route, the node network, then the CNI's routes."""
        net = self.node_network
        # Real nodes have a default route to the node network's router; without
        # it a node's own process could not even connect() to a ClusterIP
        # before OUTPUT's DNAT, nor answer a client beyond the router.
        router, assumed = self.gateway
        routes = (
            Route(_DEFAULT, "eth0", via=router, assumed=assumed),
            Route(net, "eth0", src=node.internal_ip, proto="kernel", scope="link"),
        )
        return NodeRouteTable(
            (*routes, *self.cni.own_routes(node)), self.cni.shared_routes, node.name
        )

    def _node_netns(self, node: Node) -> Netns:
        ns = node_ns_name(node.name)
        eth0 = Interface(
            "eth0",
            ns,
            IfKind.ETHERNET,
            stable_mac(node.name, "eth0"),
            (IPv4Interface(f"{node.internal_ip}/{self.node_network.prefixlen}"),),
        )
        listeners = tuple(
            Listener(port.protocol, port.container_port, f"{pod.name}/{c.name}")
            for pod in pods_on(self.cluster, node.name)
            if pod.host_network
            for c in pod.containers
            for port in c.ports
        )
        return Netns(
            name=ns,
            kind=NetnsKind.NODE,
            node=node.name,
            interfaces=(
                self._lo(ns),
                eth0,
                *self.cni.node_links(node, ns),
                *_ipvs_dummy(self.cluster, node, ns),
            ),
            routes=self._node_routes(node),
            listeners=listeners,
            listed=_Listed(self, node.internal_ip),
            proxy_arp=tuple(ip for ip, (name, _) in self._announced.items() if name == node.name),
            forwarding=True,
            netfilter=True,
            bridge_nf_call_iptables=True,
            label=node.name,
        )

    def _pod_netns(self, pod: Pod) -> Netns:
        ns = pod_ns_name(pod)
        listeners = tuple(
            Listener(port.protocol, port.container_port, c.name)
            for c in pod.containers
            for port in c.ports
        )
        return Netns(
            name=ns,
            kind=NetnsKind.POD,
            node=pod.node,
            interfaces=(self._lo(ns), self.cni.pod_link(pod, ns)),
            routes=RouteTable(self.cni.pod_routes(pod)),
            listeners=listeners,
            listed=_Listed(self, pod.ip),
            ports_declared=bool(listeners),
            label=pod.name if pod.namespace == "default" else pod.key,
        )

    def _client_netns(self, client: ExternalClient) -> Netns:
        ns = client_ns_name(client)
        net = self.node_network
        if not self.on_node_network(client):
            return self._client_beyond_router(client)
        eth0 = Interface(
            "eth0",
            ns,
            IfKind.ETHERNET,
            stable_mac(client.name, "client-eth0"),
            (IPv4Interface(f"{client.ip}/{net.prefixlen}"),),
        )
        router, assumed = self.gateway
        routes = (
            Route(_DEFAULT, "eth0", via=router, assumed=assumed),
            Route(net, "eth0", src=client.ip, proto="kernel", scope="link"),
        )
        return Netns(
            name=ns,
            kind=NetnsKind.CLIENT,
            node=None,
            interfaces=(self._lo(ns), eth0),
            routes=RouteTable(routes),
            label=client.name,
        )

    def _client_beyond_router(self, client: ExternalClient) -> Netns:
        """A client off the node network: one link to the router stands for the way there."""
        ns = client_ns_name(client)
        router, assumed = self.gateway
        eth0 = Interface(
            "eth0",
            ns,
            IfKind.VETH,
            stable_mac(client.name, "client-eth0"),
            (IPv4Interface(f"{client.ip}/32"),),
            peer=(ROUTER_NS, _router_port(client)),
        )
        default = Route(
            _DEFAULT,
            "eth0",
            via=router,
            onlink=True,
            assumed=f"{client.name} is not on the node network {self.node_network}, so it"
            f" reaches the nodes through their router; {assumed}",
        )
        return Netns(
            name=ns,
            kind=NetnsKind.CLIENT,
            node=None,
            interfaces=(self._lo(ns), eth0),
            routes=RouteTable((default,)),
            label=client.name,
        )

    def _load_balancer_routes(self) -> list[Route]:
        """The cloud load balancer's part, stood in by the router: each LoadBalancer IP
        outside the node network goes to a node, one per flow.

        With externalTrafficPolicy Local only nodes with a ready endpoint take
        traffic, as the load balancer's health check (healthCheckNodePort) finds
        them; with Cluster every node does.
        """
        routes: list[Route] = []
        for service in self.cluster.services:
            if not service.load_balancer_ips:
                continue
            addrs = [ip for ip in service.load_balancer_ips if ip not in self.node_network]
            if not addrs:
                continue
            nodes, which = self._load_balanced(service)
            if not nodes:
                continue
            names = _nodes([n.name for n in nodes])
            for ip in addrs:
                assumed = (
                    f"kubehop stands in for the cloud load balancer in front of {service.key}:"
                    f" {ip} goes to one of {which} ({names}), chosen by the flow hash of the"
                    " source and destination addresses, as the node network's router routes it"
                )
                hops = tuple(n.internal_ip for n in nodes)
                routes.append(
                    Route(
                        IPv4Network(f"{ip}/32"),
                        "eth0",
                        via=hops[0] if len(hops) == 1 else None,
                        nexthops=hops if len(hops) > 1 else (),
                        assumed=assumed,
                    )
                )
        return routes

    def _router_netns(self) -> Netns:
        """The node network's router: `eth0` on it, one link per client beyond it."""
        router, _ = self.gateway
        net = self.node_network
        eth0 = Interface(
            "eth0",
            ROUTER_NS,
            IfKind.ETHERNET,
            stable_mac(ROUTER_NS, "eth0"),
            (IPv4Interface(f"{router}/{net.prefixlen}"),),
        )
        ports = [
            Interface(
                _router_port(c),
                ROUTER_NS,
                IfKind.VETH,
                stable_mac(c.name, "router-port"),
                (IPv4Interface(f"{router}/32"),),
                peer=(client_ns_name(c), "eth0"),
            )
            for c in self._beyond_router
        ]
        routes = [Route(net, "eth0", src=router, proto="kernel", scope="link")]
        routes += [
            Route(IPv4Network(f"{c.ip}/32"), _router_port(c), scope="link")
            for c in self._beyond_router
        ]
        routes += self._load_balancer_routes()
        return Netns(
            name=ROUTER_NS,
            kind=NetnsKind.ROUTER,
            node=None,
            interfaces=(self._lo(ROUTER_NS), eth0, *ports),
            routes=RouteTable(tuple(routes)),
            forwarding=True,
            label="the node network's router",
        )


_DEFAULT = IPv4Network("0.0.0.0/0")
_LOCAL_NODES = "the nodes with a ready endpoint (externalTrafficPolicy Local)"
_CLUSTER_NODES = "all nodes (externalTrafficPolicy Cluster)"

# An endpoint's address as an int, read without `IPv4Address.__int__`'s Python call: the
# index of 150,000 endpoints builds in a third of the time.
_endpoint_int = attrgetter("ip._ip")
_NODE_INT = attrgetter("internal_ip._ip")


class _Listed(Mapping[tuple[Proto, int], str]):
    """`ClusterNetwork.listed_at(addr)`, looked up when a packet first asks: a packet that a
    declared port takes never does, and the first lookup builds the cluster's index of
    EndpointSlice addresses (150,000 at Kubernetes' scale limits)."""

    def __init__(self, network: ClusterNetwork, addr: IPv4Address) -> None:
        self._network = network
        self._addr = addr

    @cached_property
    def _found(self) -> dict[tuple[Proto, int], str]:
        return self._network.listed_at(self._addr)

    def __getitem__(self, key: tuple[Proto, int]) -> str:
        return self._found[key]

    def __iter__(self) -> Iterator[tuple[Proto, int]]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)

    def __repr__(self) -> str:
        return repr(self._found)


def held_entries(ns: Netns) -> int:
    """About how many entries `ns` holds: interfaces, routes, neighbour and FDB entries,
    listed ports (a bounded cache's measure)."""
    held = len(ns.interfaces) + ns.routes.held + len(ns.listeners)
    for iface in ns.interfaces:
        # A table every node shares (a VTEP per node) is held once per cluster, not here.
        held += 0 if isinstance(iface.neighbours, Peers) else len(iface.neighbours)
        if iface.vxlan is not None and not isinstance(iface.vxlan.fdb, Peers):
            held += len(iface.vxlan.fdb)
    return held


def _ipvs_dummy(cluster: Cluster, node: Node, ns: str) -> tuple[Interface, ...]:
    """kube-proxy's `kube-ipvs0` in IPVS mode: the Service addresses, local to the node."""
    if cluster.kube_proxy.mode is not ProxyMode.IPVS:
        return ()
    from sim.proxy.ipvs.sync import bound_interfaces

    addrs = bound_interfaces(cluster, node)
    return (Interface("kube-ipvs0", ns, IfKind.DUMMY, stable_mac(node.name, "kube-ipvs0"), addrs),)


def _nodes(names: list[str]) -> str:
    return ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1]


def _router_port(client: ExternalClient) -> str:
    """The router's end of a client's link: `ext` + 8 hex digits (15 characters at most)."""
    return "ext" + hashlib.sha256(client.name.encode()).hexdigest()[:8]


_NETWORKS: OrderedDict[tuple[int, tuple[ExternalClient, ...]], ClusterNetwork] = OrderedDict()


def network_of(cluster: Cluster, extra_clients: tuple[ExternalClient, ...] = ()) -> ClusterNetwork:
    """The (lazily built) network of `cluster`, shared by every trace of the same cluster object.

    `extra_clients` adds clients the file does not list (an address traced from).
    """
    key = (id(cluster), extra_clients)
    found = _NETWORKS.get(key)
    if found is not None and found.cluster is cluster:
        _NETWORKS.move_to_end(key)
        return found
    network = ClusterNetwork(cluster, extra_clients)
    _NETWORKS[key] = network
    while len(_NETWORKS) > 8:
        _NETWORKS.popitem(last=False)
    return network
