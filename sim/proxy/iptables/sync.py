"""kube-proxy's syncProxyRules: the iptables-restore input it writes for one node.

A line-for-line model of Kubernetes 1.31 pkg/proxy/iptables/proxier.go. Rules are
token tuples in kube-proxy's own argument order (`-A CHAIN -m comment --comment
"…" -m tcp -p tcp -d IP --dport N -j TARGET`), each comment one token carrying
the double quotes kube-proxy puts around it (the per-endpoint ones have none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from model.cluster import Cluster, Node, Service, ServicePort, ServiceType
from sim.proxy.endpoints import (
    Categorized,
    KPEndpoint,
    categorize,
    external_policy_local,
    externally_accessible,
    internal_policy_local,
    port_endpoints,
)
from sim.proxy.iptables import names as n
from sim.proxy.iptables.spelling import kernel_probability, save_string

LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000
"""Above this many endpoints (all service ports together) kube-proxy drops per-endpoint comments."""

CT_STATE_INVALID_COUNTER = "ct_state_invalid_dropped_pkts"
"""nfacct counter on the KUBE-FORWARD INVALID drop rule (kube-proxy metrics, 1.30+)."""
LOCALHOST_NODEPORT_COUNTER = "localhost_nps_accepted_pkts"
"""nfacct counter on the NodePort-on-127.0.0.0/8 rules."""

Tokens = tuple[str, ...]


class Presaved(tuple[str, ...]):
    """A rule's tokens together with its iptables-save spelling.

    The per-endpoint rules are three quarters of a big node's rules and their
    shapes are fixed, so sync spells them for iptables-save as it writes them
    instead of leaving `save_rule` to re-parse each one (a test checks the two
    spellings agree).
    """

    saved: str
    """The rule as iptables-save prints it."""

    def __new__(cls, tokens: Tokens, saved: str) -> Presaved:
        rule = super().__new__(cls, tokens)
        rule.saved = saved
        return rule


@dataclass
class Restore:
    """What one sync writes: chain declarations and rules per table, in write order."""

    filter_chains: list[str] = field(default_factory=list)
    """Chains declared in *filter (declaring flushes them)."""
    filter_rules: list[Tokens] = field(default_factory=list)
    """Rules in *filter, each starting `-A CHAIN`."""
    nat_chains: list[str] = field(default_factory=list)
    """Chains declared in *nat."""
    nat_rules: list[Tokens] = field(default_factory=list)
    """Rules in *nat."""
    owners: dict[str, str] = field(default_factory=dict)
    """Per-service chain → the service port (or "svc port -> endpoint") it implements."""
    localhost_nodeports: bool = True
    """iptables.localhostNodePorts in effect (off unless a nodePortAddress covers 127.0.0.1)."""


class _Word(str):
    """One argument kept whole, spaces and all (a comment)."""


def _q(text: str) -> _Word:
    # kube-proxy wraps most comments in `"%s"` itself; per-endpoint ones go bare.
    return _Word(f'"{text}"')


def _r(*parts: str) -> Tokens:
    """A rule from iptables-like pieces: plain strings split on spaces, `_Word`s kept whole."""
    return tuple(
        tok for part in parts for tok in ((part,) if isinstance(part, _Word) else part.split())
    )


KUBE_FIREWALL_RULE: Tokens = _r(
    f"-A {n.KUBE_FIREWALL} -m comment --comment",
    _q("block incoming localnet connections"),
    "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
)
"""The martian-packet rule kubelet writes and kube-proxy (localhost NodePorts on) restores."""


def masquerade_mark(cluster: Cluster) -> int:
    """The mark bit KUBE-MARK-MASQ sets (masqueradeBit 14 gives 0x4000)."""
    return 1 << cluster.kube_proxy.masquerade_bit


def _go_mark(value: int) -> str:
    # fmt.Sprintf("%#08x", v) in Go pads the digits, not the whole string: 0x00004000.
    return f"0x{value:08x}"


def _probability(n_left: int) -> str:
    return f"{1.0 / n_left:0.10f}"


def proxied_services(cluster: Cluster) -> tuple[Service, ...]:
    """Services kube-proxy programs: not headless, not ExternalName (ShouldSkipService)."""
    return tuple(
        s for s in cluster.services if not s.headless and s.type is not ServiceType.EXTERNAL_NAME
    )


def node_addresses(node: Node) -> tuple[IPv4Address, ...]:
    """The node's interface addresses: lo, its InternalIP, and the CNI bridge's gateway.

    The bridge takes the first address of the podCIDR (10.244.1.1 for 10.244.1.0/24).
    """
    addrs = [IPv4Address("127.0.0.1"), node.internal_ip]
    if node.pod_cidr is not None:
        addrs.append(node.pod_cidr.network_address + 1)
    return tuple(addrs)


@dataclass(frozen=True)
class SyncContext:
    """What every part of one node's sync needs to know besides the Service port it writes."""

    cluster: Cluster
    """The cluster."""
    node: Node
    """The node kube-proxy runs on."""
    mark: str
    """The masquerade mark as kube-proxy spells it (`0x00004000`)."""
    npa: tuple[IPv4Network, ...]
    """nodePortAddresses (0.0.0.0/0 when none is set)."""
    localhost_nodeports: bool
    """iptables.localhostNodePorts in effect."""
    local_cidr: str | None
    """The cluster CIDR detect-local matches, None when there is none."""
    large: bool
    """More endpoints than LARGE_CLUSTER_ENDPOINTS_THRESHOLD: no per-endpoint comments."""
    restore_tokens: bool = True
    """Per-endpoint rules carry kube-proxy's own arguments, not only their saved spelling."""


ServicePortEntry = tuple[str, Service, ServicePort]
"""A Service port kube-proxy programs: its name (`ns/svc:port`), the Service, the port."""


def service_ports(cluster: Cluster) -> tuple[ServicePortEntry, ...]:
    """Every Service port kube-proxy programs, in the order sync writes them."""
    return tuple(
        sorted(
            ((n.service_port_name(s, p), s, p) for s in proxied_services(cluster) for p in s.ports),
            # kube-proxy walks a Go map, so real nodes list services in random order;
            # sorting by "ns/name:port" keeps the output stable.
            key=lambda t: t[0],
        )
    )


def node_port_addresses(cluster: Cluster) -> tuple[IPv4Network, ...]:
    """nodePortAddresses: empty means 0.0.0.0/0 (NewNodePortAddresses)."""
    return cluster.kube_proxy.node_port_addresses or (IPv4Network("0.0.0.0/0"),)


def localhost_nodeports(cluster: Cluster) -> bool:
    """iptables.localhostNodePorts in effect: on only when some nodePortAddresses CIDR
    covers 127.0.0.1."""
    return any(IPv4Address("127.0.0.1") in c for c in node_port_addresses(cluster))


def sync_context(
    cluster: Cluster, node: Node, *, large: bool, restore_tokens: bool = True
) -> SyncContext:
    """The node-wide settings of one sync; `large` as `is_large` says for the cluster."""
    kp = cluster.kube_proxy
    return SyncContext(
        cluster=cluster,
        node=node,
        mark=_go_mark(masquerade_mark(cluster)),
        npa=node_port_addresses(cluster),
        localhost_nodeports=localhost_nodeports(cluster),
        # detectLocalMode ClusterCIDR; without a clusterCIDR the detector is a no-op.
        local_cidr=str(kp.cluster_cidr) if kp.cluster_cidr is not None else None,
        large=large,
        restore_tokens=restore_tokens,
    )


def sync(cluster: Cluster, node: Node, *, restore_tokens: bool = True) -> Restore:
    """Build the filter and nat tables kube-proxy restores on `node`.

    With `restore_tokens=False` (for iptables-save text only) the per-endpoint
    rules carry just their saved spelling and `-A CHAIN`, not kube-proxy's own
    argument list, which is most of the work on a big node.
    """
    ports = service_ports(cluster)
    all_eps = {name: port_endpoints(cluster, s, p, node.name) for name, s, p in ports}
    large = sum(len(eps) for eps in all_eps.values()) > LARGE_CLUSTER_ENDPOINTS_THRESHOLD
    ctx = sync_context(cluster, node, large=large, restore_tokens=restore_tokens)
    out = write_head(ctx)
    for name, svc, port in ports:
        write_port(out, ctx, name, svc, port, all_eps[name])
    write_tail(out, ctx)
    return out


def write_head(ctx: SyncContext) -> Restore:
    """A sync's chain declarations and the rules it writes before any Service port's."""
    out = Restore(localhost_nodeports=ctx.localhost_nodeports)
    mark = ctx.mark
    out.filter_chains += [
        n.KUBE_SERVICES,
        n.KUBE_EXTERNAL_SERVICES,
        n.KUBE_FORWARD,
        n.KUBE_NODEPORTS,
        n.KUBE_PROXY_FIREWALL,
    ]
    out.nat_chains += [n.KUBE_SERVICES, n.KUBE_NODEPORTS, n.KUBE_POSTROUTING, n.KUBE_MARK_MASQ]

    nat = out.nat_rules
    flt = out.filter_rules
    nat.append(_r(f"-A {n.KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN"))
    nat.append(_r(f"-A {n.KUBE_POSTROUTING} -j MARK --xor-mark {mark}"))
    # Every iptables since 1.6.2 has --random-fully, so kube-proxy always adds it.
    nat.append(
        _r(
            f"-A {n.KUBE_POSTROUTING} -m comment --comment",
            _q("kubernetes service traffic requiring SNAT"),
            "-j MASQUERADE --random-fully",
        )
    )
    nat.append(_r(f"-A {n.KUBE_MARK_MASQ} -j MARK --or-mark {mark}"))

    if out.localhost_nodeports:
        out.filter_chains.append(n.KUBE_FIREWALL)
        flt.append(KUBE_FIREWALL_RULE)
    return out


def write_port(
    out: Restore,
    ctx: SyncContext,
    name: str,
    svc: Service,
    port: ServicePort,
    endpoints: tuple[KPEndpoint, ...],
) -> None:
    """Append to `out` the chains and rules of one Service port, `endpoints` as
    `port_endpoints` lists them for the node."""
    kp = ctx.cluster.kube_proxy
    node = ctx.node
    nat = out.nat_rules
    flt = out.filter_rules
    local_cidr = ctx.local_cidr
    large = ctx.large
    restore_tokens = ctx.restore_tokens

    def commented(rule: str, comment: _Word) -> Tokens:
        # appendServiceCommentLocked: only these per-endpoint comments go in large clusters.
        return _r(rule) if large else _r(rule, "-m comment --comment", comment)

    proto = port.protocol.value
    cat = categorize(endpoints, svc, port)
    svc_chain = n.service_port_chain_name(name, proto)
    svl_chain = n.service_local_chain_name(name, proto)
    ext_chain = n.service_external_chain_name(name, proto)
    fw_chain = n.service_firewall_chain_name(name, proto)
    lb_ips = [str(ip) for ip in svc.load_balancer_ips]
    # `-m tcp -p tcp -d <ip> --dport <port>`, kube-proxy's order.
    l4 = f"-m {proto} -p {proto}"
    to_cluster_ip = f"{l4} -d {svc.cluster_ip} --dport {port.port}"

    # categorize() leaves a list empty when its policy is never used.
    uses_cluster_chain = bool(cat.cluster)
    uses_local_chain = bool(cat.local)
    internal_chain = svc_chain
    has_internal = cat.has_any
    if internal_policy_local(svc):
        internal_chain = svl_chain
        has_internal = has_internal and bool(cat.local)
    external_policy_chain = svc_chain
    has_external = cat.has_any
    if external_policy_local(svc):
        external_policy_chain = svl_chain
        has_external = has_external and bool(cat.local)
    # Even with no external endpoints the EXT chain keeps the short-circuit
    # rules for traffic from pods and from the node itself.
    uses_ext_chain = cat.has_any and externally_accessible(svc, port)
    uses_fw_chain = cat.has_any and bool(lb_ips) and bool(svc.load_balancer_source_ranges)
    lb_chain = fw_chain if uses_fw_chain else ext_chain

    int_target = ext_target = ""
    int_comment = ext_comment = _Word("")
    if not cat.has_any:
        int_target = ext_target = "REJECT"
        int_comment = ext_comment = _q(f"{name} has no endpoints")
    else:
        if not has_internal:
            int_target, int_comment = "DROP", _q(f"{name} has no local endpoints")
        if not has_external:
            ext_target, ext_comment = "DROP", _q(f"{name} has no local endpoints")

    svcs = f"-A {n.KUBE_SERVICES} -m comment --comment"
    ext_svcs = f"-A {n.KUBE_EXTERNAL_SERVICES} -m comment --comment"
    if has_internal:
        nat.append(_r(svcs, _q(f"{name} cluster IP"), to_cluster_ip, f"-j {internal_chain}"))
    else:
        flt.append(_r(svcs, int_comment, to_cluster_ip, f"-j {int_target}"))

    for eip in svc.external_ips:
        to_eip = f"{l4} -d {eip} --dport {port.port}"
        if cat.has_any:
            nat.append(_r(svcs, _q(f"{name} external IP"), to_eip, f"-j {ext_chain}"))
        if not has_external:
            flt.append(_r(ext_svcs, ext_comment, to_eip, f"-j {ext_target}"))

    for lbip in lb_ips:
        to_lb = f"{l4} -d {lbip} --dport {port.port}"
        if cat.has_any:
            nat.append(_r(svcs, _q(f"{name} loadbalancer IP"), to_lb, f"-j {lb_chain}"))
        if uses_fw_chain:
            flt.append(
                _r(
                    f"-A {n.KUBE_PROXY_FIREWALL} -m comment --comment",
                    _q(f"{name} traffic not accepted by {fw_chain}"),
                    f"{to_lb} -j DROP",
                )
            )
    if not has_external:
        for lbip in lb_ips:
            to_lb = f"{l4} -d {lbip} --dport {port.port}"
            flt.append(_r(ext_svcs, ext_comment, to_lb, f"-j {ext_target}"))

    if port.node_port:
        nodeports = f"-A {n.KUBE_NODEPORTS} -m comment --comment"
        to_np = f"{l4} --dport {port.node_port}"
        if cat.has_any:
            if ctx.localhost_nodeports:
                # Assumes the node's kernel has nfnetlink_acct, which kube-proxy
                # checks at start-up; without it this rule is not written.
                nat.append(
                    _r(
                        nodeports,
                        _Word(name),
                        f"{l4} -d 127.0.0.0/8 --dport {port.node_port}",
                        f"-m nfacct --nfacct-name {LOCALHOST_NODEPORT_COUNTER}",
                        f"-j {ext_chain}",
                    )
                )
            nat.append(_r(nodeports, _Word(name), to_np, f"-j {ext_chain}"))
        if not has_external:
            flt.append(
                _r(
                    ext_svcs,
                    ext_comment,
                    f"-m addrtype --dst-type LOCAL {to_np} -j {ext_target}",
                )
            )

    if (
        svc.type is ServiceType.LOAD_BALANCER
        and external_policy_local(svc)
        and svc.health_check_node_port
    ):
        # The health check server speaks HTTP: tcp whatever the service's protocol.
        flt.append(
            _r(
                f"-A {n.KUBE_NODEPORTS} -m comment --comment",
                _q(f"{name} health check node port"),
                f"-m tcp -p tcp --dport {svc.health_check_node_port} -j ACCEPT",
            )
        )

    if has_internal:
        masq = _r(
            f"-A {internal_chain} -m comment --comment",
            _q(f"{name} cluster IP"),
            to_cluster_ip,
        )
        if kp.masquerade_all:
            nat.append((*masq, "-j", n.KUBE_MARK_MASQ))
        elif local_cidr is not None:
            # Off-cluster sources reaching a ClusterIP may have been routed in
            # by a static route to any node; masquerade so replies come back.
            nat.append((*masq, "!", "-s", local_cidr, "-j", n.KUBE_MARK_MASQ))

    if uses_ext_chain:
        out.nat_chains.append(ext_chain)
        out.owners[ext_chain] = name
        ext = f"-A {ext_chain} -m comment --comment"
        if not external_policy_local(svc):
            # Endpoints may be on other nodes: masquerade so replies return here.
            nat.append(
                _r(
                    ext,
                    _q(f"masquerade traffic for {name} external destinations"),
                    f"-j {n.KUBE_MARK_MASQ}",
                )
            )
        else:
            if local_cidr is not None:
                # Pods reaching an external address of the service behave as
                # if they went out to the LB and back in: Cluster policy.
                nat.append(
                    _r(
                        ext,
                        _q(f"pod traffic for {name} external destinations"),
                        f"-s {local_cidr} -j {svc_chain}",
                    )
                )
            # The node's own traffic has a local (possibly the LB) source
            # address, which the endpoint could not reply to.
            nat.append(
                _r(
                    ext,
                    _q(f"masquerade LOCAL traffic for {name} external destinations"),
                    f"-m addrtype --src-type LOCAL -j {n.KUBE_MARK_MASQ}",
                )
            )
            nat.append(
                _r(
                    ext,
                    _q(f"route LOCAL traffic for {name} external destinations"),
                    f"-m addrtype --src-type LOCAL -j {svc_chain}",
                )
            )
        if has_external:
            nat.append(_r(f"-A {ext_chain} -j {external_policy_chain}"))

    if uses_fw_chain:
        out.nat_chains.append(fw_chain)
        out.owners[fw_chain] = name
        fw = _r(f"-A {fw_chain} -m comment --comment", _q(f"{name} loadbalancer IP"))
        allow_from_node = False
        for cidr in svc.load_balancer_source_ranges:
            nat.append((*fw, *_r(f"-s {cidr} -j {ext_chain}")))
            allow_from_node = allow_from_node or node.internal_ip in cidr
        if allow_from_node:
            # A VIP-style LB IP is often local to the node, so the node's own
            # requests arrive with the LB IP as their source.
            for lbip in lb_ips:
                nat.append((*fw, *_r(f"-s {lbip} -j {ext_chain}")))
        nat.append(
            _r(
                f"-A {fw_chain} -m comment --comment",
                _q(f"other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL"),
            )
        )

    affinity = svc.session_affinity_timeout
    # Each endpoint's chain name is needed by the SVC/SVL rules and by the
    # SEP chain itself; hash it once.
    seps: dict[str, str] = {}
    for ep in (*cat.cluster, *cat.local, *cat.reachable):
        if ep.addr not in seps:
            seps[ep.addr] = n.endpoint_chain_name(name, proto, ep.addr)

    for used, chain, eps in (
        (uses_cluster_chain, svc_chain, cat.cluster),
        (uses_local_chain, svl_chain, cat.local),
    ):
        if not used:
            continue
        out.nat_chains.append(chain)
        out.owners[chain] = name
        if affinity is not None:
            for ep in eps:
                sep = seps[ep.addr]
                nat.append(
                    (
                        *commented(f"-A {chain}", _q(f"{name} -> {ep}")),
                        *_r(f"-m recent --name {sep} --rcheck --seconds {affinity} --reap"),
                        *_r(f"-j {sep}"),
                    )
                )
        for i, ep in enumerate(eps):
            saved = (
                f"-A {chain}"
                if large
                else (f"-A {chain} -m comment --comment {save_string(f'{name} -> {ep.addr}')}")
            )
            statistic = ""
            if i < len(eps) - 1:
                # 1/(n-i): each rule takes its share of what the earlier ones left.
                probability = _probability(len(eps) - i)
                statistic = f"-m statistic --mode random --probability {probability}"
                saved += " -m statistic --mode random --probability " + kernel_probability(
                    probability
                )
            sep = seps[ep.addr]
            tokens: Tokens = ("-A", chain)
            if restore_tokens:
                rule = commented(f"-A {chain}", _q(f"{name} -> {ep}")) + _r(statistic)
                tokens = (*rule, "-j", sep)
            nat.append(Presaved(tokens, f"{saved} -j {sep}"))

    for ep in cat.reachable:
        sep = seps[ep.addr]
        out.nat_chains.append(sep)
        out.owners[sep] = f"{name} -> {ep}"
        args = commented(f"-A {sep}", _Word(name)) if restore_tokens else ("-A", sep)
        comment = "" if large else f" -m comment --comment {save_string(name)}"
        # Hairpin: a pod reaching itself through the service must be
        # masqueraded, or its reply would skip the reverse DNAT.
        mark_tokens = (*args, "-s", ep.ip, "-j", n.KUBE_MARK_MASQ) if restore_tokens else args
        nat.append(Presaved(mark_tokens, f"-A {sep} -s {ep.ip}/32{comment} -j {n.KUBE_MARK_MASQ}"))
        recent = ""
        if affinity is not None:
            recent = f" -m recent --set --name {sep} --mask 255.255.255.255 --rsource"
            if restore_tokens:
                args += _r(f"-m recent --name {sep} --set")
        dnat_tokens = (
            (*args, *_r(f"{l4} -j DNAT --to-destination {ep}")) if restore_tokens else args
        )
        nat.append(
            Presaved(
                dnat_tokens,
                f"-A {sep} -p {proto}{comment}{recent} -m {proto} -j DNAT "
                f"--to-destination {ep.addr}",
            )
        )


def port_chains(
    ctx: SyncContext, name: str, svc: Service, port: ServicePort, cat: Categorized
) -> dict[str, int]:
    """The chains `write_port` declares for one Service port (KUBE-SVC-, -SVL-, -EXT-, -FW-,
    -SEP-), each with how many rules it writes there, without writing them.

    A listing shows where every chain starts from these counts (the rules pane
    draws a big node's lines as they come on screen); rendering a port checks
    them (`sim.proxy.iptables.paged`), and tests hold them to `write_port`.
    """
    proto = port.protocol.value
    svc_chain = n.service_port_chain_name(name, proto)
    svl_chain = n.service_local_chain_name(name, proto)
    has_internal = has_external = cat.has_any
    internal_chain = svc_chain
    if internal_policy_local(svc):
        internal_chain = svl_chain
        has_internal = has_internal and bool(cat.local)
    if external_policy_local(svc):
        has_external = has_external and bool(cat.local)
    lbs = len(svc.load_balancer_ips)
    rules: dict[str, int] = {}
    if cat.has_any and externally_accessible(svc, port):
        if not external_policy_local(svc):
            count = 1  # masquerade for external destinations
        else:
            count = (1 if ctx.local_cidr is not None else 0) + 2  # pods; LOCAL masq and route
        rules[n.service_external_chain_name(name, proto)] = count + int(has_external)
    if cat.has_any and lbs and svc.load_balancer_source_ranges:
        ranges = svc.load_balancer_source_ranges
        from_node = any(ctx.node.internal_ip in cidr for cidr in ranges)
        rules[n.service_firewall_chain_name(name, proto)] = (
            len(ranges) + (lbs if from_node else 0) + 1
        )
    per_endpoint = 2 if svc.session_affinity_timeout is not None else 1
    if cat.cluster:
        rules[svc_chain] = per_endpoint * len(cat.cluster)
    if cat.local:
        rules[svl_chain] = per_endpoint * len(cat.local)
    masquerades = ctx.cluster.kube_proxy.masquerade_all or ctx.local_cidr is not None
    if has_internal and masquerades and internal_chain in rules:
        # The cluster IP's masquerade rule (an undeclared chain's rules are not saved).
        rules[internal_chain] += 1
    for ep in cat.reachable:
        sep = n.endpoint_chain_name(name, proto, ep.addr)
        rules[sep] = rules.get(sep, 0) + 2  # hairpin masquerade, DNAT
    return rules


def write_tail(out: Restore, ctx: SyncContext) -> None:
    """Append to `out` the rules a sync writes after every Service port's."""
    node = ctx.node
    npa = ctx.npa
    mark = ctx.mark
    nat = out.nat_rules
    flt = out.filter_rules
    match_all = any(c.prefixlen == 0 for c in npa)
    tail = _r(
        f"-A {n.KUBE_SERVICES} -m comment --comment",
        _q("kubernetes service nodeports; NOTE: this must be the last rule in this chain"),
    )
    if match_all:
        dest = "-m addrtype --dst-type LOCAL"
        if not out.localhost_nodeports:
            dest += " ! -d 127.0.0.0/8"
        nat.append((*tail, *_r(f"{dest} -j {n.KUBE_NODEPORTS}")))
    else:
        # GetNodeIPs collects matches in a Go map (random order); sorted here.
        ips = sorted({ip for ip in node_addresses(node) if any(ip in c for c in npa)})
        for ip in ips:
            if ip.is_loopback and not out.localhost_nodeports:
                continue
            nat.append((*tail, *_r(f"-d {ip} -j {n.KUBE_NODEPORTS}")))

    fwd = f"-A {n.KUBE_FORWARD}"
    # Written unless nf_conntrack_tcp_be_liberal is set, which kubehop assumes it is not.
    flt.append(
        _r(
            f"{fwd} -m conntrack --ctstate INVALID",
            f"-m nfacct --nfacct-name {CT_STATE_INVALID_COUNTER} -j DROP",
        )
    )
    flt.append(
        _r(
            f"{fwd} -m comment --comment",
            _q("kubernetes forwarding rules"),
            f"-m mark --mark {mark}/{mark} -j ACCEPT",
        )
    )
    flt.append(
        _r(
            f"{fwd} -m comment --comment",
            _q("kubernetes forwarding conntrack rule"),
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        )
    )


def restore_text(restore: Restore) -> str:
    """The exact text kube-proxy pipes into `iptables-restore --noflush --counters`."""
    lines = ["*filter"]
    lines += [f":{c} - [0:0]" for c in restore.filter_chains]
    lines += [" ".join(r) for r in restore.filter_rules]
    lines += ["COMMIT", "*nat"]
    lines += [f":{c} - [0:0]" for c in restore.nat_chains]
    lines += [" ".join(r) for r in restore.nat_rules]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
