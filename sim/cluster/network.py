"""The machines of a cluster as Linux sees them: netns, interfaces, addresses, routes.

A node is a netns with `lo`, `eth0` on the node network and the CNI bridge
(`cni0`) whose ports are the host ends of its pods' veth pairs. A pod is a netns
with `lo` and `eth0` (the other end of its veth). An external client is a netns
with `eth0` on the node network. Routes between nodes come from the CNI
(`sim.cni.host_gw`).

Netns are built on demand and cached, so a cluster of 150,000 pods costs only
the few namespaces a trace passes through.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from model.cluster import Cluster, ExternalClient, Node, Pod
from model.packet import Proto
from sim.cni.host_gw import node_routes
from sim.kernel.route import Route, RouteTable


class IfKind(StrEnum):
    """What kind of link an interface is (`ip -d link` would say)."""

    LOOPBACK = "loopback"
    VETH = "veth"
    BRIDGE = "bridge"
    ETHERNET = "ethernet"


@dataclass(frozen=True)
class Interface:
    """A network interface inside one netns."""

    name: str
    """Its name (at most 15 characters, as Linux allows)."""
    netns: str
    """The netns it lives in."""
    kind: IfKind
    """Loopback, veth, bridge or ethernet."""
    mac: str
    """Its MAC address."""
    addrs: tuple[IPv4Interface, ...] = ()
    """Its IPv4 addresses with prefix."""
    peer: tuple[str, str] | None = None
    """For a veth: (netns, interface) of the other end."""
    master: str | None = None
    """For a bridge port: the bridge it is enslaved to."""
    hairpin: bool = False
    """For a bridge port: a frame may leave by the port it came in."""

    @property
    def primary(self) -> IPv4Address | None:
        """The first address, which MASQUERADE and a socket's source take."""
        return self.addrs[0].ip if self.addrs else None


@dataclass(frozen=True)
class Listener:
    """A listening socket, as `ss -ltn` shows it."""

    proto: Proto
    """tcp or udp."""
    port: int
    """The local port (bound to every address of the netns)."""
    owner: str
    """The container (or process) that owns it."""


class NetnsKind(StrEnum):
    """Whose namespace this is."""

    NODE = "node"
    POD = "pod"
    CLIENT = "client"


@dataclass(frozen=True)
class Netns:
    """One network namespace: interfaces, routes, sockets, and whether it forwards."""

    name: str
    """`node-a`, `pod/default/pod1`, `client/client`."""
    kind: NetnsKind
    """Node, pod or client."""
    node: str | None
    """The node this netns is on (None for an external client)."""
    interfaces: tuple[Interface, ...]
    """Its interfaces."""
    routes: RouteTable
    """Its main routing table (the local table is derived from the addresses)."""
    listeners: tuple[Listener, ...] = ()
    """Listening sockets."""
    forwarding: bool = False
    """net.ipv4.ip_forward."""
    netfilter: bool = False
    """Has iptables rules (kube-proxy's) to walk; pods and clients have none."""
    bridge_nf_call_iptables: bool = False
    """net.bridge.bridge-nf-call-iptables with br_netfilter loaded."""
    label: str = ""
    """How a person names it: `node-a`, `pod1`, `client`."""

    def iface(self, name: str) -> Interface:
        """The interface called `name` (it must exist)."""
        return self._by_name[name]

    def has_iface(self, name: str) -> bool:
        """Whether an interface called `name` exists."""
        return name in self._by_name

    @cached_property
    def _by_name(self) -> dict[str, Interface]:
        return {i.name: i for i in self.interfaces}

    @cached_property
    def local_addrs(self) -> frozenset[IPv4Address]:
        """Every address of this netns, plus 127.0.0.0/8 on lo (what addrtype LOCAL means)."""
        return frozenset(a.ip for i in self.interfaces for a in i.addrs)

    def is_local(self, addr: IPv4Address) -> bool:
        """The local routing table: own addresses and all of 127.0.0.0/8."""
        return addr in self.local_addrs or addr in _LOOPBACK_NET

    def listener(self, proto: Proto, port: int) -> Listener | None:
        """The socket listening on `proto`/`port`, if any."""
        return next((s for s in self.listeners if s.proto is proto and s.port == port), None)


_LOOPBACK_NET = IPv4Network("127.0.0.0/8")
_LOOPBACK_ADDR = IPv4Interface("127.0.0.1/8")


def stable_mac(*parts: str) -> str:
    """A locally administered unicast MAC derived from names, stable across runs."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    octets = [(digest[0] & 0xFC) | 0x02, *digest[1:6]]
    return ":".join(f"{o:02x}" for o in octets)


def ip_mac(addr: IPv4Address) -> str:
    """The MAC the CNI plugins give an interface with this address: 0a:58 + the IPv4 bytes."""
    return "0a:58:" + ":".join(f"{b:02x}" for b in addr.packed)


def veth_name(pod: Pod) -> str:
    """The host end's name, `veth` + 8 hex digits, as the CNI bridge plugin names it."""
    return "veth" + hashlib.sha256(pod.key.encode()).hexdigest()[:8]


def gateway_of(cidr: IPv4Network) -> IPv4Address:
    """The bridge's address: the first of the podCIDR (host-local IPAM's default gateway)."""
    return cidr.network_address + 1


def node_ns_name(node: str) -> str:
    """The netns name of a node."""
    return node


def pod_ns_name(pod: Pod) -> str:
    """The netns name of a pod (hostNetwork pods live in their node's)."""
    return node_ns_name(pod.node) if pod.host_network else f"pod/{pod.key}"


def client_ns_name(client: ExternalClient) -> str:
    """The netns name of an external client."""
    return f"client/{client.name}"


@dataclass(frozen=True)
class Network:
    """A cluster's namespaces, built lazily from the (immutable) cluster."""

    cluster: Cluster
    """The cluster this network belongs to."""
    _cache: dict[str, Netns] = field(default_factory=dict, compare=False, repr=False)
    _fdb_cache: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, repr=False)

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

    @cached_property
    def _pod_by_ip(self) -> dict[IPv4Address, Pod]:
        return {p.ip: p for p in self.cluster.pods if not p.host_network}

    def bridge_member(self, node: str, addr: IPv4Address) -> tuple[str, str] | None:
        """Who answers ARP for `addr` on `node`'s bridge: (netns, interface)."""
        found = self.cluster.node(node)
        if found is not None and found.pod_cidr is not None and addr == gateway_of(found.pod_cidr):
            return node_ns_name(node), self.cluster.cni.bridge
        pod = self._pod_by_ip.get(addr)
        if pod is not None and pod.node == node:
            return pod_ns_name(pod), "eth0"
        return None

    def bridge_port_for_mac(self, node: str, mac: str | None) -> str | None:
        """The bridge port on `node` behind which `mac` lives (what the FDB learned)."""
        return self._fdb(node).get(mac or "")

    def _fdb(self, node: str) -> dict[str, str]:
        cached = self._fdb_cache.get(node)
        if cached is None:
            cached = {
                ip_mac(p.ip): veth_name(p) for p in self.cluster.pods_on(node) if not p.host_network
            }
            self._fdb_cache[node] = cached
        return cached

    def segment_owner(self, addr: IPv4Address) -> tuple[str, str] | None:
        """Who answers ARP for `addr` on the node network: (netns, interface)."""
        node = self._node_by_ip.get(addr)
        if node is not None:
            return node_ns_name(node.name), "eth0"
        client = self._client_by_ip.get(addr)
        if client is not None:
            return client_ns_name(client), "eth0"
        return None

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

    def _node_netns(self, node: Node) -> Netns:
        ns = node_ns_name(node.name)
        bridge_name = self.cluster.cni.bridge
        net = self.node_network
        eth0 = Interface(
            "eth0",
            ns,
            IfKind.ETHERNET,
            stable_mac(node.name, "eth0"),
            (IPv4Interface(f"{node.internal_ip}/{net.prefixlen}"),),
        )
        interfaces = [self._lo(ns), eth0]
        pods = [p for p in self.cluster.pods_on(node.name) if not p.host_network]
        if node.pod_cidr is not None:
            gw = gateway_of(node.pod_cidr)
            interfaces.append(
                Interface(
                    bridge_name,
                    ns,
                    IfKind.BRIDGE,
                    ip_mac(gw),
                    (IPv4Interface(f"{gw}/{node.pod_cidr.prefixlen}"),),
                )
            )
            for pod in pods:
                interfaces.append(
                    Interface(
                        veth_name(pod),
                        ns,
                        IfKind.VETH,
                        stable_mac(pod.key, "host-veth"),
                        peer=(pod_ns_name(pod), "eth0"),
                        master=bridge_name,
                        hairpin=self.cluster.cni.hairpin_mode,
                    )
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
            interfaces=tuple(interfaces),
            routes=node_routes(self.cluster, node, net),
            listeners=listeners,
            forwarding=True,
            netfilter=True,
            bridge_nf_call_iptables=True,
            label=node.name,
        )

    def _pod_netns(self, pod: Pod) -> Netns:
        ns = pod_ns_name(pod)
        node = self.cluster.node(pod.node)
        cidr = node.pod_cidr if node is not None else None
        prefix = cidr.prefixlen if cidr is not None and pod.ip in cidr else 32
        host_end = (node_ns_name(pod.node), veth_name(pod))
        eth0 = Interface(
            "eth0",
            ns,
            IfKind.VETH,
            ip_mac(pod.ip),
            (IPv4Interface(f"{pod.ip}/{prefix}"),),
            peer=host_end,
        )
        routes: list[Route] = []
        if prefix < 32:
            routes.append(
                Route(
                    IPv4Network(f"{pod.ip}/{prefix}", strict=False),
                    "eth0",
                    src=pod.ip,
                    proto="kernel",
                    scope="link",
                )
            )
        if cidr is not None:
            routes.insert(0, Route(IPv4Network("0.0.0.0/0"), "eth0", via=gateway_of(cidr)))
        listeners = tuple(
            Listener(port.protocol, port.container_port, c.name)
            for c in pod.containers
            for port in c.ports
        )
        return Netns(
            name=ns,
            kind=NetnsKind.POD,
            node=pod.node,
            interfaces=(self._lo(ns), eth0),
            routes=RouteTable(tuple(routes)),
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


_NETWORKS: OrderedDict[int, Network] = OrderedDict()


def network_of(cluster: Cluster) -> Network:
    """The (lazily built) network of `cluster`, shared by every trace of the same cluster object."""
    found = _NETWORKS.get(id(cluster))
    if found is not None and found.cluster is cluster:
        _NETWORKS.move_to_end(id(cluster))
        return found
    network = Network(cluster)
    _NETWORKS[id(cluster)] = network
    while len(_NETWORKS) > 8:
        _NETWORKS.popitem(last=False)
    return network
