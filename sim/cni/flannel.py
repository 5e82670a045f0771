"""Flannel: the bridge plugin for pods, VXLAN (or host-gw routes) between nodes, its own rules.

What flanneld and its CNI plugin (which delegates to the bridge plugin) leave
on a node, from flannel-io/flannel's `pkg/backend/vxlan` and
`pkg/trafficmngr/iptables`:

- VXLAN backend: `flannel.1`, a VXLAN device (VNI 1, UDP 8472, learning off,
  local address the node's), its MAC the node's VtepMAC, the address
  `PODCIDR.0/32` (a source for the host's own traffic to pods), MTU 50 bytes
  under the node's link; per other node a route
  `PODCIDR via PODCIDR.0 dev flannel.1 onlink`, a permanent neighbour entry
  `PODCIDR.0 lladdr VTEPMAC` and an FDB entry `VTEPMAC dst NODE_IP`;
- host-gw backend: a route `PODCIDR via NODE_IP dev eth0` per other node;
- both: the pods on `cni0` (with the smaller MTU under VXLAN), and the chains
  FLANNEL-POSTRTG (masquerade traffic leaving the pod network, never
  kube-proxy's marked packets) and FLANNEL-FWD (accept the pod network in
  FORWARD), jumped to after kube-proxy's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from model.cluster import Cluster, Node, Pod
from model.packet import Packet
from sim.cni.base import stable_mac
from sim.cni.bridge import BridgePlugin, pod_traffic
from sim.cni.ipam import host_local_next
from sim.cni.peers import Peers, peer_entries
from sim.kernel.devices import IfKind, Interface, Vxlan
from sim.kernel.route import Route, SharedRoutes
from sim.kernel.rules import ForeignRules
from sim.kernel.tunnel import OVERHEAD

__all__ = ["VNI", "VXLAN_PORT", "Flannel"]

VNI = 1
"""Flannel's default VXLAN network identifier (the device is `flannel.<VNI>`)."""

VXLAN_PORT = 8472
"""The UDP port Linux gives a VXLAN device created without one, which Flannel does."""

_DEVICE = f"flannel.{VNI}"
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_KUBE_PROXY_MARK = "0x4000/0x4000"


@dataclass(frozen=True)
class Flannel:
    """Flannel with one backend for one cluster."""

    cluster: Cluster
    """The cluster wired."""
    vxlan: bool = True
    """The VXLAN backend (False: host-gw)."""

    @property
    def name(self) -> str:
        """As `CNIConfig.plugin` names it."""
        return "flannel-vxlan" if self.vxlan else "flannel-host-gw"

    @cached_property
    def pods(self) -> BridgePlugin:
        """The pods on `cni0`; under VXLAN their MTU leaves room for the outer header."""
        mtu = self.cluster.cni.mtu - OVERHEAD if self.vxlan else self.cluster.cni.mtu
        return BridgePlugin(self.cluster, mtu)

    @cached_property
    def network(self) -> IPv4Network | None:
        """Flannel's network (its `Network` setting): the cluster CIDR."""
        return self.cluster.kube_proxy.cluster_cidr

    def vtep_mac(self, node: Node) -> str:
        """The node's `flannel.1` MAC: the VtepMAC its flannel.alpha.coreos.com/backend-data
        annotation holds, else one derived from its name."""
        data = node.annotation("flannel.alpha.coreos.com/backend-data")
        try:
            written = json.loads(data).get("VtepMAC") if data else None
        except (ValueError, AttributeError):
            written = None
        if isinstance(written, str) and _MAC.fullmatch(written):
            return written.lower()
        return stable_mac(node.name, _DEVICE)

    def public_ip(self, node: Node) -> IPv4Address:
        """Where other nodes tunnel to: its flannel.alpha.coreos.com/public-ip, else its
        InternalIP."""
        written = node.annotation("flannel.alpha.coreos.com/public-ip")
        try:
            return IPv4Address(written) if written else node.internal_ip
        except ValueError:
            return node.internal_ip

    def node_links(self, node: Node, netns: str) -> tuple[Interface, ...]:
        """`cni0` with the pods' veths, and under VXLAN `flannel.1`."""
        links = self.pods.node_links(node, netns)
        if not self.vxlan or node.pod_cidr is None:
            return links
        device = Interface(
            _DEVICE,
            netns,
            IfKind.VXLAN,
            self.vtep_mac(node),
            (IPv4Interface(f"{node.pod_cidr.network_address}/32"),),
            mtu=self.cluster.cni.mtu - OVERHEAD,
            neighbours=Peers(self._neighbours, node.name),
            vxlan=Vxlan(
                vni=VNI,
                port=VXLAN_PORT,
                local=self.public_ip(node),
                fdb=Peers(self._fdb, node.name),
            ),
        )
        return (*links, device)

    def next_pod_ip(self, node: Node) -> IPv4Address:
        """host-local's next free address of the node's podCIDR."""
        return host_local_next(self.cluster, node)

    def prepare(self) -> None:
        """Every node's routes to the others and, under VXLAN, their VTEPs."""
        self.shared_routes.lengths  # noqa: B018 (each is built on first read)
        if self.vxlan:
            self._neighbours  # noqa: B018
            self._fdb  # noqa: B018

    @cached_property
    def _leased(self) -> list[tuple[Node, IPv4Network]]:
        return [(n, n.pod_cidr) for n in self.cluster.nodes if n.pod_cidr is not None]

    @cached_property
    def _neighbours(self) -> dict[IPv4Address, tuple[tuple[str, str], ...]]:
        # flanneld writes each other node's VTEP: its lease's .0 → its VtepMAC.
        return peer_entries(
            (n.name, cidr.network_address, self.vtep_mac(n)) for n, cidr in self._leased
        )

    @cached_property
    def _fdb(self) -> dict[str, tuple[tuple[str, IPv4Address], ...]]:
        return peer_entries((n.name, self.vtep_mac(n), self.public_ip(n)) for n, _ in self._leased)

    def node_routes(self, node: Node) -> tuple[Route, ...]:
        """The podCIDR on the bridge, then one route per other node's podCIDR."""
        return self.own_routes(node) + self.shared_routes.of(node.name)

    def own_routes(self, node: Node) -> tuple[Route, ...]:
        """The podCIDR on the bridge."""
        return self.pods.node_route(node)

    @cached_property
    def shared_routes(self) -> SharedRoutes:
        """Per node with a podCIDR, in the nodes' order: `PODCIDR via PODCIDR.0 dev flannel.1
        onlink` (VXLAN), or `PODCIDR via NODE_IP dev eth0` (host-gw)."""
        nodes = [
            (n.name, n.pod_cidr, n.internal_ip)
            for n in self.cluster.nodes
            if n.pod_cidr is not None
        ]

        def make(i: int) -> Route:
            _, cidr, node_ip = nodes[i]
            if self.vxlan:
                via = cidr.network_address
                return Route(cidr, _DEVICE, via=via, onlink=True, by="Flannel's VXLAN route")
            return Route(cidr, "eth0", via=node_ip, by="Flannel's host-gw route")

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
        """FLANNEL-POSTRTG and FLANNEL-FWD, as flanneld appends them."""
        network = self.network
        if network is None or node.pod_cidr is None:
            return None
        net, lease = str(network), str(node.pod_cidr)
        masq = '-m comment --comment "flanneld masq"'
        fwd = '-m comment --comment "flanneld forward"'
        return ForeignRules(
            chains={"nat": ("FLANNEL-POSTRTG",), "filter": ("FLANNEL-FWD",)},
            rules={
                "nat": (
                    f"-A POSTROUTING {masq} -j FLANNEL-POSTRTG",
                    f"-A FLANNEL-POSTRTG -m mark --mark {_KUBE_PROXY_MARK} {masq} -j RETURN",
                    f"-A FLANNEL-POSTRTG -s {lease} -d {net} {masq} -j RETURN",
                    f"-A FLANNEL-POSTRTG -s {net} -d {lease} {masq} -j RETURN",
                    f"-A FLANNEL-POSTRTG ! -s {net} -d {lease} {masq} -j RETURN",
                    f"-A FLANNEL-POSTRTG -s {net} ! -d 224.0.0.0/4 {masq} -j MASQUERADE"
                    " --random-fully",
                    f"-A FLANNEL-POSTRTG ! -s {net} -d {net} {masq} -j MASQUERADE --random-fully",
                ),
                "filter": (
                    f"-A FORWARD {fwd} -j FLANNEL-FWD",
                    f"-A FLANNEL-FWD -s {net} {fwd} -j ACCEPT",
                    f"-A FLANNEL-FWD -d {net} {fwd} -j ACCEPT",
                ),
            },
        )

    def wire_note(self, pkt: Packet) -> str | None:
        """What crosses the node network: the pod's frame in VXLAN, or the pod packet as it is."""
        if self.vxlan and pkt.inner is not None and pkt.vni == VNI:
            return (
                f"Flannel VXLAN: the pod's frame ({pkt.inner.src} → {pkt.inner.dst}) crosses the"
                f" node network inside a UDP packet between the nodes (VNI {pkt.vni}, port"
                f" {pkt.dport}); the node network sees only the outer addresses"
            )
        if not self.vxlan and pod_traffic(self.cluster, pkt):
            return (
                "Flannel host-gw: the pod packet crosses the node network as it is, no"
                " encapsulation; the next hop is the other node's InternalIP"
            )
        return None
