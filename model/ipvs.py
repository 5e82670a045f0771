"""IPVS: the kernel's virtual servers, their real servers, and the state a walk keeps of them.

kube-proxy's IPVS mode programs one virtual server per Service address and
port (`ipvsadm -A -t 10.96.0.1:443 -s rr`), each with the Service's endpoints
as real servers forwarded by NAT (`-a … -r 192.168.1.3:8080 -m -w 1`), and
binds the Service addresses to the dummy device `kube-ipvs0` so that routing
delivers them locally. `IpvsTable` is that configuration on one node;
`IpvsState` is what the kernel learns from packets (connections, persistence
templates, each scheduler's position), kept per netns between the requests
of one simulation so that `rr` cycles across them as the kernel's does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from functools import cached_property
from ipaddress import IPv4Address

from immutables import Map

from model.frozen import frozen
from model.packet import Proto

__all__ = [
    "FORWARD_FLAGS",
    "SCHEDULERS",
    "ConnKey",
    "IpvsConn",
    "IpvsState",
    "IpvsTable",
    "RealServer",
    "ServiceKey",
    "VirtualServer",
]

SCHEDULERS: dict[str, str] = {
    "rr": "round-robin",
    "wrr": "weighted round-robin",
    "lc": "least-connection",
    "wlc": "weighted least-connection",
    "lblc": "locality-based least-connection",
    "lblcr": "locality-based least-connection with replication",
    "sh": "source hashing",
    "dh": "destination hashing",
    "sed": "shortest expected delay",
    "nq": "never queue",
}
"""The schedulers kube-proxy 1.31's configuration validation accepts (ipvs.scheduler), and
what each is called; "" means rr."""

FORWARD_FLAGS: dict[str, str] = {"masq": "-m", "gate": "-g", "ipip": "-i"}
"""A real server's forwarding method → how `ipvsadm-save` spells it."""

ServiceKey = tuple[Proto, IPv4Address, int]
"""A virtual server's identity: protocol, address, port."""

ConnKey = tuple[Proto, IPv4Address, int, IPv4Address, int]
"""An IPVS connection as a client's packets find it: protocol, client address and port,
virtual address and port."""


@frozen
class RealServer:
    """A real server of a virtual server (`-a -t VIP:PORT -r IP:PORT -m -w 1`)."""

    ip: IPv4Address
    """Its address."""
    port: int
    """Its port."""
    weight: int = 1
    """`-w`: kube-proxy gives every endpoint weight 1 (0 while it drains a deleted one)."""
    forward: str = "masq"
    """The forwarding method: `masq` (NAT, kube-proxy's), `gate` (direct routing), `ipip`."""
    lineno: int = 0
    """Its line in the dump it was read from (0: rendered by kubehop)."""

    @property
    def addr(self) -> str:
        """`IP:PORT`."""
        return f"{self.ip}:{self.port}"


@frozen
class VirtualServer:
    """A virtual server (`-A -t VIP:PORT -s rr [-p TIMEOUT]`) and its real servers."""

    proto: Proto
    """tcp, udp or sctp (`-t`, `-u`, `--sctp-service`)."""
    ip: IPv4Address
    """The virtual address (a ClusterIP, external IP, load-balancer IP or node address)."""
    port: int
    """The virtual port."""
    scheduler: str = "rr"
    """`-s`: how a new connection picks its real server."""
    persistent: int | None = None
    """`-p TIMEOUT`: session affinity; a client's connections go to one real server until
    the persistence template expires (seconds)."""
    netmask: IPv4Address = field(default_factory=lambda: IPv4Address("255.255.255.255"))
    """`-M`: the persistence granularity (which client addresses share a template)."""
    flags: tuple[str, ...] = ()
    """`-b`: scheduler flags (`mh-port`, `sh-fallback`, …)."""
    real_servers: tuple[RealServer, ...] = ()
    """Its real servers, in the order the kernel keeps them (the newest added first)."""
    owner: str | None = None
    """The Service port it stands for (`default/web:http`) and how it is reached
    (`ClusterIP`, `NodePort`, …); None when read from a real node's dump."""
    how: str = ""
    """`ClusterIP`, `NodePort`, `external IP` or `load-balancer IP` (empty when unknown)."""
    lineno: int = 0
    """Its `-A` line in the dump it was read from (0: rendered by kubehop)."""

    @property
    def key(self) -> ServiceKey:
        """Protocol, address and port."""
        return (self.proto, self.ip, self.port)

    @property
    def label(self) -> str:
        """`TCP  10.96.0.1:443`, as `ipvsadm -Ln` names it."""
        return f"{self.proto.value.upper()} {self.ip}:{self.port}"

    @property
    def save_name(self) -> str:
        """`-t 10.96.0.1:443`, as `ipvsadm-save -n` names it."""
        switch = {"tcp": "-t", "udp": "-u"}.get(self.proto.value, "--sctp-service")
        return f"{switch} {self.ip}:{self.port}"


@frozen
class IpvsTable:
    """A node's IPVS configuration: its virtual servers and the addresses on `kube-ipvs0`."""

    services: tuple[VirtualServer, ...] = ()
    """Every virtual server."""
    bound: tuple[IPv4Address, ...] = ()
    """The addresses kube-proxy binds to the dummy device `kube-ipvs0` (ClusterIPs, external
    and load-balancer IPs not on another interface), which makes them local to the node."""
    source: str = ""
    """Where it came from: `node-a (rendered)` or the dump's file name."""
    timeouts: tuple[int, int, int] = (900, 120, 300)
    """`ipvsadm --set tcp tcpfin udp`: the kernel's defaults unless kube-proxy's ipvs.tcpTimeout,
    tcpFinTimeout or udpTimeout set them."""
    strict_arp: bool = False
    """ipvs.strictARP: kube-proxy set arp_ignore=1 and arp_announce=2 on the node."""

    @cached_property
    def _by_key(self) -> dict[ServiceKey, VirtualServer]:
        return {vs.key: vs for vs in self.services}

    def lookup(self, proto: Proto, ip: IPv4Address, port: int) -> VirtualServer | None:
        """ip_vs_service_find: the virtual server at `ip:port/proto`, if any."""
        return self._by_key.get((proto, ip, port))

    def has_address(self, ip: IPv4Address) -> bool:
        """Some virtual server listens at `ip` (on any port)."""
        return ip in self._addresses

    @cached_property
    def _addresses(self) -> frozenset[IPv4Address]:
        return frozenset(vs.ip for vs in self.services)

    def serves(self, endpoint: tuple[IPv4Address, int]) -> bool:
        """Some virtual server has `endpoint` (address, port) as a real server."""
        return any((rs.ip, rs.port) == endpoint for vs in self.services for rs in vs.real_servers)


@frozen
class IpvsConn:
    """An IPVS connection entry (`ipvsadm -Lnc`): client → virtual → real server."""

    proto: Proto
    """Its protocol."""
    caddr: IPv4Address
    """The client's address, as the packet arrived."""
    cport: int
    """The client's port."""
    vaddr: IPv4Address
    """The virtual address."""
    vport: int
    """The virtual port."""
    daddr: IPv4Address
    """The real server chosen."""
    dport: int
    """Its port."""
    expires: float = 0.0
    """When it expires, on the walk's virtual clock (seconds)."""

    @property
    def key(self) -> ConnKey:
        """How the client's next packets find it."""
        return (self.proto, self.caddr, self.cport, self.vaddr, self.vport)

    @property
    def out_key(self) -> ConnKey:
        """How the real server's replies find it (real server → client)."""
        return (self.proto, self.daddr, self.dport, self.caddr, self.cport)


def _empty() -> Map[object, object]:
    return Map()


@frozen
class IpvsState:
    """What one netns's IPVS has learned from packets; persistent maps, so N requests cost
    O(N log N)."""

    conns: Mapping[ConnKey, IpvsConn] = field(default_factory=_empty)  # type: ignore[arg-type]
    """Connections by client tuple."""
    replies: Mapping[ConnKey, ConnKey] = field(default_factory=_empty)  # type: ignore[arg-type]
    """Each connection's reply tuple (real server → client) → its client tuple."""
    templates: Mapping[tuple[Proto, IPv4Address, IPv4Address, int], IpvsConn] = field(
        default_factory=_empty  # type: ignore[arg-type]
    )
    """Persistence templates: (protocol, client address under the netmask, virtual address,
    port) → the real server the client sticks to, until `expires`."""
    positions: Mapping[ServiceKey, tuple[int, int]] = field(
        default_factory=_empty  # type: ignore[arg-type]
    )
    """Each virtual server's scheduler position: (the last real server chosen, as an index
    into its list, -1 for none yet; wrr's current weight, 0 for rr)."""
    active: Mapping[tuple[ServiceKey, str], int] = field(default_factory=_empty)  # type: ignore[arg-type]
    """Connections per (virtual server, real server `IP:PORT`), for the least-connection
    schedulers."""
    assigned: Mapping[tuple[ServiceKey, IPv4Address], str] = field(
        default_factory=_empty  # type: ignore[arg-type]
    )
    """lblc's choice per (virtual server, destination address): the real server `IP:PORT`."""
