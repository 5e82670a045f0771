"""kube-proxy's IPVS syncProxyRules: the virtual servers, ipsets and iptables rules of one node.

A model of Kubernetes 1.31 pkg/proxy/ipvs/proxier.go (syncProxyRules,
syncService, syncEndpoint, writeIptablesRules) and ipset.go. Per Service port:
a virtual server at the ClusterIP (bound to `kube-ipvs0`), at each external
IP and load-balancer IP (bound unless a node interface has it) and, for a
NodePort, at every node address; each with the port's endpoints as NAT real
servers of weight 1 (only the node's own under a Local traffic policy, all of
them when the node has none: kubernetes PR 97081). The iptables rules match the
sets instead of naming Services (`-m set --match-set KUBE-CLUSTER-IP dst,dst`).

Where the node's own state decides and kubehop cannot know it, it says so:
kube-proxy walks Go maps, so real nodes create the sets and add the real
servers in random order (here: ipset.go's order, and each Service's endpoints
sorted as kube-proxy sorts them); the node addresses NodePorts listen on are
its InternalIP and the CNI bridge's gateway (as iptables mode assumes).
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface

from model.cluster import Cluster, Node, Service, ServicePort
from model.ipset import IpSet
from model.ipvs import IpvsTable, RealServer, VirtualServer
from model.packet import Proto
from sim.collector import paused
from sim.memo import PerCluster
from sim.proxy.endpoints import (
    KPEndpoint,
    categorize,
    external_policy_local,
    internal_policy_local,
    port_endpoints,
)
from sim.proxy.iptables import names as ipt
from sim.proxy.iptables.sync import (
    Tokens,
    masquerade_mark,
    node_addresses,
    proxied_services,
    service_ports,
)

__all__ = [
    "IPSETS",
    "IpvsSync",
    "NodeView",
    "bound_interfaces",
    "ipvs_timeouts",
    "node_view",
    "sync",
    "sync_port",
    "write_iptables",
]

KUBE_NODE_PORT = "KUBE-NODE-PORT"
KUBE_LOAD_BALANCER = "KUBE-LOAD-BALANCER"
KUBE_SOURCE_RANGES_FIREWALL = "KUBE-SOURCE-RANGES-FIREWALL"
KUBE_IPVS_FILTER = "KUBE-IPVS-FILTER"
KUBE_IPVS_OUT_FILTER = "KUBE-IPVS-OUT-FILTER"

IPSETS: tuple[tuple[str, str, str], ...] = (
    ("KUBE-LOOP-BACK", "hash:ip,port,ip",
     "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"),
    ("KUBE-CLUSTER-IP", "hash:ip,port", "Kubernetes service cluster ip + port for masquerade purpose"),
    ("KUBE-EXTERNAL-IP", "hash:ip,port",
     "Kubernetes service external ip + port for masquerade and filter purpose"),
    ("KUBE-EXTERNAL-IP-LOCAL", "hash:ip,port",
     "Kubernetes service external ip + port with externalTrafficPolicy=local"),
    ("KUBE-LOAD-BALANCER", "hash:ip,port", "Kubernetes service lb portal"),
    ("KUBE-LOAD-BALANCER-FW", "hash:ip,port",
     "Kubernetes service load balancer ip + port for load balancer with sourceRange"),
    ("KUBE-LOAD-BALANCER-LOCAL", "hash:ip,port",
     "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"),
    ("KUBE-LOAD-BALANCER-SOURCE-IP", "hash:ip,port,ip",
     "Kubernetes service load balancer ip + port + source IP for packet filter purpose"),
    ("KUBE-LOAD-BALANCER-SOURCE-CIDR", "hash:ip,port,net",
     "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"),
    ("KUBE-NODE-PORT-TCP", "bitmap:port", "Kubernetes nodeport TCP port for masquerade purpose"),
    ("KUBE-NODE-PORT-LOCAL-TCP", "bitmap:port",
     "Kubernetes nodeport TCP port with externalTrafficPolicy=local"),
    ("KUBE-NODE-PORT-UDP", "bitmap:port", "Kubernetes nodeport UDP port for masquerade purpose"),
    ("KUBE-NODE-PORT-LOCAL-UDP", "bitmap:port",
     "Kubernetes nodeport UDP port with externalTrafficPolicy=local"),
    ("KUBE-NODE-PORT-SCTP-HASH", "hash:ip,port",
     "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"),
    ("KUBE-NODE-PORT-LOCAL-SCTP-HASH", "hash:ip,port",
     "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"),
    ("KUBE-HEALTH-CHECK-NODE-PORT", "bitmap:port", "Kubernetes health check node port"),
    ("KUBE-IPVS-IPS", "hash:ip", "Addresses on the ipvs interface"),
)  # fmt: skip
"""ipsetInfo: every set kube-proxy creates (name, type, comment), in proxier.go's order."""

_COMMENT = {name: comment for name, _, comment in IPSETS}

# ipsetWithIptablesChain: (set, table, from chain, to, match type, protocol), in order;
# a rule is written only while its set has members.
_SET_RULES: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("KUBE-LOOP-BACK", "nat", ipt.KUBE_POSTROUTING, "MASQUERADE", "dst,dst,src", ""),
    ("KUBE-LOAD-BALANCER", "nat", ipt.KUBE_SERVICES, KUBE_LOAD_BALANCER, "dst,dst", ""),
    ("KUBE-LOAD-BALANCER-LOCAL", "nat", KUBE_LOAD_BALANCER, "RETURN", "dst,dst", ""),
    ("KUBE-NODE-PORT-LOCAL-TCP", "nat", KUBE_NODE_PORT, "RETURN", "dst", "tcp"),
    ("KUBE-NODE-PORT-TCP", "nat", KUBE_NODE_PORT, ipt.KUBE_MARK_MASQ, "dst", "tcp"),
    ("KUBE-NODE-PORT-LOCAL-UDP", "nat", KUBE_NODE_PORT, "RETURN", "dst", "udp"),
    ("KUBE-NODE-PORT-UDP", "nat", KUBE_NODE_PORT, ipt.KUBE_MARK_MASQ, "dst", "udp"),
    ("KUBE-NODE-PORT-LOCAL-SCTP-HASH", "nat", KUBE_NODE_PORT, "RETURN", "dst,dst", "sctp"),
    ("KUBE-NODE-PORT-SCTP-HASH", "nat", KUBE_NODE_PORT, ipt.KUBE_MARK_MASQ, "dst,dst", "sctp"),
    ("KUBE-LOAD-BALANCER-FW", "filter", ipt.KUBE_PROXY_FIREWALL, KUBE_SOURCE_RANGES_FIREWALL,
     "dst,dst", ""),
    ("KUBE-LOAD-BALANCER-SOURCE-CIDR", "filter", KUBE_SOURCE_RANGES_FIREWALL, "RETURN",
     "dst,dst,src", ""),
    ("KUBE-LOAD-BALANCER-SOURCE-IP", "filter", KUBE_SOURCE_RANGES_FIREWALL, "RETURN",
     "dst,dst,src", ""),
)  # fmt: skip

NAT_CHAINS = (ipt.KUBE_SERVICES, ipt.KUBE_POSTROUTING, KUBE_NODE_PORT, KUBE_LOAD_BALANCER,
              ipt.KUBE_MARK_MASQ)  # fmt: skip
"""iptablesChains' nat chains."""
FILTER_CHAINS = (ipt.KUBE_FORWARD, KUBE_NODE_PORT, ipt.KUBE_PROXY_FIREWALL,
                 KUBE_SOURCE_RANGES_FIREWALL, KUBE_IPVS_FILTER, KUBE_IPVS_OUT_FILTER)  # fmt: skip
"""iptablesChains' filter chains."""

JUMPS: tuple[tuple[str, str, str, str], ...] = (
    ("nat", "OUTPUT", ipt.KUBE_SERVICES, "kubernetes service portals"),
    ("nat", "PREROUTING", ipt.KUBE_SERVICES, "kubernetes service portals"),
    ("nat", "POSTROUTING", ipt.KUBE_POSTROUTING, "kubernetes postrouting rules"),
    ("filter", "FORWARD", ipt.KUBE_FORWARD, "kubernetes forwarding rules"),
    ("filter", "INPUT", KUBE_NODE_PORT, "kubernetes health check rules"),
    ("filter", "INPUT", ipt.KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
    ("filter", "FORWARD", ipt.KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
    ("filter", "INPUT", KUBE_IPVS_FILTER, "kubernetes ipvs access filter"),
    ("filter", "OUTPUT", KUBE_IPVS_OUT_FILTER, "kubernetes ipvs access filter"),
)
"""iptablesJumpChain: (table, built-in chain, kube-proxy's chain, comment), each prepended."""


@dataclass
class IpvsSync:
    """What one sync leaves on the node."""

    services: list[VirtualServer] = field(default_factory=list)
    """Virtual servers, in the order kube-proxy adds them."""
    bound: dict[IPv4Address, None] = field(default_factory=dict)
    """Addresses on kube-ipvs0, in the order they were bound (a dict: an ordered set)."""
    members: dict[str, dict[str, None]] = field(
        default_factory=lambda: {n: {} for n, _, _ in IPSETS}
    )
    """Each set's members as `ipset add` spells them (each an ordered set)."""
    nat: list[Tokens] = field(default_factory=list)
    """nat rules, kube-proxy's argument order."""
    filter: list[Tokens] = field(default_factory=list)
    """filter rules."""

    def table(self, source: str, cluster: Cluster) -> IpvsTable:
        """The virtual servers as the kernel holds them."""
        return IpvsTable(
            tuple(self.services),
            tuple(self.bound),
            source,
            ipvs_timeouts(cluster),
            cluster.kube_proxy.ipvs_strict_arp,
        )

    def ipsets(self) -> dict[str, IpSet]:
        """The sets, parsed as `ipset save` would give them to the matcher."""
        from sim.proxy.ipvs.save import ipset_save
        from sim.readers.ipset import parse_ipsets

        return parse_ipsets(ipset_save(self), "kube-proxy's ipsets")


def ipvs_timeouts(cluster: Cluster) -> tuple[int, int, int]:
    """`ipvsadm --set tcp tcpfin udp` as the node's kernel has them: kube-proxy's ipvs
    timeouts where set, the kernel's defaults elsewhere."""
    defaults = (900, 120, 300)
    tcp, fin, udp = (
        t or d for t, d in zip(cluster.kube_proxy.ipvs_timeouts, defaults, strict=True)
    )
    return (tcp, fin, udp)


@dataclass(frozen=True)
class NodeView:
    """What kube-proxy knows of its own node while it syncs one Service port after another."""

    node: Node
    """The node."""
    own: frozenset[IPv4Address]
    """Its interface addresses (an external or LB IP among them is not bound to kube-ipvs0)."""
    node_ips: tuple[IPv4Address, ...]
    """The addresses its NodePorts listen on (nodePortAddresses applied)."""
    scheduler: str
    """ipvs.scheduler ("rr" when unset)."""
    servers: dict[str, RealServer] = field(default_factory=dict, compare=False, repr=False)
    """Each endpoint's real server by `ip:port`, made once: a big node lists an endpoint
    in several virtual servers, and an `IPv4Address` from text costs microseconds."""


def node_view(cluster: Cluster, node: Node) -> NodeView:
    """`node` as its kube-proxy sees it."""
    kp = cluster.kube_proxy
    node_ips = [ip for ip in node_addresses(node) if not ip.is_loopback]
    if kp.node_port_addresses:
        node_ips = [ip for ip in node_ips if any(ip in c for c in kp.node_port_addresses)]
    return NodeView(
        node, frozenset(node_addresses(node)), tuple(node_ips), kp.ipvs_scheduler or "rr"
    )


def _add(members: dict[str, dict[str, None]], name: str, member: str) -> None:
    members[name][member] = None


def _proto(port: ServicePort) -> Proto:
    return port.protocol


def sync(cluster: Cluster, node: Node) -> IpvsSync:
    """What kube-proxy 1.31 in IPVS mode programs on `node`."""
    out = IpvsSync()
    view = node_view(cluster, node)
    with paused():  # a big node builds millions of short strings and tuples, none cyclic
        for name, svc, port in service_ports(cluster):
            sync_port(cluster, view, out, name, svc, port)
    out.members["KUBE-IPVS-IPS"] = {str(ip): None for ip in out.bound}
    write_iptables(out, cluster, {name for name, found in out.members.items() if found})
    return out


def sync_port(
    cluster: Cluster, view: NodeView, out: IpvsSync, name: str, svc: Service, port: ServicePort
) -> None:
    """One Service port's part of a sync: its virtual servers, the addresses it binds, its
    sets' members and (for LB source ranges) its KUBE-IPVS-OUT-FILTER rules, added to `out`."""
    sets = out.members
    node, own, node_ips = view.node, view.own, view.node_ips
    proto = port.protocol.value
    endpoints = port_endpoints(cluster, svc, port, node.name)
    for ep in endpoints:
        if ep.local:
            _add(sets, "KUBE-LOOP-BACK", f"{ep.ip},{proto}:{ep.port},{ep.ip}")
    assert svc.cluster_ip is not None
    _add(sets, "KUBE-CLUSTER-IP", f"{svc.cluster_ip},{proto}:{port.port}")

    internal = _real_servers(view, endpoints, svc, port, internal_policy_local(svc))
    local_ext = external_policy_local(svc)
    external = _real_servers(view, endpoints, svc, port, local_ext)
    virtual = functools.partial(
        _virtual, out, port.protocol, view.scheduler, svc.session_affinity_timeout, name
    )
    virtual(svc.cluster_ip, port.port, "ClusterIP", internal)
    _bind(out, svc.cluster_ip)
    for eip in svc.external_ips:
        _add(
            sets,
            "KUBE-EXTERNAL-IP-LOCAL" if local_ext else "KUBE-EXTERNAL-IP",
            f"{eip},{proto}:{port.port}",
        )
        virtual(eip, port.port, "external IP", external)
        if eip not in own:
            _bind(out, eip)
    for lbip in svc.load_balancer_ips:
        entry = f"{lbip},{proto}:{port.port}"
        _add(sets, "KUBE-LOAD-BALANCER", entry)
        if local_ext:
            _add(sets, "KUBE-LOAD-BALANCER-LOCAL", entry)
        if svc.load_balancer_source_ranges:
            _add(sets, "KUBE-LOAD-BALANCER-FW", entry)
            allow_from_node = False
            for cidr in svc.load_balancer_source_ranges:
                _add(sets, "KUBE-LOAD-BALANCER-SOURCE-CIDR", f"{entry},{cidr}")
                allow_from_node = allow_from_node or node.internal_ip in cidr
            if allow_from_node:
                _add(sets, "KUBE-LOAD-BALANCER-SOURCE-IP", f"{entry},{lbip}")
            else:
                # The node's own connections to the LB IP come from the LB IP itself.
                out.filter.append(
                    (
                        "-A", KUBE_IPVS_OUT_FILTER, "-s", str(lbip), "-m", "ipvs",
                        "--vaddr", str(lbip), "--vproto", proto, "--vport", str(port.port),
                        "-j", "DROP",
                    )
                )  # fmt: skip
        virtual(lbip, port.port, "load-balancer IP", external)
        if lbip not in own:
            _bind(out, lbip)
    if port.node_port and node_ips:
        _node_port_sets(sets, port, node_ips, local_ext)
        for ip in node_ips:
            virtual(ip, port.node_port, "NodePort", external)
    if svc.health_check_node_port and local_ext:
        _add(sets, "KUBE-HEALTH-CHECK-NODE-PORT", str(svc.health_check_node_port))


def _virtual(
    out: IpvsSync,
    proto: Proto,
    scheduler: str,
    affinity: int | None,
    owner: str,
    ip: IPv4Address,
    port: int,
    how: str,
    servers: tuple[RealServer, ...],
) -> None:
    """syncService: one virtual server, persistent (-p) for ClientIP session affinity."""
    out.services.append(
        VirtualServer(
            proto, ip, port, scheduler, affinity, real_servers=servers, owner=owner, how=how
        )
    )


def bound_interfaces(cluster: Cluster, node: Node) -> tuple[IPv4Interface, ...]:
    """The addresses kube-proxy binds to `kube-ipvs0` on `node` (syncService's bindAddr), each
    as the /32 `ip addr show kube-ipvs0` lists: every ClusterIP, and the external and
    load-balancer IPs that no other interface has."""
    candidates = bind_candidates(cluster)
    own = set(node_addresses(node))
    if own.isdisjoint(candidates.external):
        return candidates.everywhere  # what most nodes bind: every candidate
    found: dict[IPv4Interface, None] = {}
    for bound, external in candidates.ordered:
        if not external or bound.ip not in own:
            found[bound] = None
    return tuple(found)


@dataclass(frozen=True)
class BindCandidates:
    """What syncService binds to kube-ipvs0 on some node, found once per cluster."""

    ordered: tuple[tuple[IPv4Interface, bool], ...]
    """Each address in sync's order, and whether it is an external or load-balancer IP
    (bound only where no other interface has it), each a /32."""
    external: frozenset[IPv4Address]
    """The external and load-balancer IPs among them."""
    everywhere: tuple[IPv4Interface, ...]
    """All of them, each once: what a node that has none of the external IPs binds."""


def _bind_candidates(cluster: Cluster) -> BindCandidates:
    found: list[tuple[IPv4Interface, bool]] = []
    for svc in sorted(proxied_services(cluster), key=lambda s: s.key):
        if not svc.ports or svc.cluster_ip is None:
            continue
        found.append((IPv4Interface((int(svc.cluster_ip), 32)), False))
        found.extend(
            (IPv4Interface((int(ip), 32)), True)
            for ip in (*svc.external_ips, *svc.load_balancer_ips)
        )
    return BindCandidates(
        tuple(found),
        frozenset(bound.ip for bound, external in found if external),
        tuple(dict.fromkeys(bound for bound, _ in found)),
    )


bind_candidates = PerCluster(_bind_candidates)
"""The addresses syncService may bind on a node: the same for every node but for the
external IPs a node has itself, so found once per cluster (each /32 made from the
integer, not parsed)."""


def _bind(out: IpvsSync, ip: IPv4Address) -> None:
    out.bound.setdefault(ip, None)


def _node_port_sets(
    sets: dict[str, dict[str, None]],
    port: ServicePort,
    node_ips: tuple[IPv4Address, ...],
    local: bool,
) -> None:
    proto = port.protocol.value
    if port.protocol is Proto.SCTP:
        entries = [f"{ip},sctp:{port.node_port}" for ip in node_ips]
        names = ("KUBE-NODE-PORT-SCTP-HASH", "KUBE-NODE-PORT-LOCAL-SCTP-HASH")
    else:
        entries = [str(port.node_port)]
        upper = proto.upper()
        names = (f"KUBE-NODE-PORT-{upper}", f"KUBE-NODE-PORT-LOCAL-{upper}")
    for entry in entries:
        _add(sets, names[0], entry)
        if local:
            _add(sets, names[1], entry)


def _real_servers(
    view: NodeView,
    endpoints: tuple[KPEndpoint, ...],
    svc: Service,
    port: ServicePort,
    only_local: bool,
) -> tuple[RealServer, ...]:
    """syncEndpoint: the port's endpoints this virtual server gets, weight 1 each."""
    cat = categorize(endpoints, svc, port)
    endpoints = cat.cluster
    if only_local and cat.local:
        endpoints = cat.local
    made = view.servers
    found: list[RealServer] = []
    for ep in endpoints:
        server = made.get(ep.addr)
        if server is None:
            server = made[ep.addr] = RealServer(IPv4Address(ep.ip), ep.port)
        found.append(server)
    return tuple(found)


def _q(text: str) -> str:
    return f'"{text}"'


def write_iptables(out: IpvsSync, cluster: Cluster, filled: Collection[str]) -> None:
    """writeIptablesRules, in its order, appended to `out`'s rules; `filled` names the sets
    with members (a rule matching a set is written only while the set has some)."""
    kp = cluster.kube_proxy
    sets = {name: name in filled for name, _, _ in IPSETS}
    mark = f"0x{masquerade_mark(cluster):x}"
    nat, flt = out.nat, out.filter
    nat.append(("-A", ipt.KUBE_SERVICES, "-s", "127.0.0.0/8", "-j", "RETURN"))
    for name, table, src, dst, match, proto in _SET_RULES:
        if not sets[name]:
            continue
        rule: Tokens = ("-A", src, *(("-p", proto) if proto else ()))
        rule += ("-m", "comment", "--comment", _q(_COMMENT[name]))
        rule += ("-m", "set", "--match-set", name, match, "-j", dst)
        (flt if table == "filter" else nat).append(rule)
    if sets["KUBE-CLUSTER-IP"]:
        base: Tokens = ("-A", ipt.KUBE_SERVICES, "-m", "comment", "--comment")
        base += (_q(_COMMENT["KUBE-CLUSTER-IP"]), "-m", "set", "--match-set", "KUBE-CLUSTER-IP")
        if kp.masquerade_all:
            nat.append((*base, "dst,dst", "-j", ipt.KUBE_MARK_MASQ))
        elif kp.cluster_cidr is not None:
            # Off-cluster sources reaching a ClusterIP (a static route to any node).
            nat.append(
                (*base, "dst,dst", "!", "-s", str(kp.cluster_cidr), "-j", ipt.KUBE_MARK_MASQ)
            )
        else:
            # The node's own connections to a VIP leave from the VIP itself (it is on
            # kube-ipvs0): masquerade by source.
            nat.append((*base, "src,dst", "-j", ipt.KUBE_MARK_MASQ))
    for name, masquerade in (("KUBE-EXTERNAL-IP", True), ("KUBE-EXTERNAL-IP-LOCAL", False)):
        if not sets[name]:
            continue
        base = ("-A", ipt.KUBE_SERVICES, "-m", "comment", "--comment", _q(_COMMENT[name]))
        base += ("-m", "set", "--match-set", name, "dst,dst")
        if masquerade:
            nat.append((*base, "-j", ipt.KUBE_MARK_MASQ))
        # Off-machine traffic (not from a bridge port nor a local address) is accepted, and
        # so is traffic to an external IP that is one of the node's.
        nat.append(
            (*base, "-m", "physdev", "!", "--physdev-is-in", "-m", "addrtype", "!",
             "--src-type", "LOCAL", "-j", "ACCEPT")
        )  # fmt: skip
        nat.append((*base, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "ACCEPT"))
    nat.append(("-A", ipt.KUBE_SERVICES, "-m", "addrtype", "--dst-type", "LOCAL", "-j",
                KUBE_NODE_PORT))  # fmt: skip
    nat.append(("-A", KUBE_LOAD_BALANCER, "-j", ipt.KUBE_MARK_MASQ))
    flt.append(("-A", KUBE_SOURCE_RANGES_FIREWALL, "-j", "DROP"))
    # acceptIPVSTraffic: written after the out-filter rules, at the end of KUBE-SERVICES.
    for name in ("KUBE-CLUSTER-IP", "KUBE-LOAD-BALANCER"):
        if sets[name]:
            nat.append(("-A", ipt.KUBE_SERVICES, "-m", "set", "--match-set", name, "dst,dst",
                        "-j", "ACCEPT"))  # fmt: skip
    fwd = ("-A", ipt.KUBE_FORWARD, "-m", "comment", "--comment")
    flt.append((*fwd, _q("kubernetes forwarding rules"), "-m", "mark", "--mark",
                f"{mark}/{mark}", "-j", "ACCEPT"))  # fmt: skip
    flt.append((*fwd, _q("kubernetes forwarding conntrack rule"), "-m", "conntrack",
                "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"))  # fmt: skip
    flt.append(
        ("-A", KUBE_NODE_PORT, "-m", "comment", "--comment",
         _q(_COMMENT["KUBE-HEALTH-CHECK-NODE-PORT"]), "-m", "set", "--match-set",
         "KUBE-HEALTH-CHECK-NODE-PORT", "dst", "-j", "ACCEPT")
    )  # fmt: skip
    # Ports of the host must not answer on the Service addresses (kubernetes#72236).
    for name, match in (
        ("KUBE-LOAD-BALANCER", "dst,dst"),
        ("KUBE-CLUSTER-IP", "dst,dst"),
        ("KUBE-EXTERNAL-IP", "dst,dst"),
        ("KUBE-EXTERNAL-IP-LOCAL", "dst,dst"),
        ("KUBE-HEALTH-CHECK-NODE-PORT", "dst"),
    ):
        flt.append(("-A", KUBE_IPVS_FILTER, "-m", "set", "--match-set", name, match, "-j",
                    "RETURN"))  # fmt: skip
    flt.append(("-A", KUBE_IPVS_FILTER, "-m", "conntrack", "--ctstate", "NEW", "-m", "set",
                "--match-set", "KUBE-IPVS-IPS", "dst", "-j", "REJECT"))  # fmt: skip
    nat.append(("-A", ipt.KUBE_POSTROUTING, "-m", "mark", "!", "--mark", f"{mark}/{mark}",
                "-j", "RETURN"))  # fmt: skip
    nat.append(("-A", ipt.KUBE_POSTROUTING, "-j", "MARK", "--xor-mark", mark))
    nat.append(("-A", ipt.KUBE_POSTROUTING, "-m", "comment", "--comment",
                _q("kubernetes service traffic requiring SNAT"), "-j", "MASQUERADE",
                "--random-fully"))  # fmt: skip
    nat.append(("-A", ipt.KUBE_MARK_MASQ, "-j", "MARK", "--or-mark", mark))
