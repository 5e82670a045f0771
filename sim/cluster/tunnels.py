"""What a node's CNI puts between it and the other nodes: its tunnel device, its address blocks.

The app's cluster pane shows them under each node, as `ip -d link show` and
Calico's IPAM would tell a person on the node: Flannel's `flannel.1` (VXLAN),
Calico's `tunl0` (IP-in-IP) or `vxlan.calico`, and Calico's /26 blocks. They
are read from the network `sim.cluster.network` builds for traces, so the pane
shows the devices the packets pass, not a description of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from model.cluster import Cluster
from sim.cluster.network import network_of
from sim.cni.calico import Calico
from sim.kernel.devices import IfKind

__all__ = ["NodeTunnels", "Tunnel", "node_tunnels"]


@dataclass(frozen=True)
class Tunnel:
    """A tunnel device on a node, as `ip -d link show` describes it."""

    device: str
    """Its name (`flannel.1`, `vxlan.calico`, `tunl0`)."""
    kind: str
    """`vxlan` or `ipip`."""
    address: IPv4Interface | None
    """Its address (`192.168.1.0/32`), None when it has none."""
    mtu: int
    """Its MTU: the link's less the outer header."""
    vni: int | None = None
    """For VXLAN, the network identifier (`id 1`)."""
    port: int | None = None
    """For VXLAN, the outer packets' UDP port (`dstport 8472`)."""
    local: IPv4Address | None = None
    """For VXLAN, the outer source address (`local 10.0.0.11`)."""
    mac: str | None = None
    """For VXLAN, the device's MAC (the VTEP MAC other nodes' neighbour entries hold)."""


@dataclass(frozen=True)
class NodeTunnels:
    """One node's tunnel devices and address blocks."""

    node: str
    """The node."""
    tunnels: tuple[Tunnel, ...] = ()
    """Its tunnel devices (none under host-gw, Flannel host-gw, Calico BGP)."""
    blocks: tuple[IPv4Network, ...] = ()
    """Calico's IPAM blocks affine to it, lowest first (none under other CNIs)."""
    assumed_block: IPv4Network | None = None
    """A block kubehop gave it from its podCIDR, no pod of it showing one."""


def node_tunnels(cluster: Cluster, node: str) -> NodeTunnels:
    """`node`'s tunnel devices and Calico blocks, from the network traces walk."""
    found = cluster.node(node)
    if found is None:
        return NodeTunnels(node)
    network = network_of(cluster)
    tunnels = tuple(
        Tunnel(
            iface.name,
            iface.kind.value,
            iface.addrs[0] if iface.addrs else None,
            iface.mtu,
            iface.vxlan.vni if iface.vxlan else None,
            iface.vxlan.port if iface.vxlan else None,
            iface.vxlan.local if iface.vxlan else None,
            iface.mac if iface.kind is IfKind.VXLAN else None,
        )
        for iface in network.netns(node).interfaces
        if iface.kind in (IfKind.VXLAN, IfKind.IPIP)
    )
    cni = network.cni
    if not isinstance(cni, Calico):
        return NodeTunnels(node, tunnels)
    return NodeTunnels(node, tunnels, cni.blocks.get(node, ()), cni.assumed_block(found))
