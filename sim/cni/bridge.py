"""The CNI bridge plugin with host-local IPAM: how host-gw and Flannel wire pods to a node.

- `cni0`, a Linux bridge holding the first address of the node's podCIDR (the
  pods' gateway), MAC `0a:58:` + that address as the plugins derive it;
- per pod a veth pair: `eth0` in the pod (MAC `0a:58:` + the pod's IP), the
  host end `veth` + 8 hex digits enslaved to the bridge, hairpin mode as
  configured;
- the pod's default route via the bridge's address, and the podCIDR connected.

The CNIs that use it add how pod packets cross between nodes.
"""

from __future__ import annotations

import hashlib
from dataclasses import field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from model.cluster import Cluster, Node, Pod
from model.frozen import frozen
from model.packet import Packet
from sim.cni.base import pod_ns_name, pods_on, stable_mac
from sim.kernel.devices import IfKind, Interface
from sim.kernel.route import Route

__all__ = ["BridgePlugin", "gateway_of", "ip_mac", "pod_traffic", "veth_name"]


def ip_mac(addr: IPv4Address) -> str:
    """The MAC the CNI plugins give an interface with this address: 0a:58 + the IPv4 bytes."""
    return "0a:58:" + ":".join(f"{b:02x}" for b in addr.packed)


def veth_name(pod: Pod) -> str:
    """The host end's name, `veth` + 8 hex digits, as the CNI bridge plugin names it."""
    return "veth" + hashlib.sha256(pod.key.encode()).hexdigest()[:8]


def pod_traffic(cluster: Cluster, pkt: Packet) -> bool:
    """Whether `pkt` is from or to a pod (by the cluster CIDR, else the nodes' podCIDRs)."""
    cidr = cluster.kube_proxy.cluster_cidr
    if cidr is not None:
        return pkt.src in cidr or pkt.dst in cidr
    return any(
        pkt.src in n.pod_cidr or pkt.dst in n.pod_cidr
        for n in cluster.nodes
        if n.pod_cidr is not None
    )


def gateway_of(cidr: IPv4Network) -> IPv4Address:
    """The bridge's address: the first of the podCIDR (host-local IPAM's default gateway)."""
    return cidr.network_address + 1


@frozen
class BridgePlugin:
    """The bridge plugin's devices and routes for one cluster's pods."""

    cluster: Cluster
    """The cluster wired."""
    mtu: int = 1500
    """The MTU of the bridge and the pods' veths."""
    _fdb_cache: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def bridge(self) -> str:
        """The bridge's name (`cni0` unless the CNIConfig says otherwise)."""
        return self.cluster.cni.bridge

    def node_links(self, node: Node, netns: str) -> tuple[Interface, ...]:
        """`cni0` with the pods' gateway address, and each pod's host-side veth on it."""
        if node.pod_cidr is None:
            return ()
        gw = gateway_of(node.pod_cidr)
        links = [
            Interface(
                self.bridge,
                netns,
                IfKind.BRIDGE,
                ip_mac(gw),
                (IPv4Interface(f"{gw}/{node.pod_cidr.prefixlen}"),),
                mtu=self.mtu,
            )
        ]
        for pod in pods_on(self.cluster, node.name):
            if pod.host_network:
                continue
            links.append(
                Interface(
                    veth_name(pod),
                    netns,
                    IfKind.VETH,
                    stable_mac(pod.key, "host-veth"),
                    peer=(pod_ns_name(pod), "eth0"),
                    master=self.bridge,
                    hairpin=self.cluster.cni.hairpin_mode,
                    mtu=self.mtu,
                )
            )
        return tuple(links)

    def node_route(self, node: Node) -> tuple[Route, ...]:
        """The podCIDR on the bridge (none for a node without one)."""
        if node.pod_cidr is None:
            return ()
        return (
            Route(
                node.pod_cidr,
                self.bridge,
                src=gateway_of(node.pod_cidr),
                proto="kernel",
                scope="link",
            ),
        )

    def _pod_cidr(self, pod: Pod) -> IPv4Network | None:
        node = self.cluster.node(pod.node)
        return node.pod_cidr if node is not None else None

    def _prefix(self, pod: Pod) -> int:
        cidr = self._pod_cidr(pod)
        return cidr.prefixlen if cidr is not None and pod.ip in cidr else 32

    def pod_link(self, pod: Pod, netns: str) -> Interface:
        """The pod's `eth0`, addressed in its node's podCIDR, peered with its host veth."""
        return Interface(
            "eth0",
            netns,
            IfKind.VETH,
            ip_mac(pod.ip),
            (IPv4Interface(f"{pod.ip}/{self._prefix(pod)}"),),
            peer=(pod.node, veth_name(pod)),
            mtu=self.mtu,
        )

    def pod_routes(self, pod: Pod) -> tuple[Route, ...]:
        """The default route via the bridge's address, and the podCIDR as connected."""
        prefix = self._prefix(pod)
        routes: list[Route] = []
        cidr = self._pod_cidr(pod)
        if cidr is not None:
            routes.append(Route(IPv4Network("0.0.0.0/0"), "eth0", via=gateway_of(cidr)))
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
        return tuple(routes)

    def neighbour(self, node: str, addr: IPv4Address) -> tuple[str, str] | None:
        """The bridge answers for the gateway address; a pod on this node for its own."""
        found = self.cluster.node(node)
        if found is not None and found.pod_cidr is not None and addr == gateway_of(found.pod_cidr):
            return node, self.bridge
        # The node's own pods, not an index of the cluster's 150,000: the loader gives
        # every pod not on its node's network an address of its own.
        for pod in pods_on(self.cluster, node):
            if pod.ip == addr and not pod.host_network:
                return pod_ns_name(pod), "eth0"
        return None

    def port_for_mac(self, node: str, mac: str) -> str | None:
        """The host veth of the pod whose `eth0` has `mac`."""
        cached = self._fdb_cache.get(node)
        if cached is None:
            cached = {
                ip_mac(p.ip): veth_name(p)
                for p in pods_on(self.cluster, node)
                if not p.host_network
            }
            self._fdb_cache[node] = cached
        return cached.get(mac)
