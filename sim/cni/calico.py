"""Calico: proxy-ARP veths and /32 routes for pods, /26 IPAM blocks routed between nodes.

What the Calico CNI plugin, Felix and BIRD leave on a node, from
projectcalico/calico (cni-plugin `pkg/dataplane/linux`, libcalico-go's
`VethNameForWorkload`, felix `dataplane/linux/vxlan_mgr.go`, `felix/rules`):

- no bridge: each pod's host side is a veth `cali` + the first 11 hex digits
  of SHA-1("NAMESPACE.POD"), MAC `ee:ee:ee:ee:ee:ee`, with proxy ARP on, no
  address; the route `POD_IP dev cali1a2b3c4d5e6 scope link` sends the pod its
  traffic;
- the pod's `eth0` holds the pod IP/32; its routes are `169.254.1.1 dev eth0
  scope link` and `default via 169.254.1.1 dev eth0`: no one holds 169.254.1.1,
  the host side answers the pod's ARP for it by proxy with its own MAC;
- Calico IPAM hands out addresses from /26 blocks, each affine to one node,
  not from the node's podCIDR. A dump does not list the blocks, so kubehop
  infers them from the pods' IPs: a pod's block is its IP's /26, and the
  block belongs to the node with most of its pods there (the others borrowed
  their addresses from it, and reach them by a /32 route). A node whose pods
  give it no block gets, under IP-in-IP or VXLAN (which need a tunnel address
  from a block), the first /26 of its podCIDR, and says so. A node's own
  blocks are blackholed (`blackhole BLOCK proto bird`, `proto 80` under VXLAN,
  where Felix writes them), so an unused address goes nowhere;
- between nodes, by backend:
  - `calico-bgp`: BIRD's routes `BLOCK via NODE_IP dev eth0 proto bird`, no
    encapsulation;
  - `calico-ipip`: `BLOCK via NODE_IP dev tunl0 proto bird onlink`, `tunl0`
    holding the node's tunnel address (the lowest free address of its first
    block, as calico-node takes it before any pod), MTU 20 under the link;
  - `calico-vxlan`: `vxlan.calico` (VNI 4096, UDP 4789, learning off, local
    address the node's, its VTEP address as IP-in-IP's tunnel address, MTU 50
    under the link), and per other node Felix's `BLOCK via VTEP dev
    vxlan.calico onlink`, the permanent neighbour `VTEP lladdr VTEP_MAC` and
    the FDB entry `VTEP_MAC dst NODE_IP`;
- Felix's iptables chains and ipsets (`sim.cni.felix`): default allow, as
  no NetworkPolicy is modelled yet (policy is a later issue).

The IP pool (every pool has natOutgoing, the default) is the cluster CIDR;
without one, the blocks themselves stand for it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from operator import attrgetter

from model.cluster import Cluster, Node, Pod
from model.packet import Packet, Proto
from sim.cni.base import pod_ns_name, pods_on, stable_mac
from sim.cni.felix import FelixNode, Workload, felix_rules
from sim.cni.ipam import IpamError, first_free
from sim.cni.peers import Peers, peer_entries
from sim.kernel.devices import Blackhole, IfKind, Interface, Vxlan
from sim.kernel.route import Route, SharedRoutes
from sim.kernel.rules import ForeignRules
from sim.kernel.tunnel import IPIP_OVERHEAD, OVERHEAD

__all__ = [
    "BLOCK_PREFIX",
    "GATEWAY",
    "HOST_SIDE_MAC",
    "IPIP_DEVICE",
    "VXLAN_DEVICE",
    "VXLAN_PORT",
    "VXLAN_VNI",
    "Calico",
    "CalicoMode",
    "veth_name_for_workload",
]

BLOCK_PREFIX = 26
"""Calico IPAM's default block size (IPPool blockSize): 64 addresses."""
GATEWAY = IPv4Address("169.254.1.1")
"""The pods' next hop, which no one holds: the host side answers ARP for it by proxy."""
HOST_SIDE_MAC = "ee:ee:ee:ee:ee:ee"
"""Every host-side veth's MAC (the CNI plugin sets it so)."""
VXLAN_DEVICE = "vxlan.calico"
VXLAN_VNI = 4096
"""FelixConfiguration vxlanVNI's default."""
VXLAN_PORT = 4789
"""FelixConfiguration vxlanPort's default (the IANA port)."""
IPIP_DEVICE = "tunl0"
"""The ipip module's fallback device, which Felix configures."""
SERVICE_ACCOUNT = "default"
"""kubehop's model has no pod's service account: the one Kubernetes gives by default."""

_DEFAULT = IPv4Network("0.0.0.0/0")


class CalicoMode(StrEnum):
    """How pod traffic crosses between nodes (the IP pool's encapsulation)."""

    BGP = "bgp"
    IPIP = "ipip"
    VXLAN = "vxlan"


def veth_name_for_workload(namespace: str, pod: str) -> str:
    """The host side's name: `cali` + SHA-1 of "NAMESPACE.POD" in hex, 11 digits
    (libcalico-go's VethNameForWorkload, with the default FELIX_INTERFACEPREFIX)."""
    return "cali" + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


@dataclass(frozen=True)
class Calico:
    """Calico with one backend for one cluster."""

    cluster: Cluster
    """The cluster wired."""
    mode: CalicoMode = CalicoMode.BGP
    """BGP without encapsulation, IP-in-IP or VXLAN."""

    @property
    def name(self) -> str:
        """As `CNIConfig.plugin` names it."""
        return f"calico-{self.mode.value}"

    @cached_property
    def mtu(self) -> int:
        """The pods' veths' and the tunnel's MTU: room left for the outer header."""
        overhead = {CalicoMode.BGP: 0, CalicoMode.IPIP: IPIP_OVERHEAD, CalicoMode.VXLAN: OVERHEAD}
        return self.cluster.cni.mtu - overhead[self.mode]

    @cached_property
    def _pods(self) -> tuple[Pod, ...]:
        return tuple(p for p in self.cluster.pods if not p.host_network)

    @cached_property
    def _pod_ints(self) -> frozenset[int]:
        """The pods' addresses as ints (150,000 `IPv4Address` hashes would each call Python)."""
        return frozenset(map(_IP_INT, self._pods))

    # -- IPAM, as the pods' addresses show it ----------------------------------------

    @cached_property
    def _owners(self) -> dict[IPv4Network, str]:
        """Each block the pods' IPs fall in → the node it is affine to (most pods there)."""
        order = {n.name: i for i, n in enumerate(self.cluster.nodes)}
        # Blocks by their first address as an int: an `IPv4Network` per pod would cost
        # seconds at 150,000 pods.
        counts: dict[int, dict[str, int]] = {}
        for ip, node_name in zip(map(_IP_INT, self._pods), map(_NODE_OF, self._pods), strict=True):
            per_node = counts.setdefault(ip & _BLOCK_MASK, {})
            per_node[node_name] = per_node.get(node_name, 0) + 1
        owners = {
            IPv4Network((block, BLOCK_PREFIX)): min(
                nodes, key=lambda n: (-nodes[n], order.get(n, len(order)))
            )
            for block, nodes in counts.items()
        }
        if self.mode is not CalicoMode.BGP:
            owning = set(owners.values())
            for node in self.cluster.nodes:
                if node.name in owning or node.pod_cidr is None:
                    continue
                first = next(node.pod_cidr.subnets(new_prefix=BLOCK_PREFIX), None)
                if first is not None and first not in owners:
                    owners[first] = node.name
                    owning.add(node.name)
        return owners

    @cached_property
    def _owner_of_block(self) -> dict[int, str]:
        """`_owners` by each block's first address as an int."""
        return {int(block.network_address): node for block, node in self._owners.items()}

    @cached_property
    def blocks(self) -> dict[str, tuple[IPv4Network, ...]]:
        """Each node's IPAM blocks, lowest first."""
        found: dict[str, list[IPv4Network]] = {}
        for block, node in sorted(self._owners.items()):
            found.setdefault(node, []).append(block)
        return {node: tuple(blocks) for node, blocks in found.items()}

    def assumed_block(self, node: Node) -> IPv4Network | None:
        """The block kubehop gave `node` from its podCIDR, no pod of it showing one."""
        blocks = self.blocks.get(node.name, ())
        if not blocks or node.name in self._pod_nodes:
            return None
        return blocks[0]

    @cached_property
    def _pod_nodes(self) -> frozenset[str]:
        """The nodes some pod (not on its node's network) runs on."""
        return frozenset(p.node for p in self._pods)

    @cached_property
    def borrowed(self) -> dict[IPv4Address, str]:
        """Pods' IPs in a block another node owns → the node the pod runs on."""
        owner = self._owner_of_block
        return {p.ip: p.node for p in self._pods if owner.get(_IP_INT(p) & _BLOCK_MASK) != p.node}

    @cached_property
    def tunnel_addrs(self) -> dict[str, IPv4Address]:
        """Each node's tunnel address (IPv4IPIPTunnelAddr / IPv4VXLANTunnelAddr): the lowest
        address of its first block no pod holds, as calico-node takes it before any pod."""
        if self.mode is CalicoMode.BGP:
            return {}
        key = (
            "projectcalico.org/IPv4VXLANTunnelAddr"
            if self.mode is CalicoMode.VXLAN
            else "projectcalico.org/IPv4IPIPTunnelAddr"
        )
        taken = self._pod_ints
        found: dict[str, IPv4Address] = {}
        for node, blocks in self.blocks.items():
            annotated = _address(self.cluster.node(node), key)
            free = first_free(blocks, taken)
            if annotated is not None:
                found[node] = annotated  # what calico-node wrote on the node
            elif free is not None:
                found[node] = IPv4Address(free)
        return found

    @cached_property
    def pools(self) -> tuple[IPv4Network, ...]:
        """The IP pools: the cluster CIDR, else the blocks themselves."""
        cidr = self.cluster.kube_proxy.cluster_cidr
        if cidr is not None:
            return (cidr,)
        return tuple(sorted(self._owners))

    def vtep_mac(self, node: Node) -> str:
        """The node's `vxlan.calico` MAC: its projectcalico.org/VXLANTunnelMACAddr annotation,
        else one derived from its name."""
        written = node.annotation("projectcalico.org/VXLANTunnelMACAddr")
        return (
            written.lower()
            if written and _MAC.fullmatch(written)
            else stable_mac(node.name, VXLAN_DEVICE)
        )

    # -- the CNI seam ------------------------------------------------------------------

    @cached_property
    def _host_nets(self) -> tuple[tuple[str, IPv4Network], ...]:
        # Each node's address as the /32 Felix's host sets hold, made once per cluster
        # (from the integer: parsing 5,000 strings per node cost a Calico trace 0.2 s).
        return tuple((n.name, IPv4Network(int(n.internal_ip))) for n in self.cluster.nodes)

    def next_pod_ip(self, node: Node) -> IPv4Address:
        """The address calico-ipam would give the next pod on `node`: the lowest free one of
        the blocks affine to the node (a block hands out its addresses in order; one released
        goes to the back of the queue, which a dump cannot show, so none is assumed), else
        the first address of the first block of the pools no node holds, which the node then
        claims. The node's tunnel address is taken like a pod's."""
        taken = {int(p.ip) for p in self.cluster.pods} | {
            int(a) for a in self.tunnel_addrs.values()
        }
        free = first_free(self.blocks.get(node.name, ()), taken)
        if free is not None:
            return IPv4Address(free)
        held = {block for blocks in self.blocks.values() for block in blocks}
        for pool in self.pools:
            if pool.prefixlen > BLOCK_PREFIX:
                continue
            for block in pool.subnets(new_prefix=BLOCK_PREFIX):
                if block not in held:
                    return block.network_address
        raise IpamError(f"the IP pools ({', '.join(map(str, self.pools))}) have no free block")

    def prepare(self) -> None:
        """Every node's routes to the others, tunnel addresses, VTEPs and host addresses."""
        self.shared_routes.lengths  # noqa: B018 (each is built on first read)
        self._host_nets  # noqa: B018
        self.tunnel_addrs  # noqa: B018
        self.borrowed  # noqa: B018
        if self.mode is CalicoMode.VXLAN:
            self._vxlan_neighbours  # noqa: B018
            self._vxlan_fdb  # noqa: B018

    @cached_property
    def _tunnelled(self) -> list[Node]:
        return [n for n in self.cluster.nodes if n.name in self.tunnel_addrs]

    @cached_property
    def _vxlan_neighbours(self) -> dict[IPv4Address, tuple[tuple[str, str], ...]]:
        # Felix writes each other node's VTEP: its tunnel address → its VTEP MAC.
        return peer_entries(
            (n.name, self.tunnel_addrs[n.name], self.vtep_mac(n)) for n in self._tunnelled
        )

    @cached_property
    def _vxlan_fdb(self) -> dict[str, tuple[tuple[str, IPv4Address], ...]]:
        return peer_entries((n.name, self.vtep_mac(n), n.internal_ip) for n in self._tunnelled)

    def node_links(self, node: Node, netns: str) -> tuple[Interface, ...]:
        """The tunnel device (IP-in-IP, VXLAN), then each pod's host-side veth."""
        links: list[Interface] = []
        tunnel = self.tunnel_addrs.get(node.name)
        if tunnel is not None and self.mode is CalicoMode.IPIP:
            links.append(
                Interface(
                    IPIP_DEVICE,
                    netns,
                    IfKind.IPIP,
                    "0.0.0.0",  # `link/ipip 0.0.0.0`: an IP tunnel has no MAC
                    (IPv4Interface(f"{tunnel}/32"),),
                    mtu=self.mtu,
                )
            )
        elif tunnel is not None and self.mode is CalicoMode.VXLAN:
            links.append(
                Interface(
                    VXLAN_DEVICE,
                    netns,
                    IfKind.VXLAN,
                    self.vtep_mac(node),
                    (IPv4Interface(f"{tunnel}/32"),),
                    mtu=self.mtu,
                    neighbours=Peers(self._vxlan_neighbours, node.name),
                    vxlan=Vxlan(
                        vni=VXLAN_VNI,
                        port=VXLAN_PORT,
                        local=node.internal_ip,
                        fdb=Peers(self._vxlan_fdb, node.name),
                    ),
                )
            )
        for pod in pods_on(self.cluster, node.name):
            if pod.host_network:
                continue
            links.append(
                Interface(
                    veth_name_for_workload(pod.namespace, pod.name),
                    netns,
                    IfKind.VETH,
                    HOST_SIDE_MAC,
                    peer=(pod_ns_name(pod), "eth0"),
                    mtu=self.mtu,
                    proxy_arp=True,
                )
            )
        return tuple(links)

    def _toward(self, dst: IPv4Network, other: Node) -> Route | None:
        """The route to `dst` on `other`, as the backend writes it."""
        if self.mode is CalicoMode.BGP:
            return Route(dst, "eth0", via=other.internal_ip, proto="bird")
        if self.mode is CalicoMode.IPIP:
            return Route(dst, IPIP_DEVICE, via=other.internal_ip, proto="bird", onlink=True)
        vtep = self.tunnel_addrs.get(other.name)
        return None if vtep is None else Route(dst, VXLAN_DEVICE, via=vtep, onlink=True)

    def node_routes(self, node: Node) -> tuple[Route, ...]:
        """Blackholes for the node's blocks, a /32 per local pod, the other nodes' blocks and
        the addresses they borrowed."""
        return self.own_routes(node) + self.shared_routes.of(node.name)

    def own_routes(self, node: Node) -> tuple[Route, ...]:
        """Blackholes for the node's blocks, a /32 per local pod."""
        # Felix writes the blackholes under VXLAN, with its protocol 80; BIRD otherwise.
        proto = "80" if self.mode is CalicoMode.VXLAN else "bird"
        routes: list[Route] = [Blackhole(b, proto=proto) for b in self.blocks.get(node.name, ())]
        routes += [
            Route(
                IPv4Network(f"{pod.ip}/32"),
                veth_name_for_workload(pod.namespace, pod.name),
                scope="link",
            )
            for pod in pods_on(self.cluster, node.name)
            if not pod.host_network
        ]
        return tuple(routes)

    @cached_property
    def shared_routes(self) -> SharedRoutes:
        """Each node's blocks, in the nodes' order, then each borrowed address by its holder:
        every other node routes them so."""
        owners: list[str] = []
        routes: list[Route] = []
        for other in self.cluster.nodes:
            assumed = self.assumed_block(other)
            for block in self.blocks.get(other.name, ()):
                route = self._toward(block, other)
                if route is not None and block == assumed:
                    route = replace(
                        route,
                        assumed=f"no pod shows {other.name}'s Calico IPAM block, so kubehop"
                        f" assumes {block}, the first /{BLOCK_PREFIX} of its podCIDR",
                    )
                if route is not None:
                    owners.append(other.name)
                    routes.append(route)
        by_name = {n.name: n for n in self.cluster.nodes}
        for addr, holder in sorted(self.borrowed.items()):
            if holder in by_name:
                route = self._toward(IPv4Network(f"{addr}/32"), by_name[holder])
                if route is not None:
                    owners.append(holder)
                    routes.append(route)
        return SharedRoutes(tuple(owners), tuple(r.dst for r in routes), routes.__getitem__)

    def pod_link(self, pod: Pod, netns: str) -> Interface:
        """The pod's `eth0`: its IP/32, peered with its `cali…` veth."""
        return Interface(
            "eth0",
            netns,
            IfKind.VETH,
            stable_mac(pod.key, "calico-eth0"),
            (IPv4Interface(f"{pod.ip}/32"),),
            peer=(pod.node, veth_name_for_workload(pod.namespace, pod.name)),
            mtu=self.mtu,
        )

    def pod_routes(self, pod: Pod) -> tuple[Route, ...]:
        """`169.254.1.1 dev eth0 scope link`, then the default route through it."""
        return (
            Route(IPv4Network(f"{GATEWAY}/32"), "eth0", scope="link"),
            Route(_DEFAULT, "eth0", via=GATEWAY),
        )

    def neighbour(self, node: str, addr: IPv4Address) -> tuple[str, str] | None:
        """A pod of `node` answers for its own address (there is no bridge)."""
        # The node's own pods: the loader gives every pod not on its node's network an
        # address of its own.
        for pod in pods_on(self.cluster, node):
            if pod.ip == addr and not pod.host_network:
                return pod_ns_name(pod), "eth0"
        return None

    def port_for_mac(self, node: str, mac: str) -> str | None:
        """Calico bridges nothing."""
        return None

    def iptables_rules(self, node: Node) -> ForeignRules | None:
        """Felix's chains on `node`, and its ipsets."""
        tunnel = node.name in self.tunnel_addrs
        return felix_rules(
            FelixNode(
                workloads=tuple(
                    Workload(
                        veth_name_for_workload(p.namespace, p.name),
                        (f"kns.{p.namespace}", f"ksa.{p.namespace}.{SERVICE_ACCOUNT}"),
                    )
                    for p in pods_on(self.cluster, node.name)
                    if not p.host_network
                ),
                ipip=self.mode is CalicoMode.IPIP and tunnel,
                vxlan=self.mode is CalicoMode.VXLAN and tunnel,
                vxlan_port=VXLAN_PORT,
                pools=self.pools,
                masq_pools=self.pools,
                hosts=tuple(net for _, net in self._host_nets),
                vxlan_hosts=tuple(
                    net
                    for name, net in self._host_nets
                    if name != node.name and name in self.tunnel_addrs
                ),
            )
        )

    def _pod_traffic(self, pkt: Packet) -> bool:
        return any(pkt.src in p or pkt.dst in p for p in self.pools)

    def wire_note(self, pkt: Packet) -> str | None:
        """What crosses the node network: the pod packet as it is, or inside a tunnel."""
        inner = pkt.inner
        if self.mode is CalicoMode.VXLAN and inner is not None and pkt.vni == VXLAN_VNI:
            return (
                f"Calico VXLAN: the pod's frame ({inner.src} → {inner.dst}) crosses the node"
                f" network inside a UDP packet between the nodes (VNI {pkt.vni}, port"
                f" {pkt.dport}); the node network sees only the outer addresses"
            )
        if self.mode is CalicoMode.IPIP and inner is not None and pkt.proto is Proto.IPIP:
            return (
                f"Calico IP-in-IP: the pod's packet ({inner.src} → {inner.dst}) crosses the node"
                " network inside an outer IPv4 header (protocol 4) between the nodes; the node"
                " network sees only the outer addresses"
            )
        if self.mode is CalicoMode.BGP and self._pod_traffic(pkt):
            return (
                "Calico (BGP): the pod packet crosses the node network as it is, no"
                " encapsulation; BIRD learned the route to the other node's block over BGP, its"
                " next hop the node's InternalIP"
            )
        return None


_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_BLOCK_MASK = (0xFFFFFFFF << (32 - BLOCK_PREFIX)) & 0xFFFFFFFF
# A pod's address as an int and its node, read without `IPv4Address.__int__`'s Python call.
_IP_INT = attrgetter("ip._ip")
_NODE_OF = attrgetter("node")


def _address(node: Node | None, key: str) -> IPv4Address | None:
    """An IPv4 address a node annotation holds (`10.244.1.0`, or `10.0.0.11/24`)."""
    value = node.annotation(key) if node is not None else None
    if not value:
        return None
    try:
        return IPv4Address(value.split("/")[0])
    except ValueError:
        return None
