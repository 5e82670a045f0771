"""The seam every CNI plugs into: the devices, addresses and routes it gives nodes and pods.

kubelet asks the CNI to wire each pod's netns to its node; the CNI also routes
pod traffic between nodes. `sim.cluster.network` builds the namespaces the
walker moves packets through from what a `CNI` says: the node's own devices
(`lo`, `eth0`) and the pods' loopback come from there, everything the CNI owns
comes from here. host-gw is `sim.cni.host_gw`; Flannel's VXLAN and Calico are
further implementations, chosen by the cluster's `CNIConfig` in
`sim.cni.cni_of`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from ipaddress import IPv4Address
from operator import attrgetter
from typing import Protocol

from model.cluster import Cluster, Node, Pod
from model.packet import Packet
from sim.kernel.devices import Interface
from sim.kernel.route import Route, SharedRoutes
from sim.kernel.rules import ForeignRules

__all__ = ["CNI", "pod_ns_name", "pods_on", "stable_mac"]


class CNI(Protocol):
    """One CNI's part of the data path, for one cluster."""

    @property
    def name(self) -> str:
        """The plugin as `CNIConfig.plugin` names it (`host-gw`)."""

    def node_links(self, node: Node, netns: str) -> tuple[Interface, ...]:
        """The devices the CNI adds in `node`'s netns (a bridge, the pods' host-side veths)."""

    def node_routes(self, node: Node) -> tuple[Route, ...]:
        """The CNI's routes in `node`'s main table (to its pods, to other nodes' pods):
        `own_routes`, then `shared_routes`' entries but the node's own."""

    def own_routes(self, node: Node) -> tuple[Route, ...]:
        """The first of `node_routes`: the ones only `node` has (to its own pods)."""

    @property
    def shared_routes(self) -> SharedRoutes:
        """The rest of every node's `node_routes`, kept once per cluster: the routes to each
        node's pods, which every other node has."""

    def next_pod_ip(self, node: Node) -> IPv4Address:
        """The address the CNI's IPAM gives the next pod scheduled on `node`
        (`sim.cni.ipam.IpamError` when none is left)."""

    def prepare(self) -> None:
        """Build what every node shares (its routes to the others, their VTEPs), as the
        cluster loads, so that the first node a packet reaches costs what the next does."""

    def pod_link(self, pod: Pod, netns: str) -> Interface:
        """The pod's `eth0`: its MAC, address and the host-side peer."""

    def pod_routes(self, pod: Pod) -> tuple[Route, ...]:
        """The pod's main table (its connected route and its default route)."""

    def neighbour(self, node: str, addr: IPv4Address) -> tuple[str, str] | None:
        """Who answers ARP for `addr` on `node`'s pod-facing devices: (netns, interface)."""

    def port_for_mac(self, node: str, mac: str) -> str | None:
        """The bridge port on `node` behind which `mac` lives (the FDB), if the CNI bridges."""

    def iptables_rules(self, node: Node) -> ForeignRules | None:
        """The chains and rules the CNI writes in `node`'s tables (None: it writes none)."""

    def wire_note(self, pkt: Packet) -> str | None:
        """How the CNI carries `pkt` across the node network, for the wire hop; None when
        `pkt` is not the CNI's (a node's or a client's own traffic)."""


def pod_ns_name(pod: Pod) -> str:
    """The netns the runtime made for `pod`: `pod/NS/NAME` (hostNetwork pods use their node's).

    A node's netns is named after the node, so the CNI can name a veth's peer.
    """
    return pod.node if pod.host_network else f"pod/{pod.key}"


def stable_mac(*parts: str) -> str:
    """A locally administered unicast MAC derived from names, stable across runs.

    Linux gives a new device a random MAC; kubehop derives one from names so
    that two runs (and the real-kernel lab) show the same addresses.
    """
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    octets = [(digest[0] & 0xFC) | 0x02, *digest[1:6]]
    return ":".join(f"{o:02x}" for o in octets)


_POD_NODES: OrderedDict[int, tuple[Cluster, list[str], OrderedDict[str, tuple[Pod, ...]]]] = (
    OrderedDict()
)
_NODES_KEPT = 1024
"""How many nodes' pods `pods_on` keeps per cluster (a trace asks for the same few again)."""


def pods_on(cluster: Cluster, node: str) -> tuple[Pod, ...]:
    """The pods scheduled on `node`, in file order: `Cluster.pods_on`, without grouping every
    pod by node first when nothing has yet.

    A trace needs the pods of the two or three nodes it crosses; grouping 150,000
    pods costs the first trace a tenth of a second, listing their nodes' names once and
    scanning that list (at C speed) for one node a millisecond each.
    """
    if "_pods_by_node" in cluster.__dict__:  # someone grouped them already
        return cluster.pods_on(node)
    key = id(cluster)
    hit = _POD_NODES.get(key)
    if hit is not None and hit[0] is cluster:
        _POD_NODES.move_to_end(key)
        _, names, kept = hit
    else:
        names, kept = list(map(_NODE_OF, cluster.pods)), OrderedDict()
        _POD_NODES[key] = (cluster, names, kept)
        while len(_POD_NODES) > 4:
            _POD_NODES.popitem(last=False)
    found = kept.get(node)
    if found is not None:
        kept.move_to_end(node)
        return found
    pods = cluster.pods
    on: list[Pod] = []
    at = 0
    while True:
        try:
            at = names.index(node, at)
        except ValueError:
            break
        on.append(pods[at])
        at += 1
    kept[node] = found = tuple(on)
    if len(kept) > _NODES_KEPT:
        kept.popitem(last=False)
    return found


_NODE_OF = attrgetter("node")
