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
from dataclasses import field, replace
from ipaddress import IPv4Address

from model.cluster import Cluster
from model.errors import RequestError
from model.frozen import frozen
from model.netfilter import Rule
from model.packet import Packet, Proto
from model.trace import HopKind, Trace, Verdict
from sim.cluster.dns import Resolution, resolve
from sim.cluster.network import ClusterNetwork, network_of
from sim.cluster.rules import rules_for
from sim.kernel.devices import Netns
from sim.kernel.mtu import (
    MSS_HEADERS,
    TCP_DATA_HEADER,
    TIMESTAMP_OPTION,
    UDP_HEADERS,
    device_mtu,
)
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


@frozen
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
    choose: Callable[[Rule], bool | None] | None = None,
) -> tuple[Trace, SharedState]:
    """Trace `request` with a given generator and the state earlier requests left.

    Returns the trace and the state after it. `request.seed` is only recorded:
    `rng` makes every draw.

    With `request.size`, a UDP request is a datagram of that payload; a TCP one
    is the first data segment after the handshake: the handshake is walked first
    (not shown), its conntrack state kept and its MSS options applied, and the
    trace is the segment and the server's ACK.
    """
    context = _TraceContext(cluster, rng, node_rules, choose)
    if request.size is not None and parse_destination(request.destination).proto is Proto.TCP:
        return _trace_segment(context, request, state)
    return _walk(context, request, state)


@frozen
class _TraceContext:
    """What every walk of one traced request is given alike (a TCP segment's handshake too)."""

    cluster: Cluster
    """The cluster traced."""
    rng: random.Random
    """Makes every draw: source ports, `-m statistic` rules."""
    node_rules: Mapping[str, NodeRules] | None
    """Real nodes' rules, by node name, in place of the rendered ones."""
    choose: Callable[[Rule], bool | None] | None
    """Decides every `-m statistic` rule instead of `rng` (None from it: draw)."""


@frozen
class _Segment:
    """The first data segment of a connection whose handshake was walked."""

    sport: int
    """The connection's source port."""
    offered: int
    """The MSS the client's SYN offered."""
    answered: int
    """The MSS the server's SYN-ACK offered."""


def _trace_segment(
    context: _TraceContext, request: Request, state: SharedState | None
) -> tuple[Trace, SharedState]:
    """The handshake walked unseen, then the first data segment of `request.size` bytes."""
    if not request.size:
        raise RequestError(
            f"--size 0 with {request.destination}: a TCP connection sends no data segment"
            " without data; give 1 or more bytes (without --size the trace is the SYN)"
        )
    shake, after = _walk(context, replace(request, size=None), state)
    sends = [h for h in shake.hops if h.kind is HopKind.SEND]
    syn = sends[0].before
    synack = next((h.before for h in sends if h.before.tcp_flags == "SYN,ACK"), None)
    if shake.verdict is not Verdict.DELIVERED or synack is None:
        # No connection, no data: the handshake's own trace says why.
        note = (
            f"--size {request.size}: the handshake did not complete, so no data segment was"
            " sent; this is the trace of the SYN"
        )
        return shake.model_copy(update={"warnings": (*shake.warnings, note)}), after
    segment = _Segment(syn.sport, syn.mss or 0, synack.mss or 0)
    return _walk(context, request, after, segment=segment)


def _walk(
    context: _TraceContext,
    request: Request,
    state: SharedState | None,
    *,
    segment: _Segment | None = None,
) -> tuple[Trace, SharedState]:
    """One packet (a SYN, a datagram, or `segment`) and its answer, walked."""
    cluster, rng, node_rules = context.cluster, context.rng, context.node_rules
    source, destination, container = request.source, request.destination, request.container
    pick = request.pick
    src = parse_source(cluster, source, container)
    dest = parse_destination(destination)
    pinned = _parse_pick(pick) if pick is not None else None
    network = network_of(cluster, (src.unlisted,) if src.unlisted is not None else ())
    walker = Walker(
        network=network,
        rules_of=functools.partial(rules_for, cluster, overrides=node_rules),
        interpreter=mode_of(cluster).interpreter(cluster, pick=pinned, choose=context.choose),
        rng=rng,
        state=dict((state or SharedState()).netfilter),
    )
    ns = network.netns(src.netns)
    dst_ip, resolution = _resolve_destination(cluster, src, dest)
    out_mtu, out_dev = _route_mtu(walker, ns, dst_ip)
    first = _first_packet(
        src,
        dst_ip,
        dest,
        rng,
        _source_address(walker, ns, src, dst_ip),
        size=request.size,
        mtu=out_mtu,
        segment=segment,
    )
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
    sent = (
        f"{src.label} opens a {dest.proto.value.upper()} connection to {dst_ip}:{dest.port} "
        f"from {first.src}:{first.sport} (an ephemeral port)"
    )
    if segment is not None:
        sent = (
            f"{src.label} sends the first data segment of its TCP connection to"
            f" {dst_ip}:{dest.port} from {first.src}:{first.sport}"
        )
    walker.emit(
        HopKind.SEND,
        ns,
        first,
        first,
        sent + "; " + _size_clause(ns.label, first, out_mtu, out_dev, request.size, segment),
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
        tcp = end.packet.proto is Proto.TCP
        back_mtu, back_dev = _route_mtu(walker, served, end.packet.src)
        synack = tcp and segment is None
        reply = Packet(
            src=end.packet.dst,
            dst=end.packet.src,
            sport=end.packet.dport,
            dport=end.packet.sport,
            proto=end.packet.proto,
            tcp_flags=("SYN,ACK" if synack else "ACK") if tcp else "",
            mss=back_mtu - MSS_HEADERS if synack else None,
        )
        answer = ""
        if synack:
            answer = (
                f"; its SYN-ACK ({reply.length} bytes) offers MSS {reply.mss}: {served.label}'s"
                f" {back_dev} MTU {back_mtu} − {MSS_HEADERS}"
            )
        elif tcp:
            answer = f"; it acknowledges the data with an ACK of {reply.length} bytes"
        else:
            answer = f"; kubehop's server answers with an empty datagram ({reply.length} bytes)"
        walker.emit(
            HopKind.SEND,
            served,
            reply,
            reply,
            f"the server in {served.label} answers {reply.dst}:{reply.dport}: it swaps the "
            "addresses it received, knowing nothing of any NAT" + answer,
            dt=0,
        )
        end = walker.local_out(served, reply)
    unknown = _endpoints_unknown(cluster, dst_ip, dest) if end.verdict is Verdict.REJECTED else None
    too_big = end.verdict is Verdict.DROPPED and walker.too_big is not None
    if (end.verdict in (Verdict.REJECTED, Verdict.REFUSED) and unknown is None) or too_big:
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


def _route_mtu(walker: Walker, ns: Netns, dst: IPv4Address) -> tuple[int, str]:
    """The MTU of the device the route to `dst` leaves by, and its name (what a socket's
    MSS and DF are computed from, before any NAT of OUTPUT reroutes the packet)."""
    route = walker.route(ns, dst)
    if route is None or not ns.has_iface(route.dev):
        return 1500, "eth0"
    return device_mtu(ns.iface(route.dev)), route.dev


def _first_packet(
    src: Source,
    dst: IPv4Address,
    dest: Destination,
    rng: random.Random,
    src_ip: IPv4Address,
    *,
    size: int | None = None,
    mtu: int = 1500,
    segment: _Segment | None = None,
) -> Packet:
    """The packet the sender's socket hands its kernel: a SYN offering the route's MSS, a
    datagram (DF only when it fits the route's MTU: IP_PMTUDISC_WANT), or `segment`."""
    if segment is not None:
        data = min(size or 0, _segment_room(segment, mtu))
        more = (size or 0) > data
        return Packet(
            src=src_ip,
            dst=dst,
            sport=segment.sport,
            dport=dest.port,
            proto=Proto.TCP,
            tcp_flags="ACK" if more else "PSH,ACK",
            length=TCP_DATA_HEADER + data,
        )
    sport = rng.randint(*EPHEMERAL_PORTS)
    if dest.proto is Proto.TCP:
        return Packet(
            src=src_ip,
            dst=dst,
            sport=sport,
            dport=dest.port,
            proto=dest.proto,
            tcp_flags="SYN",
            mss=mtu - MSS_HEADERS,
        )
    length = UDP_HEADERS + (size or 0)
    return Packet(
        src=src_ip,
        dst=dst,
        sport=sport,
        dport=dest.port,
        proto=dest.proto,
        tcp_flags="",
        length=length,
        df=length <= mtu,
    )


def _segment_room(segment: _Segment, mtu: int) -> int:
    """The data a full segment carries: the smaller of the two MSS (tcp_sync_mss clamps the
    route's to what the peer offered), less the timestamp option."""
    return min(mtu - MSS_HEADERS, segment.answered) - TIMESTAMP_OPTION


def _size_clause(
    label: str, pkt: Packet, mtu: int, dev: str, size: int | None, segment: _Segment | None
) -> str:
    """The first packet's size, in words: the MSS a SYN offers, whether a datagram fits."""
    if segment is not None:
        data = pkt.length - TCP_DATA_HEADER
        room = _segment_room(segment, mtu)
        rest = (size or 0) - data
        text = (
            f"it carries {data} of the {size} bytes ({pkt.length} bytes with IPv4 20, TCP 20"
            f" and timestamps 12, DF set): the handshake's MSS are {segment.offered} (its SYN)"
            f" and {segment.answered} (the SYN-ACK), so a segment holds at most"
            f" min({mtu - MSS_HEADERS}, {segment.answered}) − {TIMESTAMP_OPTION} = {room} bytes"
        )
        if rest > 0:
            text += f"; the other {rest} bytes follow in further segments"
        return text
    if pkt.proto is Proto.TCP:
        return (
            f"its SYN ({pkt.length} bytes, DF set) offers MSS {pkt.mss}: {label}'s {dev} MTU"
            f" {mtu} − {MSS_HEADERS}"
        )
    payload = pkt.length - UDP_HEADERS
    text = f"the datagram is {pkt.length} bytes (IPv4 20, UDP 8, {payload} of payload)"
    if pkt.df:
        return text + f", DF set: it fits {dev}'s MTU of {mtu} (IP_PMTUDISC_WANT)"
    return (
        text + f", DF not set: it is larger than {dev}'s MTU of {mtu}, so the kernel will send"
        " it in fragments (IP_PMTUDISC_WANT)"
    )


def _verdict(
    end: End, src: Source, dest: Destination, dst_ip: IPv4Address, walker: Walker
) -> tuple[Verdict, str]:
    if end.verdict is Verdict.DROPPED and walker.too_big is not None and walker.pmtu_outcome:
        return end.verdict, f"{end.reason}; {walker.pmtu_outcome}"
    if end.verdict is Verdict.DELIVERED:
        served = walker.endpoint or f"{dst_ip}:{dest.port}"
        via = "" if served == f"{dst_ip}:{dest.port}" else f" through {dst_ip}:{dest.port}"
        return Verdict.DELIVERED, (
            f"{src.label} reached {served}{via}, and the reply came back from {dst_ip}:{dest.port}"
        )
    return end.verdict, end.reason


__all__ = ["SharedState", "repeat", "trace", "trace_many", "trace_shared"]
