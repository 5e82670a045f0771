"""kube-proxy's nftables syncProxyRules: the transaction it hands `nft -f`, and what it leaves.

A model of Kubernetes 1.31 pkg/proxy/nftables/proxier.go (setupNFTables and
syncProxyRules), for the first full sync on a node that had no `kube-proxy`
table. Each operation is kept twice: as knftables writes it into the
transaction (`add rule ip kube-proxy services ip daddr . meta l4proto . th
dport vmap @service-ips`) and as its effect on the table, which `listing`
prints as `nft list table ip kube-proxy` does (nft 1.0.6; the lab loads the
transaction into a real kernel and compares the two).

Where kube-proxy walks a Go map (Services, ServiceCIDRs) the order is
random on a real node; here Service ports are sorted by `namespace/name:port`
and CIDRs by address. The listing does not depend on that order (nft sorts
set elements; chains come in creation order, which follows the Service
order as kube-proxy's does).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from model.cluster import Cluster, Node, Service, ServicePort
from sim.proxy.endpoints import (
    Categorized,
    KPEndpoint,
    categorize,
    external_policy_local,
    externally_accessible,
    internal_policy_local,
    port_endpoints,
)
from sim.proxy.iptables.names import service_port_name
from sim.proxy.iptables.sync import masquerade_mark, proxied_services
from sim.proxy.nftables import names as n
from sim.readers.nft_listing import base_chain_header, chain_block, set_block, table_text

__all__ = [
    "BASE_CHAINS",
    "PORT_SETS",
    "PortShape",
    "SyncPort",
    "Transaction",
    "local_cidr",
    "port_shape",
    "setup",
    "sync",
    "sync_ports",
    "write_port",
]

FAMILY = "ip"
_ADDR = "ipv4_addr"
_SERVICE_KEY = (_ADDR, "inet_proto", "inet_service")
_NODEPORT_KEY = ("inet_proto", "inet_service")
_NO_LOCALHOST = "ip daddr != 127.0.0.0/8"

BASE_CHAINS: tuple[tuple[str, str, str, int], ...] = (
    # The filter chains must see the destination before DNAT (dstnat - 10),
    # except the one that checks ClusterIPs after DNAT at output (dstnat + 10).
    (n.FILTER_PREROUTING, "filter", "prerouting", -110),
    (n.FILTER_INPUT, "filter", "input", -110),
    (n.FILTER_FORWARD, "filter", "forward", -110),
    (n.FILTER_OUTPUT, "filter", "output", -110),
    (n.FILTER_OUTPUT_POST_DNAT, "filter", "output", -90),
    (n.NAT_PREROUTING, "nat", "prerouting", -100),
    (n.NAT_OUTPUT, "nat", "output", -100),
    (n.NAT_POSTROUTING, "nat", "postrouting", 100),
)
"""kube-proxy's base chains: name, type, hook, priority (knftables writes numbers)."""

_JUMPS: tuple[tuple[str, str, str], ...] = (
    # reject is only valid at input, forward and output on kernels before 5.9,
    # so the endpoints checks are not at prerouting.
    (n.NODEPORT_ENDPOINTS_CHECK, n.FILTER_INPUT, "ct state new"),
    (n.SERVICE_ENDPOINTS_CHECK, n.FILTER_INPUT, "ct state new"),
    (n.SERVICE_ENDPOINTS_CHECK, n.FILTER_FORWARD, "ct state new"),
    (n.SERVICE_ENDPOINTS_CHECK, n.FILTER_OUTPUT, "ct state new"),
    (n.FIREWALL_CHECK, n.FILTER_PREROUTING, "ct state new"),
    (n.FIREWALL_CHECK, n.FILTER_OUTPUT, "ct state new"),
    (n.SERVICES, n.NAT_OUTPUT, ""),
    (n.SERVICES, n.NAT_PREROUTING, ""),
    (n.MASQUERADING, n.NAT_POSTROUTING, ""),
    (n.CLUSTER_IPS_CHECK, n.FILTER_FORWARD, "ct state new"),
    (n.CLUSTER_IPS_CHECK, n.FILTER_OUTPUT_POST_DNAT, "ct state new"),
)
"""nftablesJumpChains: the regular chain, the base chain that jumps to it, and how."""


PORT_SETS = (
    n.CLUSTER_IPS,
    n.SERVICE_IPS,
    n.FIREWALL_IPS,
    n.NO_ENDPOINT_SERVICES,
    n.NO_ENDPOINT_NODEPORTS,
    n.SERVICE_NODEPORTS,
)
"""The sets and maps every Service port adds its elements to (rebuilt whole on each sync)."""


@dataclass
class _Chain:
    header: str | None = None
    comment: str | None = None
    rules: list[str] = field(default_factory=list)


@dataclass
class _Set:
    is_map: bool
    key_type: tuple[str, ...]
    data_type: str | None = None
    flags: tuple[str, ...] = ()
    timeout: int | None = None
    comment: str | None = None
    updated: bool = False
    elements: dict[tuple[str, ...], tuple[str | None, str | None]] = field(default_factory=dict)

    @property
    def size(self) -> int | None:
        """The size `nft list` prints: nft gives a set that rules fill from the packet path
        its default size."""
        return 65535 if self.updated else None


@dataclass
class Transaction:
    """One `nft -f` transaction on `ip kube-proxy`, and the table it leaves."""

    script: bool = True
    """Keep the commands and the owners; the listing alone needs neither (a big node
    makes some 800,000 commands, which only `nft -f` and the lab read)."""
    ops: list[str] = field(default_factory=list)
    """The transaction, one command a line, as knftables writes it (when `script`)."""
    comment: str | None = None
    chains: dict[str, _Chain] = field(default_factory=dict)
    sets: dict[str, _Set] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    """Per-service chain (and affinity set) → the Service port, or `port -> endpoint`
    (when `script`)."""

    _head: str = f"{FAMILY} {n.TABLE}"

    # --- operations -------------------------------------------------------

    def add_table(self, comment: str) -> None:
        if self.script:
            self.ops.append(f'add table {self._head} {{ comment "{comment}" ; }}')
        self.comment = comment

    def add_chain(
        self, name: str, *, base: tuple[str, str, int] | None = None, comment: str | None = None
    ) -> None:
        if self.script:
            spec = ""
            if base is not None:
                spec = f" {{ type {base[0]} hook {base[1]} priority {base[2]} ; }}"
            elif comment is not None:
                spec = f' {{ comment "{comment}" ; }}'
            self.ops.append(f"add chain {self._head} {name}{spec}")
        chain = self.chains.get(name)
        if chain is None:
            chain = self.chains[name] = _Chain()
        if base is not None:
            chain.header = base_chain_header(*base)
        if comment is not None:
            chain.comment = comment

    def new_chain(self, name: str) -> list[str]:
        """`add chain` then `flush chain` of a regular chain: its (now empty) rules."""
        if self.script:
            self.ops.append(f"add chain {self._head} {name}")
            self.ops.append(f"flush chain {self._head} {name}")
        chain = self.chains.get(name)
        if chain is None:
            chain = self.chains[name] = _Chain()
        else:
            chain.rules.clear()
        return chain.rules

    def flush_chain(self, name: str) -> None:
        if self.script:
            self.ops.append(f"flush chain {self._head} {name}")
        self.chains[name].rules.clear()

    def delete_chain(self, name: str) -> None:
        if self.script:
            self.ops.append(f"delete chain {self._head} {name}")
        del self.chains[name]

    def add_rule(
        self, chain: str, rule: str, *, listed: str | None = None, comment: str | None = None
    ) -> None:
        """Append `rule`; `listed` is how `nft list` prints it back, when that differs."""
        if comment is None:
            if self.script:
                self.ops.append(f"add rule {self._head} {chain} {rule}")
            self.chains[chain].rules.append(listed or rule)
        else:
            tail = f' comment "{comment}"'
            if self.script:
                self.ops.append(f"add rule {self._head} {chain} {rule}{tail}")
            self.chains[chain].rules.append((listed or rule) + tail)
        if rule.startswith("update @"):
            self.sets[rule.split()[1][1:]].updated = True

    def add_set(
        self,
        name: str,
        key_type: tuple[str, ...],
        *,
        flags: tuple[str, ...] = (),
        timeout: int | None = None,
        comment: str | None = None,
    ) -> None:
        if self.script:
            self.ops.append(
                f"add set {self._head} {name} {_props(key_type, None, flags, timeout, comment)}"
            )
        if name not in self.sets:
            self.sets[name] = _Set(False, key_type, None, flags, timeout, comment)

    def add_map(self, name: str, key_type: tuple[str, ...], data_type: str, comment: str) -> None:
        if self.script:
            self.ops.append(
                f"add map {self._head} {name} {_props(key_type, data_type, (), None, comment)}"
            )
        if name not in self.sets:
            self.sets[name] = _Set(True, key_type, data_type, comment=comment)

    def flush_set(self, name: str) -> None:
        if self.script:
            kind = "map" if self.sets[name].is_map else "set"
            self.ops.append(f"flush {kind} {self._head} {name}")
        self.sets[name].elements.clear()

    def delete_set(self, name: str) -> None:
        if self.script:
            self.ops.append(f"delete set {self._head} {name}")
        del self.sets[name]

    def add_element(
        self,
        name: str,
        key: tuple[str, ...],
        value: str | None = None,
        comment: str | None = None,
    ) -> None:
        if self.script:
            text = " . ".join(key)
            if comment is not None:
                text += f' comment "{comment}"'
            if value is not None:
                text += f" : {value}"
            self.ops.append(f"add element {self._head} {name} {{ {text} }}")
        # Adding an element that is there already changes nothing.
        self.sets[name].elements.setdefault(key, (comment, value))

    def own(self, name: str, owner: str) -> None:
        """Record what `name` (a per-service chain or set) serves (when `script`)."""
        if self.script:
            self.owners[name] = owner

    def part(self) -> Transaction:
        """An empty transaction (no commands kept) with this one's sets and maps declared and
        no elements: what one Service port writes into it is that port's part of the table."""
        apart = Transaction(script=False, comment=self.comment)
        apart.sets = {
            name: _Set(s.is_map, s.key_type, s.data_type, s.flags, s.timeout, s.comment)
            for name, s in self.sets.items()
        }
        return apart

    # --- results ------------------------------------------------------------

    def text(self) -> str:
        """The transaction as kube-proxy hands it to `nft -f`."""
        if not self.script:
            raise ValueError("a transaction synced without script=True keeps no commands")
        return "\n".join(self.ops) + "\n"

    def listing(self) -> str:
        """`nft list table ip kube-proxy` after the transaction."""
        blocks = [
            set_block(
                name,
                is_map=s.is_map,
                key_type=s.key_type,
                data_type=s.data_type,
                size=s.size,
                flags=s.flags,
                timeout=s.timeout,
                comment=s.comment,
                elements=((k, c, v) for k, (c, v) in s.elements.items()),
            )
            for name, s in self.sets.items()
        ]
        blocks += [
            chain_block(name, c.header, c.comment, c.rules) for name, c in self.chains.items()
        ]
        return table_text(FAMILY, n.TABLE, self.comment, blocks)


def _props(
    key_type: Sequence[str],
    data_type: str | None,
    flags: Sequence[str],
    timeout: int | None,
    comment: str | None,
) -> str:
    parts = [f"type {' . '.join(key_type)}" + (f" : {data_type}" if data_type else "")]
    if flags:
        parts.append(f"flags {','.join(flags)}")
    if timeout is not None:
        parts.append(f"timeout {timeout}s")
    if comment is not None:
        parts.append(f'comment "{comment}"')
    return "{ " + " ; ".join(parts) + " ; }"


def _go_mark(value: int) -> str:
    # fmt.Sprintf("%#08x", v): 0x00004000.
    return f"0x{value:08x}"


def _address_set(cidrs: Iterable[str]) -> str:
    """`{ a , b }` as nft lists it back: one value bare, several merged and sorted."""
    written = list(cidrs)
    spans = sorted(
        (int(net.network_address), int(net.broadcast_address))
        for net in (ipaddress.IPv4Network(c, strict=False) for c in written)
    )
    merged: list[list[int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    listed = ", ".join(_span_text(lo, hi) for lo, hi in merged)
    # One value written is listed bare (a /32 as the address); several stay a set.
    return listed if len(written) == 1 else "{ " + listed + " }"


def _span_text(lo: int, hi: int) -> str:
    if lo == hi:
        return str(ipaddress.IPv4Address(lo))
    size = hi - lo + 1
    if size & (size - 1) == 0 and lo % size == 0:
        return f"{ipaddress.IPv4Address(lo)}/{32 - size.bit_length() + 1}"
    return f"{ipaddress.IPv4Address(lo)}-{ipaddress.IPv4Address(hi)}"


@dataclass(frozen=True)
class SyncPort:
    """One Service port as syncProxyRules writes it."""

    name: str
    """`ns/svc:port`, kube-proxy's ServicePortName string."""
    service: Service
    """Its Service."""
    port: ServicePort
    """The port."""
    protocol: str
    """`tcp`, `udp`, `sctp`."""

    @functools.cached_property
    def base(self) -> str:
        """`HASH-ns/svc/proto/port` (hashed when first asked: a trace writes a few ports of
        thousands)."""
        svc = self.service
        return n.service_port_base(svc.namespace, svc.name, self.protocol, self.port.name)


def _endpoint_base(p: SyncPort, ep: KPEndpoint) -> str:
    """`HASH-ns/svc/proto/port__ip/port`: an endpoint's chain and affinity set, less the prefix."""
    return n.endpoint_base(p.service.namespace, p.service.name, p.protocol, p.port.name, ep.addr)


def node_port_ips(cluster: Cluster, node: Node) -> tuple[str, ...] | None:
    """The addresses NodePorts answer on (`nodeport-ips`); None for every local address.

    nftables mode defaults `--nodeport-addresses` to `primary`: the node's
    primary IP (its InternalIP), not every local address as iptables mode.
    An explicit list keeps the node addresses inside it, loopback excepted
    (kube-proxy logs that localhost NodePorts are not supported).
    """
    cidrs = cluster.kube_proxy.node_port_addresses
    if not cidrs:
        return (str(node.internal_ip),)
    if any(c.prefixlen == 0 for c in cidrs):
        return None
    addrs = [node.internal_ip]
    if node.pod_cidr is not None:
        addrs.append(node.pod_cidr.network_address + 1)
    return tuple(
        str(a) for a in sorted(set(addrs)) if any(a in c for c in cidrs) and not a.is_loopback
    )


def sync(cluster: Cluster, node: Node, *, script: bool = True) -> Transaction:
    """The transaction kube-proxy (nftables mode, 1.31) runs on `node`, and its result.

    Without `script` only the result is kept (what `listing` prints), not the
    commands nor the chains' owners.
    """
    tx = setup(cluster, node, script=script)
    cidr = local_cidr(cluster)
    for p in sync_ports(cluster):
        write_port(tx, cluster, node, p, cidr)
    return tx


def setup(cluster: Cluster, node: Node, *, script: bool = True) -> Transaction:
    """The part of `sync` before any Service port: the table, its base chains, the chains and
    sets every node has, the fixed rules and the node's NodePort addresses."""
    tx = Transaction(script=script)
    _setup(tx, cluster, _go_mark(masquerade_mark(cluster)), node_port_ips(cluster, node))
    return tx


def local_cidr(cluster: Cluster) -> str | None:
    """The cluster CIDR as a Service port's rules write it (None: not configured)."""
    cidr = cluster.kube_proxy.cluster_cidr
    return str(cidr) if cidr is not None else None


def sync_ports(cluster: Cluster) -> tuple[SyncPort, ...]:
    """Every Service port kube-proxy programs, in the order `sync` writes them."""
    return tuple(
        sorted(
            (
                SyncPort(service_port_name(s, p), s, p, p.protocol.value)
                for s in proxied_services(cluster)
                for p in s.ports
            ),
            key=lambda p: p.name,
        )
    )


def _setup(
    tx: Transaction, cluster: Cluster, mark: str, nodeport_ips: tuple[str, ...] | None
) -> None:
    """setupNFTables: the table, base chains, top-level chains and their fixed rules."""
    tx.add_table("rules for kube-proxy")
    # The first sync after kube-proxy starts recreates the base chains, so a
    # changed priority takes effect (add, then delete, then add anew).
    for name, *_ in BASE_CHAINS:
        tx.add_chain(name)
        tx.delete_chain(name)
    for name, chain_type, hook, priority in BASE_CHAINS:
        tx.add_chain(name, base=(chain_type, hook, priority))
        tx.flush_chain(name)
    created: set[str] = set()

    def ensure(name: str) -> None:
        if name not in created:
            created.add(name)
            tx.add_chain(name)
            tx.flush_chain(name)

    for dst, src, extra in _JUMPS:
        ensure(dst)
        tx.add_rule(src, f"{extra} jump {dst}".strip())
    for name in (n.SERVICES, n.CLUSTER_IPS_CHECK, n.MASQUERADING, n.MARK_MASQ):
        ensure(name)

    tx.add_rule(n.MARK_MASQ, f"mark set mark or {mark}", listed=f"meta mark set meta mark | {mark}")
    tx.add_rule(
        n.MASQUERADING,
        f"mark and {mark} == 0 return",
        listed=f"meta mark & {mark} == 0x00000000 return",
    )
    tx.add_rule(
        n.MASQUERADING, f"mark set mark xor {mark}", listed=f"meta mark set meta mark ^ {mark}"
    )
    tx.add_rule(n.MASQUERADING, "masquerade fully-random")

    tx.add_set(n.CLUSTER_IPS, (_ADDR,), comment="Active ClusterIPs")
    tx.add_rule(
        n.CLUSTER_IPS_CHECK,
        f"ip daddr @{n.CLUSTER_IPS} reject",
        comment="Reject traffic to invalid ports of ClusterIPs",
    )
    # Only with ServiceCIDR objects (MultiCIDRServiceAllocator) does kube-proxy
    # 1.31 know the Service range, and only then drops the rest of it.
    cidrs = sorted(cluster.service_cidrs, key=lambda c: (int(c.network_address), c.prefixlen))
    if cidrs:
        joined = ",".join(str(c) for c in cidrs)
        tx.add_rule(
            n.CLUSTER_IPS_CHECK,
            f"ip daddr {{ {joined} }} drop",
            listed=f"ip daddr {_address_set(str(c) for c in cidrs)} drop",
            comment="Drop traffic to unallocated ClusterIPs",
        )

    tx.add_set(n.NODEPORT_IPS, (_ADDR,), comment="IPs that accept NodePort traffic")
    if nodeport_ips is None:
        tx.delete_set(n.NODEPORT_IPS)
    else:
        tx.flush_set(n.NODEPORT_IPS)
        for ip in nodeport_ips:
            tx.add_element(n.NODEPORT_IPS, (ip,))

    tx.add_map(
        n.NO_ENDPOINT_SERVICES,
        _SERVICE_KEY,
        "verdict",
        "vmap to drop or reject packets to services with no endpoints",
    )
    tx.add_map(
        n.NO_ENDPOINT_NODEPORTS,
        _NODEPORT_KEY,
        "verdict",
        "vmap to drop or reject packets to service nodeports with no endpoints",
    )
    tx.add_chain(
        n.REJECT_CHAIN, comment="helper for @no-endpoint-services / @no-endpoint-nodeports"
    )
    tx.flush_chain(n.REJECT_CHAIN)
    tx.add_rule(n.REJECT_CHAIN, "reject")
    tx.add_rule(
        n.SERVICE_ENDPOINTS_CHECK,
        f"ip daddr . meta l4proto . th dport vmap @{n.NO_ENDPOINT_SERVICES}",
    )
    nodeport_match = _NO_LOCALHOST if nodeport_ips is None else f"ip daddr @{n.NODEPORT_IPS}"
    tx.add_rule(
        n.NODEPORT_ENDPOINTS_CHECK,
        f"{nodeport_match} meta l4proto . th dport vmap @{n.NO_ENDPOINT_NODEPORTS}",
    )

    tx.add_map(
        n.FIREWALL_IPS,
        _SERVICE_KEY,
        "verdict",
        "destinations that are subject to LoadBalancerSourceRanges",
    )
    ensure(n.FIREWALL_CHECK)
    tx.add_rule(n.FIREWALL_CHECK, f"ip daddr . meta l4proto . th dport vmap @{n.FIREWALL_IPS}")

    tx.add_map(
        n.SERVICE_IPS, _SERVICE_KEY, "verdict", "ClusterIP, ExternalIP and LoadBalancer IP traffic"
    )
    tx.add_map(n.SERVICE_NODEPORTS, _NODEPORT_KEY, "verdict", "NodePort traffic")
    tx.add_rule(n.SERVICES, f"ip daddr . meta l4proto . th dport vmap @{n.SERVICE_IPS}")
    if nodeport_ips is None:
        tx.add_rule(
            n.SERVICES,
            f"fib daddr type local {_NO_LOCALHOST} meta l4proto . th dport vmap"
            f" @{n.SERVICE_NODEPORTS}",
        )
    else:
        tx.add_rule(
            n.SERVICES,
            f"ip daddr @{n.NODEPORT_IPS} meta l4proto . th dport vmap @{n.SERVICE_NODEPORTS}",
        )

    # Sets and maps are rebuilt whole on every full sync.
    for name in PORT_SETS:
        tx.flush_set(name)


def write_port(
    tx: Transaction, cluster: Cluster, node: Node, p: SyncPort, local_cidr: str | None
) -> None:
    """One Service port's elements, chains and rules, in syncProxyRules' order.

    It adds elements only to `PORT_SETS` and rules only to the chains it makes
    (the port's own and its endpoints'), and declares only its endpoints'
    affinity sets: a port's part of the table is what it writes into
    `Transaction.part`.
    """
    svc, port, proto = p.service, p.port, p.protocol
    kp = cluster.kube_proxy
    cat = categorize(port_endpoints(cluster, svc, port, node.name), svc, port)
    created: set[str] = set()

    def ensure(name: str, owner: str) -> None:
        if name not in created:
            created.add(name)
            tx.new_chain(name)
            tx.own(name, owner)

    # Each endpoint's name is hashed once, for its chain, its affinity set and the jumps.
    bases = {ep.addr: _endpoint_base(p, ep) for ep in cat.reachable}
    for ep in cat.reachable:
        name = n.ENDPOINT_PREFIX + bases[ep.addr]
        if name not in created:
            created.add(name)
            tx.new_chain(name)
            if tx.script:
                tx.owners[name] = f"{p.name} -> {ep}"

    cluster_chain = n.CLUSTER_PREFIX + p.base
    uses_cluster = bool(cat.cluster)
    if uses_cluster:
        ensure(cluster_chain, p.name)
    local_chain = n.LOCAL_PREFIX + p.base
    uses_local = bool(cat.local)
    if uses_local:
        ensure(local_chain, p.name)

    internal_chain, has_internal = cluster_chain, cat.has_any
    if internal_policy_local(svc):
        internal_chain, has_internal = local_chain, cat.has_any and bool(cat.local)
    external_policy_chain, has_external = cluster_chain, cat.has_any
    if external_policy_local(svc):
        external_policy_chain, has_external = local_chain, cat.has_any and bool(cat.local)
    external_chain = n.EXTERNAL_PREFIX + p.base
    # Even without external endpoints the external chain keeps the
    # short-circuit rules for traffic from pods and from the node.
    uses_external = cat.has_any and externally_accessible(svc, port)
    if uses_external:
        ensure(external_chain, p.name)

    internal_verdict = external_verdict = ""
    if not cat.has_any:
        internal_verdict = external_verdict = f"goto {n.REJECT_CHAIN}"
    else:
        if not has_internal:
            internal_verdict = "drop"
        if not has_external:
            external_verdict = "drop"

    key = (str(svc.cluster_ip), proto, str(port.port))
    tx.add_element(n.CLUSTER_IPS, (str(svc.cluster_ip),))
    if has_internal:
        tx.add_element(n.SERVICE_IPS, key, f"goto {internal_chain}")
    else:
        tx.add_element(n.NO_ENDPOINT_SERVICES, key, internal_verdict, p.name)

    for eip in svc.external_ips:
        ekey = (str(eip), proto, str(port.port))
        if cat.has_any:
            tx.add_element(n.SERVICE_IPS, ekey, f"goto {external_chain}")
        if not has_external:
            tx.add_element(n.NO_ENDPOINT_SERVICES, ekey, external_verdict, p.name)

    lb_ips = [str(ip) for ip in svc.load_balancer_ips]
    uses_firewall = bool(lb_ips) and bool(svc.load_balancer_source_ranges)
    firewall_chain = n.FIREWALL_PREFIX + p.base
    if uses_firewall:
        ensure(firewall_chain, p.name)
    for lbip in lb_ips:
        lkey = (lbip, proto, str(port.port))
        if cat.has_any:
            tx.add_element(n.SERVICE_IPS, lkey, f"goto {external_chain}")
        if uses_firewall:
            tx.add_element(n.FIREWALL_IPS, lkey, f"goto {firewall_chain}")
    if not has_external:
        for lbip in lb_ips:
            tx.add_element(
                n.NO_ENDPOINT_SERVICES, (lbip, proto, str(port.port)), external_verdict, p.name
            )

    if port.node_port:
        nkey = (proto, str(port.node_port))
        # NodePorts are not subject to loadBalancerSourceRanges.
        if cat.has_any:
            tx.add_element(n.SERVICE_NODEPORTS, nkey, f"goto {external_chain}")
        if not has_external:
            tx.add_element(n.NO_ENDPOINT_NODEPORTS, nkey, external_verdict, p.name)

    to_cluster_ip = f"ip daddr {svc.cluster_ip} {proto} dport {port.port}"
    if has_internal:
        if kp.masquerade_all:
            tx.add_rule(internal_chain, f"{to_cluster_ip} jump {n.MARK_MASQ}")
        elif local_cidr is not None:
            # Off-cluster sources reaching a ClusterIP (a static route to any
            # node) are masqueraded so that replies come back here.
            tx.add_rule(
                internal_chain, f"{to_cluster_ip} ip saddr != {local_cidr} jump {n.MARK_MASQ}"
            )

    if uses_external:
        if not external_policy_local(svc):
            # Endpoints may be on other nodes: masquerade so replies return here.
            tx.add_rule(external_chain, f"jump {n.MARK_MASQ}")
        else:
            if local_cidr is not None:
                # Pods reaching an external address act as if they went out to
                # the load balancer and back in: no traffic policy.
                tx.add_rule(
                    external_chain,
                    f"ip saddr {local_cidr} goto {cluster_chain}",
                    comment="short-circuit pod traffic",
                )
            # The node's own traffic has a local source, which the endpoint
            # could not answer; masquerade it, and send it to any endpoint.
            tx.add_rule(
                external_chain,
                f"fib saddr type local jump {n.MARK_MASQ}",
                comment="masquerade local traffic",
            )
            tx.add_rule(
                external_chain,
                f"fib saddr type local goto {cluster_chain}",
                comment="short-circuit local traffic",
            )
        if has_external:
            tx.add_rule(external_chain, f"goto {external_policy_chain}")

    if uses_firewall:
        sources = [str(c) for c in svc.load_balancer_source_ranges]
        # A VIP-style LB IP is often local to the node, so the node's own
        # requests arrive with the LB IP as their source.
        if any(node.internal_ip in c for c in svc.load_balancer_source_ranges):
            sources += lb_ips
        tx.add_rule(
            firewall_chain,
            f"ip saddr != {{ {' , '.join(sources)} }} drop",
            listed=f"ip saddr != {_address_set(sources)} drop",
        )

    affinity = svc.session_affinity_timeout
    if affinity is not None:
        for ep in cat.reachable:
            name = n.AFFINITY_PREFIX + bases[ep.addr]
            tx.add_set(name, (_ADDR,), flags=("dynamic", "timeout"), timeout=affinity)
            tx.own(name, f"{p.name} -> {ep}")

    if uses_cluster:
        _endpoint_rules(tx, p, bases, cluster_chain, cat.cluster, affinity is not None)
    if uses_local:
        _endpoint_rules(tx, p, bases, local_chain, cat.local, affinity is not None)

    dnat = f"meta l4proto {proto} dnat to "
    for ep in cat.reachable:
        base = bases[ep.addr]
        chain = n.ENDPOINT_PREFIX + base
        # Hairpin: a pod reaching itself through its Service must be
        # masqueraded, or its reply would skip the reverse DNAT.
        tx.add_rule(chain, f"ip saddr {ep.ip} jump {n.MARK_MASQ}")
        if affinity is not None:
            tx.add_rule(chain, f"update @{n.AFFINITY_PREFIX}{base} {{ ip saddr }}")
        tx.add_rule(chain, dnat + ep.addr)


@dataclass(frozen=True)
class PortShape:
    """What `write_port` makes of one Service port, counted, not written: where a listing
    of a big node finds each port's part without rendering every port."""

    chains: tuple[tuple[str, int], ...]
    """The chains it makes, in the order it makes them, with how many rules each holds."""
    affinity_sets: tuple[str, ...]
    """The affinity sets it declares, in order."""
    elements: tuple[tuple[str, tuple[str, ...], str | None, str | None], ...]
    """The elements it adds to the shared maps: (map, key, comment, value), in order."""


def port_shape(
    cluster: Cluster, node: Node, p: SyncPort, local_cidr: str | None, cat: Categorized
) -> PortShape:
    """`write_port`'s chains, affinity sets and shared elements for port `p` whose endpoints
    on `node` are `cat`, with each chain's rule count (tests hold it to `write_port`)."""
    svc, port, proto = p.service, p.port, p.protocol
    affinity = svc.session_affinity_timeout is not None
    rules: dict[str, int] = {}
    bases = {ep.addr: _endpoint_base(p, ep) for ep in cat.reachable}
    for ep in cat.reachable:
        chain = n.ENDPOINT_PREFIX + bases[ep.addr]
        rules[chain] = rules.get(chain, 0) + 2 + int(affinity)  # hairpin, [update], DNAT
    cluster_chain = n.CLUSTER_PREFIX + p.base
    local_chain = n.LOCAL_PREFIX + p.base
    if cat.cluster:
        rules[cluster_chain] = (len(cat.cluster) if affinity else 0) + 1  # lookups, numgen
    if cat.local:
        rules[local_chain] = (len(cat.local) if affinity else 0) + 1
    internal_chain, has_internal = cluster_chain, cat.has_any
    if internal_policy_local(svc):
        internal_chain, has_internal = local_chain, cat.has_any and bool(cat.local)
    has_external = cat.has_any
    external_local = external_policy_local(svc)
    if external_local:
        has_external = cat.has_any and bool(cat.local)
    external_chain = n.EXTERNAL_PREFIX + p.base
    if cat.has_any and externally_accessible(svc, port):
        masq = 1 if not external_local else (1 if local_cidr is not None else 0) + 2
        rules[external_chain] = masq + int(has_external)
    lb_ips = [str(ip) for ip in svc.load_balancer_ips]
    firewall_chain = n.FIREWALL_PREFIX + p.base
    if lb_ips and svc.load_balancer_source_ranges:
        rules[firewall_chain] = 1
    if has_internal and (cluster.kube_proxy.masquerade_all or local_cidr is not None):
        rules[internal_chain] += 1
    # The order write_port makes them in: endpoints', then the port's own.
    order = [n.ENDPOINT_PREFIX + bases[ep.addr] for ep in cat.reachable]
    order += [cluster_chain, local_chain, external_chain, firewall_chain]
    chains = tuple((name, rules[name]) for name in dict.fromkeys(order) if name in rules)
    sets = tuple(dict.fromkeys(n.AFFINITY_PREFIX + bases[ep.addr] for ep in cat.reachable))

    verdict = "" if cat.has_any else f"goto {n.REJECT_CHAIN}"
    internal = verdict or ("" if has_internal else "drop")
    external = verdict or ("" if has_external else "drop")
    key = (str(svc.cluster_ip), proto, str(port.port))
    elements: list[tuple[str, tuple[str, ...], str | None, str | None]] = [
        (n.CLUSTER_IPS, (str(svc.cluster_ip),), None, None)
    ]
    if has_internal:
        elements.append((n.SERVICE_IPS, key, None, f"goto {internal_chain}"))
    else:
        elements.append((n.NO_ENDPOINT_SERVICES, key, p.name, internal))
    for eip in svc.external_ips:
        ekey = (str(eip), proto, str(port.port))
        if cat.has_any:
            elements.append((n.SERVICE_IPS, ekey, None, f"goto {external_chain}"))
        if not has_external:
            elements.append((n.NO_ENDPOINT_SERVICES, ekey, p.name, external))
    for lbip in lb_ips:
        lkey = (lbip, proto, str(port.port))
        if cat.has_any:
            elements.append((n.SERVICE_IPS, lkey, None, f"goto {external_chain}"))
        if firewall_chain in rules:
            elements.append((n.FIREWALL_IPS, lkey, None, f"goto {firewall_chain}"))
    if not has_external:
        for lbip in lb_ips:
            elements.append(
                (n.NO_ENDPOINT_SERVICES, (lbip, proto, str(port.port)), p.name, external)
            )
    if port.node_port:
        nkey = (proto, str(port.node_port))
        if cat.has_any:
            elements.append((n.SERVICE_NODEPORTS, nkey, None, f"goto {external_chain}"))
        if not has_external:
            elements.append((n.NO_ENDPOINT_NODEPORTS, nkey, p.name, external))
    return PortShape(chains, sets if affinity else (), tuple(elements))


def _endpoint_rules(
    tx: Transaction,
    p: SyncPort,
    bases: dict[str, str],
    chain: str,
    endpoints: tuple[KPEndpoint, ...],
    affinity: bool,
) -> None:
    """writeServiceToEndpointRules: affinity lookups, then one numgen over the endpoints."""
    names = [bases.get(ep.addr) or _endpoint_base(p, ep) for ep in endpoints]
    if affinity:
        for base in names:
            tx.add_rule(
                chain, f"ip saddr @{n.AFFINITY_PREFIX}{base} goto {n.ENDPOINT_PREFIX}{base}"
            )
    branches = [f"{i} : goto {n.ENDPOINT_PREFIX}{base}" for i, base in enumerate(names)]
    tx.add_rule(
        chain,
        f"numgen random mod {len(endpoints)} vmap {{ {' , '.join(branches)} }}",
        listed=f"numgen random mod {len(endpoints)} vmap {{ {', '.join(branches)} }}",
    )
