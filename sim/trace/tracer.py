"""Trace a request and its reply: parse what the user asked, walk it, and say how it ended.

The walking itself is `sim.kernel.walk`; this module sets a flow up (source,
destination, DNS, the first packet), hands it to a `Walker`, starts the
server's reply, and builds the immutable `Trace`. Flows traced one after
another can share conntrack and `recent` state (`trace_many`).
"""

from __future__ import annotations

import functools
import random
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address

from model.cluster import Cluster
from model.errors import RequestError
from model.netfilter import (
    Rule,
)
from model.packet import Packet, Proto
from model.trace import Hop, HopKind, Trace, Verdict
from sim.cluster.dns import Resolution, resolve
from sim.cluster.network import ClusterNetwork, network_of
from sim.cluster.rules import rules_for
from sim.kernel.devices import Netns
from sim.kernel.netfilter import NetfilterState
from sim.kernel.reject import answer_refusal
from sim.kernel.rules import NodeRules
from sim.kernel.walk import End, Walker
from sim.proxy import dnats_to, mode_of
from sim.proxy.endpoints import port_endpoints
from sim.proxy.services import services_at
from sim.trace.request import (
    Destination,
    Request,
    Source,
    SourceKind,
    parse_destination,
    parse_source,
)

EPHEMERAL_PORTS = (32768, 60999)
"""net.ipv4.ip_local_port_range's default: where a client's source port comes from."""


@dataclass(frozen=True)
class SharedState:
    """What requests traced one after another share: each netns's conntrack and `recent`."""

    netfilter: Mapping[str, NetfilterState] = field(default_factory=dict)
    """Netfilter state per netns, by netns name."""


def trace(
    cluster: Cluster,
    request: Request,
    *,
    node_rules: Mapping[str, NodeRules] | None = None,
    choose: Callable[[Rule], bool | None] | None = None,
) -> Trace:
    """Trace `request` and its reply.

    Without a seed in the request, one is chosen and recorded in the trace.
    `choose` decides every `-m statistic --mode random` rule instead of the
    seeded draw (True: the rule matches); it may return None to draw.
    """
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    result, _ = trace_shared(
        cluster,
        replace(request, seed=seed),
        rng=random.Random(seed),
        node_rules=node_rules,
        choose=choose,
    )
    return result


def trace_many(cluster: Cluster, request: Request, count: int) -> tuple[Trace, ...]:
    """`count` copies of `request` from fresh source ports, sharing conntrack and `recent`."""
    return tuple(repeat(cluster, request, count))


MAX_REPEATS = 100_000
"""The most requests one `repeat` call sends."""


def repeat(cluster: Cluster, request: Request, count: int) -> Iterator[Trace]:
    """The traces of `count` copies of `request`, one at a time, sharing netfilter state.

    Each copy leaves from a fresh source port, drawn from one generator seeded
    with the request's seed (chosen when it has none). A caller that only
    counts outcomes keeps none of them, and may stop early. The count is
    checked now, not at the first `next`.
    """
    if not 1 <= count <= MAX_REPEATS:
        raise RequestError(f"request count {count} is out of range (1-{MAX_REPEATS})")
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    return _repeat(cluster, replace(request, seed=seed), count)


def _repeat(cluster: Cluster, request: Request, count: int) -> Iterator[Trace]:
    rng = random.Random(request.seed)
    state = SharedState()
    for _ in range(count):
        result, state = trace_shared(cluster, request, rng=rng, state=state)
        yield result


def trace_shared(
    cluster: Cluster,
    request: Request,
    *,
    rng: random.Random,
    state: SharedState | None = None,
    node_rules: Mapping[str, NodeRules] | None = None,
    on_hop: Callable[[Hop], None] | None = None,
    choose: Callable[[Rule], bool | None] | None = None,
) -> tuple[Trace, SharedState]:
    """Trace `request` with a given generator and the state earlier requests left.

    Returns the trace and the state after it. `request.seed` is only recorded:
    `rng` makes every draw.
    """
    source, destination, container = request.source, request.destination, request.container
    pick = request.pick
    src = parse_source(cluster, source, container)
    dest = parse_destination(destination)
    pinned = _parse_pick(pick) if pick is not None else None
    network = network_of(cluster, (src.unlisted,) if src.unlisted is not None else ())
    walker = Walker(
        network=network,
        rules_of=functools.partial(rules_for, cluster, overrides=node_rules),
        interpreter=mode_of(cluster).interpreter(cluster, pick=pinned, choose=choose),
        rng=rng,
        state=dict((state or SharedState()).netfilter),
    )
    ns = network.netns(src.netns)
    dst_ip, resolution = _resolve_destination(cluster, src, dest)
    first = _first_packet(src, dst_ip, dest, rng, _source_address(walker, ns, src, dst_ip))
    if resolution is not None:
        walker.emit(
            HopKind.DNS,
            ns,
            first,
            first,
            _dns_sentence(resolution, dst_ip),
            detail="; ".join(f"A? {q}" for q in resolution.queries)
            + f" → {', '.join(map(str, resolution.addresses))}",
            note="the DNS exchange with CoreDNS is summarised as one step",
            dt=0,
        )
    walker.emit(
        HopKind.SEND,
        ns,
        first,
        first,
        f"{src.label} opens a {dest.proto.value.upper()} connection to {dst_ip}:{dest.port} "
        f"from {first.src}:{first.sport} (an ephemeral port)",
        detail=f"connect({dst_ip}:{dest.port}) from {first.src}:{first.sport}",
        note=_unlisted_note(network, src),
        dt=0,
    )
    if src.unlisted is not None:
        walker.assumptions.append(_unlisted_note(network, src) or "")
    if pinned is not None:
        _check_pick(cluster, node_rules, ns, pinned, first)
    end = walker.local_out(ns, first)
    if end.verdict is Verdict.DELIVERED:
        served = walker.network.netns(end.netns)
        walker.begin_reply(ns, first)
        reply = Packet(
            src=end.packet.dst,
            dst=end.packet.src,
            sport=end.packet.dport,
            dport=end.packet.sport,
            proto=end.packet.proto,
            tcp_flags="SYN,ACK" if end.packet.proto is Proto.TCP else "",
        )
        walker.emit(
            HopKind.SEND,
            served,
            reply,
            reply,
            f"the server in {served.label} answers {reply.dst}:{reply.dport}: it swaps the "
            "addresses it received, knowing nothing of any NAT",
            dt=0,
        )
        end = walker.local_out(served, reply)
    unknown = _endpoints_unknown(cluster, dst_ip, dest) if end.verdict is Verdict.REJECTED else None
    if end.verdict in (Verdict.REJECTED, Verdict.REFUSED) and unknown is None:
        # The sender is told: the ICMP error or RST walks back, hop by hop.
        walker.begin_reply(ns, first)
        answer_refusal(walker, end)
    if end.verdict is Verdict.REFUSED and first.proto is Proto.TCP:
        _forget_reset_connections(walker)
    verdict, reason = _verdict(end, src, dest, dst_ip, walker)
    if unknown is not None:
        # kube-proxy's rules as kubehop renders them reject a Service without
        # endpoints; a dump that lacks them cannot say the Service has none.
        verdict, reason = Verdict.UNKNOWN, unknown
        walker.assumptions.append(unknown)
        last = walker.hops[-1]
        walker.hops[-1] = last.model_copy(update={"kind": HopKind.UNKNOWN, "note": unknown})
    hops = tuple(walker.hops)
    if on_hop is not None:
        for hop in hops:
            on_hop(hop)
    warnings = (
        _relevant_warnings(cluster, walker)
        + tuple(dict.fromkeys(walker.findings))
        + tuple(dict.fromkeys(walker.assumptions))
    )
    result = Trace(
        source=source if container is None else f"{source} -c {container}",
        destination=destination,
        seed=request.seed or 0,
        hops=hops,
        verdict=verdict,
        reason=reason,
        endpoint=walker.endpoint,
        warnings=warnings,
        rule=walker.verdict_rule if verdict in (Verdict.DROPPED, Verdict.REJECTED) else None,
    )
    return result, SharedState(dict(walker.state))


def _endpoints_unknown(cluster: Cluster, dst: IPv4Address, dest: Destination) -> str | None:
    """Why a rejected request's Service may have endpoints after all, when the dump lacks them."""
    for answer in services_at(cluster, dst, dest.port, dest.proto):
        service = answer.service
        if not service.endpoints_known:
            return (
                f"{service.key} has no selector, and the dump holds neither EndpointSlices nor"
                " Endpoints for it: its endpoints are unknown (kube-proxy on the node has them),"
                " so where the request goes kubehop cannot say; add them to the dump (kubectl get"
                " endpointslices,endpoints -A -o yaml)"
            )
    return None


def _unlisted_note(network: ClusterNetwork, src: Source) -> str | None:
    """What kubehop made up for a source address the cluster file does not list."""
    if src.unlisted is None:
        return None
    where = (
        f"on the node network {network.node_network}, a neighbour of the nodes"
        if network.on_node_network(src.unlisted)
        else "beyond the node network, so it reaches the nodes through their router"
    )
    return (
        f"{src.ip} is no pod's, node's or listed client's address: kubehop takes it for a"
        f" machine outside the cluster, {where}"
    )


def _relevant_warnings(cluster: Cluster, walker: Walker) -> tuple[str, ...]:
    """The cluster's warnings that name a pod, node or Service this trace passed."""
    names: set[str] = set()
    for hop in walker.hops:
        ns = walker.network.netns(hop.where.netns)
        names.add(ns.label)
        if hop.where.node:
            names.add(hop.where.node)
        for walk in hop.tables:
            for ref in walk.matched:
                names.update(_quoted_services(ref.line))
    if walker.endpoint:  # what the file says about the endpoint chosen (a stale slice)
        names.add(walker.endpoint.rpartition(":")[0])
    return tuple(w for w in cluster.warnings if any(_names_in(w, name) for name in names))


def _quoted_services(line: str) -> set[str]:
    start = line.find('--comment "')
    if start < 0:
        return set()
    comment = line[start + 11 : line.find('"', start + 11)]
    service = comment.split(" ")[0].split(":")[0]
    return {service} if "/" in service else set()


def _names_in(warning: str, name: str) -> bool:
    return f" {name}:" in warning or f" {name} " in warning or f"/{name}:" in warning


def _forget_reset_connections(walker: Walker) -> None:
    """A RST as the only reply deletes the connection from every conntrack it passes.

    kubehop does not walk the RST itself; it applies its effect, which the
    kernel documents in nf_conntrack_proto_tcp ("If only reply is a RST, we
    can consider ourselves not to have an established connection").
    """
    for hop in walker.hops:
        entry = hop.conntrack
        state = walker.state.get(hop.where.netns)
        if entry is None or state is None or entry.original not in state.conntrack:
            continue
        walker.state[hop.where.netns] = replace(
            state, conntrack=state.conntrack.without(entry.original)
        )


def _parse_pick(text: str) -> tuple[IPv4Address, int]:
    wrong = RequestError(
        f"pinned endpoint (--pick) {text!r}: expected an endpoint as IP:PORT, e.g. 192.168.1.4:8080"
    )
    try:
        dest = parse_destination(text)
    except RequestError as err:
        reason = str(err).split(": ", 1)[-1]
        if reason.startswith("expected"):
            raise wrong from None
        raise RequestError(f"pinned endpoint (--pick) {text!r}: {reason}") from None
    if dest.ip is None:
        raise wrong
    return dest.ip, dest.port


def _check_pick(
    cluster: Cluster,
    overrides: Mapping[str, NodeRules] | None,
    ns: Netns,
    pick: tuple[IPv4Address, int],
    request: Packet,
) -> None:
    """A pin names an endpoint of the Service the request goes to, or it is an error."""
    shown = f"pinned endpoint (--pick) {pick[0]}:{pick[1]}"
    answers = services_at(cluster, request.dst, request.dport or 0, request.proto)
    if not answers:
        raise RequestError(
            f"{shown}: {request.dst}:{request.dport} is no Service's address, so no rule"
            " chooses an endpoint to pin"
        )
    node = ns.node
    real = node is not None and overrides is not None and node in overrides
    if not real:  # a real node's rules may hold endpoints the cluster dump lacks
        endpoints = sorted(
            {
                str(endpoint)
                for answer in answers
                for endpoint in port_endpoints(cluster, answer.service, answer.port, node or "")
            }
        )
        if f"{pick[0]}:{pick[1]}" not in endpoints:
            raise RequestError(
                f"{shown}: not an endpoint of {', '.join(map(str, answers))}"
                f" (its endpoints: {', '.join(endpoints) or 'none'})"
            )
    if node is None:
        return
    if dnats_to(rules_for(cluster, node, overrides), pick):
        return
    raise RequestError(
        f"pinned endpoint (--pick) {pick[0]}:{pick[1]}: no kube-proxy rule on {node} DNATs to"
        " that endpoint "
        "(it must be a ready endpoint of the Service)"
    )


def _resolve_destination(
    cluster: Cluster, src: Source, dest: Destination
) -> tuple[IPv4Address, Resolution | None]:
    if dest.ip is not None:
        return dest.ip, None
    if src.kind is not SourceKind.POD or src.namespace is None:
        raise RequestError(
            f"destination {dest.text!r}: {src.label} is not a pod, so cluster DNS names do not "
            "resolve there; use an IP (a NodeIP:NodePort from outside)"
        )
    resolution = resolve(cluster, dest.host, src.namespace)
    return resolution.addresses[0], resolution


def _dns_sentence(resolution: Resolution, addr: IPv4Address) -> str:
    if resolution.headless:
        return (
            f"{resolution.name} resolves to {resolution.fqdn}, a headless Service: CoreDNS "
            f"answers with its pods' IPs, so the request goes straight to {addr} and kube-proxy "
            "plays no part"
        )
    return (
        f"{resolution.name} resolves through the pod's DNS search path to {resolution.fqdn}, "
        f"whose A record is the Service's ClusterIP {addr}"
    )


def _source_address(walker: Walker, ns: Netns, src: Source, dst: IPv4Address) -> IPv4Address:
    """The address connect() binds: the route's preferred source, else the out device's.

    A node's process reaching its own pods leaves from cni0's address, not the
    node's InternalIP; the real-kernel lab caught kubehop getting this wrong.
    """
    route = walker.route(ns, dst)
    if route is None:
        return src.ip
    if route.src is not None:
        return route.src
    return ns.iface(route.dev).primary or src.ip


def _first_packet(
    src: Source, dst: IPv4Address, dest: Destination, rng: random.Random, src_ip: IPv4Address
) -> Packet:
    sport = rng.randint(*EPHEMERAL_PORTS)
    return Packet(
        src=src_ip,
        dst=dst,
        sport=sport,
        dport=dest.port,
        proto=dest.proto,
        tcp_flags="SYN" if dest.proto is Proto.TCP else "",
    )


def _verdict(
    end: End, src: Source, dest: Destination, dst_ip: IPv4Address, walker: Walker
) -> tuple[Verdict, str]:
    if end.verdict is Verdict.DELIVERED:
        served = walker.endpoint or f"{dst_ip}:{dest.port}"
        via = "" if served == f"{dst_ip}:{dest.port}" else f" through {dst_ip}:{dest.port}"
        return Verdict.DELIVERED, (
            f"{src.label} reached {served}{via}, and the reply came back from {dst_ip}:{dest.port}"
        )
    return end.verdict, end.reason


__all__ = ["SharedState", "repeat", "trace", "trace_many", "trace_shared"]
