"""host-gw: a bridge per node for its pods, and plain routes to other nodes' podCIDRs.

The bridge plugin (`sim.cni.bridge`) wires the pods; per other node a route
`PODCIDR via NODE_IP dev eth0` (Flannel's host-gw backend, or static routes)
carries pod packets across the node network unencapsulated.
"""

from __future__ import annotations

from functools import cached_property
from ipaddress import IPv4Address

from model.cluster import Cluster, Node, Pod
from model.frozen import frozen
from model.packet import Packet
from sim.cni.bridge import BridgePlugin, pod_traffic
from sim.cni.ipam import host_local_next
from sim.kernel.devices import Interface
from sim.kernel.route import Route, SharedRoutes
from sim.kernel.rules import ForeignRules

__all__ = ["HostGw"]


@frozen
class HostGw:
    """host-gw for one cluster."""

    cluster: Cluster
    """The cluster wired."""
    name: str = "host-gw"
    """As `CNIConfig.plugin` names it."""

    @cached_property
    def pods(self) -> BridgePlugin:
        """How the pods hang off each node's bridge."""
        return BridgePlugin(self.cluster, self.cluster.cni.mtu)

    def node_links(self, node: Node, netns: str) -> tuple[Interface, ...]:
        """`cni0` and the pods' veths."""
        return self.pods.node_links(node, netns)

    def node_routes(self, node: Node) -> tuple[Route, ...]:
        """The podCIDR on the bridge, then one route per other node's podCIDR via its IP."""
        return self.own_routes(node) + self.shared_routes.of(node.name)

    def own_routes(self, node: Node) -> tuple[Route, ...]:
        """The podCIDR on the bridge."""
        return self.pods.node_route(node)

    def next_pod_ip(self, node: Node) -> IPv4Address:
        """host-local's next free address of the node's podCIDR."""
        return host_local_next(self.cluster, node)

    def prepare(self) -> None:
        """Every node's routes to the others."""
        self.shared_routes.lengths  # noqa: B018 (built on first read)

    @cached_property
    def shared_routes(self) -> SharedRoutes:
        """`PODCIDR via NODE_IP dev eth0` per node with a podCIDR, in the nodes' order."""
        nodes = [
            (n.name, n.pod_cidr, n.internal_ip)
            for n in self.cluster.nodes
            if n.pod_cidr is not None
        ]

        def make(i: int) -> Route:
            _, cidr, via = nodes[i]
            return Route(cidr, "eth0", via=via, by="the CNI's host-gw route")

        return SharedRoutes(tuple(n for n, _, _ in nodes), tuple(c for _, c, _ in nodes), make)

    def pod_link(self, pod: Pod, netns: str) -> Interface:
        """The pod's `eth0` on the bridge."""
        return self.pods.pod_link(pod, netns)

    def pod_routes(self, pod: Pod) -> tuple[Route, ...]:
        """The pod's default route via the bridge."""
        return self.pods.pod_routes(pod)

    def neighbour(self, node: str, addr: IPv4Address) -> tuple[str, str] | None:
        """Who answers ARP on the node's bridge."""
        return self.pods.neighbour(node, addr)

    def port_for_mac(self, node: str, mac: str) -> str | None:
        """The bridge's FDB."""
        return self.pods.port_for_mac(node, mac)

    def iptables_rules(self, node: Node) -> ForeignRules | None:
        """The bridge plugin and static routes write no rules."""
        return None

    def wire_note(self, pkt: Packet) -> str | None:
        """host-gw sends a pod packet as it is."""
        if not pod_traffic(self.cluster, pkt):
            return None
        return (
            "host-gw: the pod packet crosses the node network as it is, no encapsulation; "
            "the next hop is the other node's InternalIP"
        )
