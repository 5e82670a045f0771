"""Linux's view of a machine: network namespaces, their devices, addresses, routes and sockets.

The walker (`sim.kernel.walk`) moves packets between these; who builds them
from a cluster (the kubelet's pod sandboxes, the CNI's devices) is
`sim.cluster.network`, which the walker sees only as a `Network`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from enum import StrEnum
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Protocol

from model.frozen import frozen
from model.packet import Packet, Proto
from sim.kernel.route import NodeRouteTable, Route, RouteTable

__all__ = [
    "Blackhole",
    "IfKind",
    "Interface",
    "Listener",
    "Netns",
    "NetnsKind",
    "Network",
    "Vxlan",
]


class IfKind(StrEnum):
    """What kind of link an interface is (`ip -d link` would say)."""

    LOOPBACK = "loopback"
    VETH = "veth"
    BRIDGE = "bridge"
    ETHERNET = "ethernet"
    VXLAN = "vxlan"
    IPIP = "ipip"
    DUMMY = "dummy"
    """A dummy device (kube-proxy's `kube-ipvs0`): it sends nothing; its addresses make
    the Service addresses local to the node."""


@frozen
class Vxlan:
    """A VXLAN device's tunnel, as `ip -d link show` and `bridge fdb show` print it."""

    vni: int
    """The VXLAN network identifier (`id 1`)."""
    port: int
    """The UDP port of the outer packets (`dstport 8472`), which the device also listens on."""
    local: IPv4Address
    """The outer source address (`local 10.0.0.11`)."""
    fdb: Mapping[str, IPv4Address] = field(default_factory=dict)
    """Where each inner destination MAC is tunnelled to (`MAC dst 10.0.0.12 self permanent`);
    with learning off these are all there are."""


@frozen
class Interface:
    """A network interface inside one netns."""

    name: str
    """Its name (at most 15 characters, as Linux allows)."""
    netns: str
    """The netns it lives in."""
    kind: IfKind
    """Loopback, veth, bridge, ethernet, vxlan, ipip or dummy."""
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
    mtu: int = 1500
    """The largest IPv4 packet it sends."""
    neighbours: Mapping[IPv4Address, str] = field(default_factory=dict)
    """Permanent neighbour entries (`ip neigh … nud permanent`): address → MAC; a device
    that does no ARP (a VXLAN device with learning off) knows only these."""
    vxlan: Vxlan | None = None
    """For a VXLAN device: its tunnel."""
    proxy_arp: bool = False
    """net.ipv4.conf.IFACE.proxy_arp: the device answers ARP, with its own MAC, for any
    address its netns routes out of another device (Calico's host-side veths answer
    their pod's ARP for 169.254.1.1 so)."""

    @property
    def primary(self) -> IPv4Address | None:
        """The first address, which MASQUERADE and a socket's source take."""
        return self.addrs[0].ip if self.addrs else None


@frozen
class Blackhole(Route):
    """A blackhole route (`ip route add blackhole PREFIX`): what it covers is discarded.

    Linux gives it no device: a packet forwarded to it is dropped without an
    ICMP error, and a local socket's connect() there fails with EINVAL. Calico
    writes one for each IPAM block its node owns, so an address of the block no
    pod holds goes nowhere instead of following the default route out.
    """

    dev: str = ""
    """None: a blackhole route has no device."""

    def resolved(self, src: IPv4Address | None, dst: IPv4Address) -> Route:
        """A blackhole has no next hop to choose."""
        return self

    def __str__(self) -> str:
        text = f"blackhole {self.dst}"
        return text if self.proto == "static" else f"{text} proto {self.proto}"


@frozen
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
    ROUTER = "router"


@frozen
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
    routes: RouteTable | NodeRouteTable
    """Its main routing table (the local table is derived from the addresses); a node's
    shares the routes to other nodes' pods with every node (`NodeRouteTable`)."""
    listeners: tuple[Listener, ...] = ()
    """Listening sockets kubehop knows of (a container's declared ports)."""
    listed: Mapping[tuple[Proto, int], str] = field(default_factory=dict)
    """Ports an EndpointSlice lists at this netns's address, with the Service listing each."""
    ports_declared: bool = False
    """Its listeners are all there are: a pod whose containers declare ports. A node runs
    processes no pod declares, and most pods declare none, so elsewhere an unknown port
    is unknown, not closed."""
    forwarding: bool = False
    """net.ipv4.ip_forward."""
    netfilter: bool = False
    """Has iptables rules (kube-proxy's) to walk; pods and clients have none."""
    bridge_nf_call_iptables: bool = False
    """net.bridge.bridge-nf-call-iptables with br_netfilter loaded."""
    label: str = ""
    """How a person names it: `node-a`, `pod1`, `client`."""
    proxy_arp: tuple[IPv4Address, ...] = ()
    """Addresses it answers ARP for on `eth0` without holding them (a LoadBalancer IP it
    announces, as MetalLB's layer-2 mode does)."""

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


class Network(Protocol):
    """The namespaces of one cluster and what links them, as the walker asks about them."""

    def netns(self, name: str) -> Netns:
        """The netns called `name` (it must exist)."""

    def segment_owner(self, addr: IPv4Address) -> tuple[str, str] | None:
        """Who answers ARP for `addr` on the node network: (netns, interface)."""

    def bridge_member(self, node: str, addr: IPv4Address) -> tuple[str, str] | None:
        """Who answers ARP for `addr` behind `node`'s pod-facing devices: (netns, interface)."""

    def bridge_port_for_mac(self, node: str, mac: str | None) -> str | None:
        """The bridge port on `node` behind which `mac` lives (what the FDB learned)."""

    def wire_note(self, pkt: Packet) -> str | None:
        """How the CNI carries `pkt` between nodes, when it is pod traffic."""

    def arp_note(self, addr: IPv4Address) -> str | None:
        """What was assumed about who answers ARP for `addr` (None: its owner did)."""
