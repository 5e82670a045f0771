"""host-gw: a bridge per node for its pods, and plain routes to other nodes' podCIDRs.

What the CNI bridge plugin with host-local IPAM sets up on each node, plus the
routes Flannel's host-gw backend (or static routes) add between nodes:

- `cni0`, a Linux bridge holding the first address of the node's podCIDR (the
  pods' gateway), MAC `0a:58:` + that address as the plugins derive it;
- per pod a veth pair: `eth0` in the pod (MAC `0a:58:` + the pod's IP), the
  host end `veth` + 8 hex digits enslaved to the bridge, hairpin mode as
  configured;
- per other node a route `PODCIDR via NODE_IP dev eth0`, so pod packets cross
  the node network unencapsulated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from model.cluster import Cluster, Node, Pod
from model.packet import Packet
from sim.cni.base import pod_ns_name, stable_mac
from sim.kernel.devices import IfKind, Interface
from sim.kernel.route import Route

__all__ = ["HostGw", "gateway_of", "ip_mac", "veth_name"]


def ip_mac(addr: IPv4Address) -> str:
    """The MAC the CNI plugins give an interface with this address: 0a:58 + the IPv4 bytes."""
    return "0a:58:" + ":".join(f"{b:02x}" for b in addr.packed)


def veth_name(pod: Pod) -> str:
    """The host end's name, `veth` + 8 hex digits, as the CNI bridge plugin names it."""
    return "veth" + hashlib.sha256(pod.key.encode()).hexdigest()[:8]


def gateway_of(cidr: IPv4Network) -> IPv4Address:
    """The bridge's address: the first of the podCIDR (host-local IPAM's default gateway)."""
    return cidr.network_address + 1


@dataclass(frozen=True)
class HostGw:
    """host-gw for one cluster (its FDBs are built per node on first use)."""

    cluster: Cluster
    """The cluster wired."""
    name: str = "host-gw"
    """As `CNIConfig.plugin` names it."""
    _fdb_cache: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def bridge(self) -> str:
        """The bridge's name (`cni0` unless the CNIConfig says otherwise)."""
        return self.cluster.cni.bridge

    @cached_property
    def _pod_by_ip(self) -> dict[IPv4Address, Pod]:
        return {p.ip: p for p in self.cluster.pods if not p.host_network}

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
            )
        ]
        for pod in self.cluster.pods_on(node.name):
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
                )
            )
        return tuple(links)

    def node_routes(self, node: Node) -> tuple[Route, ...]:
        """The podCIDR on the bridge, then one route per other node's podCIDR via its IP."""
        routes: list[Route] = []
        if node.pod_cidr is not None:
            routes.append(
                Route(
                    node.pod_cidr,
                    self.bridge,
                    src=gateway_of(node.pod_cidr),
                    proto="kernel",
                    scope="link",
                )
            )
        routes += [
            Route(other.pod_cidr, "eth0", via=other.internal_ip, proto="host-gw")
            for other in self.cluster.nodes
            if other.name != node.name and other.pod_cidr is not None
        ]
        return tuple(routes)

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
        pod = self._pod_by_ip.get(addr)
        if pod is not None and pod.node == node:
            return pod_ns_name(pod), "eth0"
        return None

    def port_for_mac(self, node: str, mac: str) -> str | None:
        """The host veth of the pod whose `eth0` has `mac`."""
        cached = self._fdb_cache.get(node)
        if cached is None:
            cached = {
                ip_mac(p.ip): veth_name(p) for p in self.cluster.pods_on(node) if not p.host_network
            }
            self._fdb_cache[node] = cached
        return cached.get(mac)

    def wire_note(self, pkt: Packet) -> str:
        """host-gw sends the pod packet as it is."""
        return (
            "host-gw: the pod packet crosses the node network as it is, no encapsulation; "
            "the next hop is the other node's InternalIP"
        )
