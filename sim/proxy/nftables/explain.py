"""Plain sentences for hops through kube-proxy's nft table, naming the rule that decided.

The walk gives the rules that matched, in order, as `nft list` prints them;
this reads them back as kube-proxy meant them. Chain names say what they
serve (`endpoint-HASH-ns/svc/tcp/http__10.244.1.6/8080`), verdict-map
elements carry the Service port in their comment, and where nftables mode
behaves otherwise than iptables mode a note says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from model.cluster import Cluster
from model.netfilter import Hook
from model.nftables import (
    NftCmp,
    NftElement,
    NftNat,
    NftReject,
    NftRule,
    NftSet,
    NftTable,
    NftVerdict,
    NftVmap,
)
from model.packet import Packet
from model.trace import TableWalk
from sim.kernel.nftables.sets import set_index
from sim.proxy.nftables import names as n
from sim.proxy.sentences import conntrack_destination, conntrack_source

__all__ = ["Matched", "explain_hook", "masq_reason", "owner_of", "service_cidr_guess"]

_MARK = 0x4000
_PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}
_LOOPBACK = IPv4Network("127.0.0.0/8")


@dataclass(frozen=True)
class Matched:
    """A rule that matched, with the table it is in."""

    table: NftTable
    rule: NftRule

    @property
    def name(self) -> str:
        """`chain #2`, as `nft -a list` would let a person find it (by position)."""
        return f"{self.rule.chain} #{self.rule.index}"

    def detail(self, source: str | None) -> str:
        """`ip kube-proxy CHAIN: RULE`, with `file:line:` for a real node's dump."""
        text = f"{self.table.label} {self.rule.chain}: {self.rule.text}"
        if source is not None and self.rule.lineno:
            return f"{source}:{self.rule.lineno}: {text}"
        return text


def owner_of(chain: str) -> str | None:
    """The Service port a per-service chain serves: `ns/svc:port` (or `ns/svc` when unnamed).

    `service-HASH-ns/svc/tcp/http` and `endpoint-HASH-ns/svc/tcp/http__ip/port`
    carry it in their name.
    """
    for prefix in (
        n.CLUSTER_PREFIX,
        n.LOCAL_PREFIX,
        n.EXTERNAL_PREFIX,
        n.ENDPOINT_PREFIX,
        n.FIREWALL_PREFIX,
        n.AFFINITY_PREFIX,
    ):
        if chain.startswith(prefix):
            rest = chain[len(prefix) :]
            _, _, named = rest.partition("-")
            parts = named.split("__")[0].split("/")
            if len(parts) != 4:
                return None
            namespace, name, _proto, port = parts
            return f"{namespace}/{name}:{port}" if port else f"{namespace}/{name}"
    return None


def _vmap_hit(m: Matched, pkt: Packet) -> NftElement | None:
    """The element of a named verdict map the packet found (the rule matched, so one did)."""
    vmap = next((e for e in m.rule.exprs if isinstance(e, NftVmap) and e.map), None)
    if vmap is None or vmap.map is None:
        return None
    named = m.table.sets.get(vmap.map)
    if named is None:
        return None
    return _element_for(named, vmap.left, pkt)


def _element_for(named: NftSet, left: Sequence[str], pkt: Packet) -> NftElement | None:
    # The kernel's own index of the map: one lookup, not a scan of 10,000 elements.
    values: dict[str, int] = {
        "ip daddr": int(pkt.dst),
        "ip saddr": int(pkt.src),
        "meta l4proto": _PROTOCOL_NUMBERS[pkt.proto.value],
        "th dport": pkt.dport,
    }
    if any(s not in values for s in left):
        return None
    return set_index(named).lookup(tuple(values[s] for s in left))


def masq_reason(matched: Sequence[Matched]) -> str | None:
    """Why a rule among `matched` jumped to mark-for-masquerade, in plain words."""
    for m in matched:
        verdict = m.rule.exprs[-1] if m.rule.exprs else None
        if not (isinstance(verdict, NftVerdict) and verdict.chain == n.MARK_MASQ):
            continue
        chain = m.rule.chain
        sources = [e for e in m.rule.exprs if isinstance(e, NftCmp) and e.left == ("ip saddr",)]
        if chain.startswith(n.ENDPOINT_PREFIX) and sources:
            return (
                f"hairpin: the endpoint {sources[0].values[0]} reached itself through its Service"
                f" ({m.name}), so the reply must come back through the node"
            )
        if m.rule.comment == "masquerade local traffic":
            return (
                f"the node itself sent it to an external address of the Service ({m.name}): its"
                " local source could not be answered by the endpoint"
            )
        if chain.startswith(n.EXTERNAL_PREFIX):
            return (
                f"the request came in through an external address or NodePort ({m.name}): the"
                " source is replaced so the endpoint's reply returns through this node, where"
                " conntrack can undo the DNAT"
            )
        if sources and sources[0].op == "!=":
            return f"the source is outside the cluster CIDR {sources[0].values[0]}: {m.name}"
        if chain.startswith((n.CLUSTER_PREFIX, n.LOCAL_PREFIX)):
            return f"masqueradeAll is set, so every Service packet is masqueraded ({m.name})"
        return f"{m.name} sent it to {n.MARK_MASQ}"
    return None


def masq_is_external(matched: Sequence[Matched]) -> bool:
    """mark-for-masquerade was reached from a NodePort, external IP or load balancer chain."""
    return any(
        m.rule.chain.startswith(n.EXTERNAL_PREFIX)
        and isinstance(m.rule.exprs[-1], NftVerdict)
        and m.rule.exprs[-1].chain == n.MARK_MASQ
        for m in matched
        if m.rule.exprs
    )


def _choice(matched: Sequence[Matched], picked: bool) -> str:
    for m in matched:
        if any(isinstance(e, NftCmp) and e.set and e.set.startswith(n.AFFINITY_PREFIX)
               for e in m.rule.exprs):  # fmt: skip
            return (
                f"session affinity: {m.name} found this client in the affinity set and sent it"
                " to the same endpoint again"
            )
    for m in matched:
        numgen = next((e for e in m.rule.exprs if isinstance(e, NftVmap) and e.numgen), None)
        if numgen is not None and numgen.numgen is not None:
            if numgen.numgen == 1:
                return f"the only endpoint ({m.name})"
            how = "the endpoint chosen in advance" if picked else f"probability 1/{numgen.numgen}"
            return f"chosen by {m.name}'s numgen random mod {numgen.numgen} ({how})"
    return ""


def service_cidr_guess(cluster: Cluster) -> IPv4Network | None:
    """The smallest network holding every ClusterIP: kubehop's guess at the Service CIDR."""
    ips = [int(s.cluster_ip) for s in cluster.services if s.cluster_ip is not None]
    if not ips:
        return None
    lo, hi = min(ips), max(ips)
    prefix = 32 - (lo ^ hi).bit_length()
    return IPv4Network((lo, prefix), strict=False)


def _stop(stop: Matched, matched: Sequence[Matched], before: Packet, node: str | None) -> str:
    """Why a drop or reject happened, from kube-proxy's comments and map elements."""
    on = f" on {node}" if node else ""
    hit: NftElement | None = None
    via: Matched | None = None
    for m in matched:
        element = _vmap_hit(m, before)
        if element is not None:
            hit, via = element, m
    if hit is not None and via is not None and via.rule.chain == n.FIREWALL_CHECK:
        service = owner_of(stop.rule.chain) or "the Service"
        return f"{service}'s loadBalancerSourceRanges leave this source out ({stop.name})"
    if hit is not None and via is not None:
        service = hit.comment or "a Service"
        what = "the NodePort" if via.rule.chain == n.NODEPORT_ENDPOINTS_CHECK else "the address"
        if hit.value == "drop":
            return (
                f"{service} has no local endpoint{on} (externalTrafficPolicy or"
                f" internalTrafficPolicy Local; {via.name} found {what} in @"
                f"{_map_of(via)}): the node drops it rather than send it to another node"
            )
        return (
            f"{service} has no endpoints ({via.name} found {what} in @{_map_of(via)}): no ready"
            " pod backs it, so kube-proxy rejects its traffic"
        )
    if stop.rule.chain.startswith(n.FIREWALL_PREFIX):
        service = owner_of(stop.rule.chain) or "the Service"
        return f"{service}'s loadBalancerSourceRanges leave this source out ({stop.name})"
    if stop.rule.comment == "Reject traffic to invalid ports of ClusterIPs":
        return (
            f"{before.dst} is a ClusterIP, but no Service has port {before.dport}/"
            f"{before.proto.value} on it ({stop.name})"
        )
    if stop.rule.comment == "Drop traffic to unallocated ClusterIPs":
        return f"{before.dst} is in the Service CIDR but no Service has it ({stop.name})"
    if stop.rule.comment:
        return f"{stop.rule.comment} ({stop.name})"
    return f"{stop.name}"


def _map_of(m: Matched) -> str:
    vmap = next((e for e in m.rule.exprs if isinstance(e, NftVmap) and e.map), None)
    return vmap.map if vmap is not None and vmap.map else "?"


def explain_hook(
    hook: Hook,
    before: Packet,
    after: Packet,
    verdict: str,
    tables: tuple[TableWalk, ...],
    matched: Sequence[Matched],
    *,
    out_iface: str | None,
    masq_because: str | None,
    picked: bool,
    node: str | None,
    rules_source: str | None,
    iptables_sentence: tuple[str, str] | None,
    original: bool = False,
) -> tuple[str, str]:
    """One sentence for what `hook` did, and the decisive rule as `nft list` prints it.

    `iptables_sentence` is what iptables mode's explainer says of the same hop
    (for the iptables rules kubelet and the CNI keep); it is used when no
    nft rule decided.
    """
    if verdict in ("REJECT", "DROP"):
        stop = next(
            (
                m
                for m in reversed(matched)
                if any(
                    isinstance(e, NftReject) or (isinstance(e, NftVerdict) and e.verdict == "drop")
                    for e in m.rule.exprs
                )
                or _vmap_verdict(m, before) == "drop"
            ),
            None,
        )
        nft_walk = next((t for t in tables if t.nft and t.verdict == verdict), None)
        if stop is None or nft_walk is None:
            if iptables_sentence is not None:
                return iptables_sentence
            walk = next((t for t in tables if t.verdict == verdict), None)
            label = (walk.nft or walk.table.value) if walk is not None else "nft"
            return (
                f"{verdict}: the {label} chain's policy is {verdict.lower()} and no rule"
                " accepted the packet",
                "",
            )
        extra = ""
        rejecting = next((e for e in stop.rule.exprs if isinstance(e, NftReject)), None)
        if rejecting is not None:
            extra = f"; the kernel answers with {rejecting.reject_with}"
        return (
            f"{verdict} in {stop.rule.chain}: {_stop(stop, matched, before, node)}{extra}",
            stop.detail(rules_source),
        )
    decisive: Matched | None = None
    clauses: list[str] = []
    if after.mark & _MARK and not before.mark & _MARK:
        clauses.append(
            f"the packet is marked 0x4000 by {n.MARK_MASQ}, to be masqueraded on its way out"
            + (f": {masq_because}" if masq_because else "")
        )
    if (after.dst, after.dport) != (before.dst, before.dport):
        dnat = next(
            (m for m in matched if any(isinstance(e, NftNat) and e.action == "dnat"
                                       for e in m.rule.exprs)),
            None,
        )  # fmt: skip
        if dnat is not None:
            decisive = dnat
            service = owner_of(dnat.rule.chain)
            choice = _choice(matched, picked)
            clauses.append(
                f"DNAT in {dnat.name}: destination {before.dst}:{before.dport} → "
                f"{after.dst}:{after.dport}"
                + (f", an endpoint of {service}" if service else "")
                + (f", {choice}" if choice else "")
            )
        else:
            clauses.append(conntrack_destination(before, after, original=original))
    if (after.src, after.sport) != (before.src, before.sport):
        masq = next(
            (m for m in matched if any(isinstance(e, NftNat) and e.action in ("masquerade", "snat")
                                       for e in m.rule.exprs)),
            None,
        )  # fmt: skip
        if masq is not None:
            decisive = decisive or masq
            where = f", the address of {out_iface}" if out_iface else ""
            because = f", because {n.MARK_MASQ} set 0x4000 ({masq_because})" if masq_because else ""
            clauses.append(
                f"MASQUERADE in {masq.name}: source {before.src}:{before.sport} → "
                f"{after.src}:{after.sport}{where}{because}; the mark's bit is cleared first"
                " (meta mark ^ 0x4000)"
            )
        elif iptables_sentence is not None and iptables_sentence[1]:
            # Not kube-proxy's: the CNI's masquerade rule, in iptables.
            return iptables_sentence
        else:
            clauses.append(conntrack_source(before, after, original=original))
    if not clauses:
        if iptables_sentence is not None and iptables_sentence[1]:
            return iptables_sentence
        skipped = next((t.skipped for t in tables if t.skipped), None)
        if not tables:
            clauses.append(f"no table has rules at {hook.value}; the packet passes")
        else:
            clauses.append(f"no {hook.value} rule changes or stops the packet")
        if skipped:
            clauses.append(skipped)
    detail = decisive.detail(rules_source) if decisive is not None else ""
    sentence = "; ".join(clauses)
    return sentence[0].upper() + sentence[1:], detail


def _vmap_verdict(m: Matched, pkt: Packet) -> str | None:
    element = _vmap_hit(m, pkt)
    return element.value if element is not None else None


def differences(
    cluster: Cluster,
    hook: Hook,
    before: Packet,
    after: Packet,
    verdict: str,
    matched: Sequence[Matched],
    *,
    node_ip: IPv4Address | None,
    local: bool,
    dnat: bool,
    external_masq: bool,
) -> list[str]:
    """Where nftables mode does otherwise than iptables mode at this hop, and the article."""
    notes: list[str] = []
    nodeport = None
    if (
        hook in (Hook.PREROUTING, Hook.OUTPUT)
        and local
        and before.dst != node_ip
        and (before.dst, before.dport) == (after.dst, after.dport)
    ):
        # (Only then: a cluster of 10,000 Services is not scanned at every hop.)
        nodeport = next(
            (
                (s, p)
                for s in cluster.services
                for p in s.ports
                if p.node_port == before.dport and p.protocol is before.proto
            ),
            None,
        )
    if nodeport is not None:
        service = nodeport[0].key
        if before.dst in _LOOPBACK:
            notes.append(
                f"nftables mode does not serve NodePorts on 127.0.0.1 ({service}'s"
                f" {before.dport}); iptables mode does (it sets route_localnet and accepts"
                " localhost NodePorts)"
            )
        else:
            notes.append(
                f"nftables mode serves NodePorts only on the node's primary address"
                f" ({node_ip}) by default (--nodeport-addresses primary), not on {before.dst}"
                f" as iptables mode does; {service}'s {before.dport} is not DNATed here"
            )
    for m in matched:
        if m.rule.comment == "Reject traffic to invalid ports of ClusterIPs":
            notes.append(
                "iptables mode has no rule for an undefined port of a ClusterIP: the packet"
                " would go on to the default route and time out; nftables mode rejects it"
                " (cluster-ips-check)"
            )
        elif m.rule.comment == "Drop traffic to unallocated ClusterIPs":
            notes.append(
                "iptables mode has no rule for an unallocated ClusterIP: the packet would go on"
                " to the default route; nftables mode, knowing the Service CIDRs from the"
                " ServiceCIDR objects, drops it (cluster-ips-check)"
            )
    if dnat and any(
        isinstance(e, NftVmap) and e.numgen and e.numgen > 1 for m in matched for e in m.rule.exprs
    ):
        notes.append(
            "The article speaks of round-robin; nftables mode picks at random with one draw"
            " (numgen random mod N), where iptables mode walks a chain of -m statistic"
            " probabilities"
        )
    if dnat and any(m.rule.chain.startswith(n.EXTERNAL_PREFIX) for m in matched):
        notes.append(
            "The article sends a NodePort request to the ClusterIP first; kube-proxy DNATs "
            "NodeIP:NodePort straight to an endpoint, so the ClusterIP never appears in the packet"
        )
    masq = any(
        isinstance(e, NftNat) and e.action == "masquerade" for m in matched for e in m.rule.exprs
    )
    if masq and external_masq and after.src != before.src:
        notes.append(
            "The article says the source becomes the Service's ClusterIP; masquerade takes the "
            f"address of the interface the packet leaves by ({after.src}), so the pod sees "
            "the node, not the ClusterIP"
        )
    return notes
