"""The machines of a cluster as Linux sees them: a netns per node, pod and external client.

A node is a netns with `lo`, `eth0` on the node network, a default route to
the node network's router, and whatever its CNI adds (`sim.cni`: for host-gw
the bridge `cni0` with its pods' veths, and routes to other nodes' pods). A pod
is a netns with `lo` and the `eth0` its CNI gives it. An external client is a
netns with `eth0` on the node network. This is the kernel's `Network` for one
cluster: the walker asks it for namespaces and neighbours.

Netns are built on demand and cached, so a cluster of 150,000 pods costs only
the few namespaces a trace passes through.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from model.cluster import Cluster, ExternalClient, Node, Pod
from model.packet import Packet
from sim.cni import CNI, cni_of
from sim.cni.base import pod_ns_name, stable_mac
from sim.kernel.devices import IfKind, Interface, Listener, Netns, NetnsKind
from sim.kernel.route import Route, RouteTable

__all__ = ["ClusterNetwork", "client_ns_name", "network_of", "node_ns_name", "pod_ns_name"]

_LOOPBACK_ADDR = IPv4Interface("127.0.0.1/8")


def node_ns_name(node: str) -> str:
    """The netns name of a node."""
    return node


def client_ns_name(client: ExternalClient) -> str:
    """The netns name of an external client."""
    return f"client/{client.name}"


@dataclass(frozen=True)
class ClusterNetwork:
    """A cluster's namespaces, built lazily from the (immutable) cluster."""

    cluster: Cluster
    """The cluster this network belongs to."""
    _cache: dict[str, Netns] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def cni(self) -> CNI:
        """The CNI that wires the pods and routes between nodes."""
        return cni_of(self.cluster)

    def netns(self, name: str) -> Netns:
        """The netns called `name`, built on first use."""
        found = self._cache.get(name)
        if found is None:
            found = self._build(name)
            self._cache[name] = found
        return found

    @cached_property
    def _node_by_ip(self) -> dict[IPv4Address, Node]:
        return {n.internal_ip: n for n in self.cluster.nodes}

    @cached_property
    def _client_by_ip(self) -> dict[IPv4Address, ExternalClient]:
        return {c.ip: c for c in self.cluster.clients}

    @cached_property
    def _pod_by_ns(self) -> dict[str, Pod]:
        return {pod_ns_name(p): p for p in self.cluster.pods if not p.host_network}

    @cached_property
    def _client_by_ns(self) -> dict[str, ExternalClient]:
        return {client_ns_name(c): c for c in self.cluster.clients}

    @cached_property
    def node_network(self) -> IPv4Network:
        """The node network: the cluster's, or the smallest /24-or-wider covering every node."""
        if self.cluster.node_network is not None:
            return self.cluster.node_network
        addrs = [n.internal_ip for n in self.cluster.nodes] + [c.ip for c in self.cluster.clients]
        prefix = 24
        while prefix > 0:
            net = IPv4Network(f"{addrs[0]}/{prefix}", strict=False)
            if all(a in net for a in addrs):
                return net
            prefix -= 1
        return IPv4Network("0.0.0.0/0")

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
        if client is not None:
            return client_ns_name(client), "eth0"
        return None

    def wire_note(self, pkt: Packet) -> str | None:
        """The CNI's sentence for a pod packet crossing the node network; None for others."""
        cidr = self.cluster.kube_proxy.cluster_cidr
        if cidr is not None:
            pod_traffic = pkt.src in cidr or pkt.dst in cidr
        else:
            cidrs = [n.pod_cidr for n in self.cluster.nodes if n.pod_cidr is not None]
            pod_traffic = any(pkt.src in c or pkt.dst in c for c in cidrs)
        return self.cni.wire_note(pkt) if pod_traffic else None

    def _build(self, name: str) -> Netns:
        pod = self._pod_by_ns.get(name)
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

    def _node_routes(self, node: Node) -> RouteTable:
        """The node's main table: default route, the node network, then the CNI's routes."""
        net = self.node_network
        routes = [Route(net, "eth0", src=node.internal_ip, proto="kernel", scope="link")]
        # Real nodes have a default route to the node network's router; kubehop
        # does not simulate the router, but the route matters: without it a node's
        # own process could not even connect() to a ClusterIP before OUTPUT's DNAT.
        router = net.network_address + 1
        taken = {n.internal_ip for n in self.cluster.nodes} | {c.ip for c in self.cluster.clients}
        if router not in taken:
            routes.insert(0, Route(IPv4Network("0.0.0.0/0"), "eth0", via=router))
        return RouteTable((*routes, *self.cni.node_routes(node)))

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
            for pod in self.cluster.pods_on(node.name)
            if pod.host_network
            for c in pod.containers
            for port in c.ports
        )
        return Netns(
            name=ns,
            kind=NetnsKind.NODE,
            node=node.name,
            interfaces=(self._lo(ns), eth0, *self.cni.node_links(node, ns)),
            routes=self._node_routes(node),
            listeners=listeners,
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
            label=pod.name if pod.namespace == "default" else pod.key,
        )

    def _client_netns(self, client: ExternalClient) -> Netns:
        ns = client_ns_name(client)
        net = self.node_network
        eth0 = Interface(
            "eth0",
            ns,
            IfKind.ETHERNET,
            stable_mac(client.name, "client-eth0"),
            (IPv4Interface(f"{client.ip}/{net.prefixlen}"),),
        )
        return Netns(
            name=ns,
            kind=NetnsKind.CLIENT,
            node=None,
            interfaces=(self._lo(ns), eth0),
            routes=RouteTable((Route(net, "eth0", src=client.ip, proto="kernel", scope="link"),)),
            label=client.name,
        )


_NETWORKS: OrderedDict[int, ClusterNetwork] = OrderedDict()


def network_of(cluster: Cluster) -> ClusterNetwork:
    """The (lazily built) network of `cluster`, shared by every trace of the same cluster object."""
    found = _NETWORKS.get(id(cluster))
    if found is not None and found.cluster is cluster:
        _NETWORKS.move_to_end(id(cluster))
        return found
    network = ClusterNetwork(cluster)
    _NETWORKS[id(cluster)] = network
    while len(_NETWORKS) > 8:
        _NETWORKS.popitem(last=False)
    return network
