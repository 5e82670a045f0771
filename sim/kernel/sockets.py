"""The end of a packet's way: a socket that takes it, or the kernel's refusal.

A request is delivered when a socket listens on its protocol and port in the
destination netns; a reply when it reaches the client's connected socket from
exactly the address the request was sent to (else the client answers RST: the
reply missed its reverse NAT).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.packet import Packet, Proto
from model.trace import Direction, HopKind, Verdict
from sim.kernel.devices import Netns, NetnsKind
from sim.kernel.mtu import TCP_DATA_HEADER
from sim.kernel.outcome import End
from sim.kernel.tunnel import decapsulate, tunnel_for

if TYPE_CHECKING:
    from sim.kernel.walk import Walker

__all__ = ["deliver"]


def deliver(walker: Walker, ns: Netns, pkt: Packet) -> End:
    """The packet reached its destination netns: a listening socket, or the client's own."""
    device = tunnel_for(ns, pkt)
    if device is not None:
        return decapsulate(walker, ns, device, pkt)
    if walker.direction is Direction.REPLY:
        assert walker.reply_socket is not None
        client_ns, request = walker.reply_socket
        if walker.refusal is not None:
            return _refusal(walker, ns, pkt, client_ns, request, walker.refusal)
        expected = (request.dst, request.dport)
        if ns.name != client_ns or pkt.dport != request.sport or pkt.dst != request.src:
            return End(
                Verdict.DROPPED,
                f"the reply reaches {ns.label}, but no socket there is waiting for "
                f"{pkt.dst}:{pkt.dport}",
                pkt,
                ns.name,
            )
        if (pkt.src, pkt.sport) != expected:
            reason = (
                f"the reply arrives from {pkt.src}:{pkt.sport}, but the socket is connected "
                f"to {expected[0]}:{expected[1]}, so the client's TCP stack answers with RST "
                "and the connection fails: the reply was not reverse-NATed (it did not pass "
                "back through the node that rewrote the request)"
            )
            walker.emit(HopKind.DROP, ns, pkt, pkt, reason, dt=2)
            return End(Verdict.DROPPED, reason, pkt, ns.name)
        walker.emit(
            HopKind.DELIVER,
            ns,
            pkt,
            pkt,
            f"the reply reaches the client socket in {ns.label}: it comes from "
            f"{pkt.src}:{pkt.sport}, exactly the address the request was sent to, so "
            + (
                "the connection is established"
                if "SYN" in request.tcp_flags.split(",") or request.proto is not Proto.TCP
                else f"the server has acknowledged the segment's {_data(request)} bytes"
            ),
            dt=2,
        )
        return End(Verdict.DELIVERED, "", pkt, ns.name)
    listener = ns.listener(pkt.proto, pkt.dport)
    if listener is not None:
        walker.emit(
            HopKind.DELIVER,
            ns,
            pkt,
            pkt,
            (
                f"{listener.owner} in {ns.label} accepts the connection on port {pkt.dport}"
                if not _is_data(pkt)
                else f"{listener.owner} in {ns.label} reads the segment's {_data(pkt)} bytes on"
                f" its connection on port {pkt.dport}"
            )
            + f"; it sees the request coming from {pkt.src}:{pkt.sport}",
            detail=f"{pkt.proto.value} LISTEN 0.0.0.0:{pkt.dport} ({listener.owner})",
            note="kubehop takes a container's declared ports as the ports it listens on",
            dt=2,
        )
        return End(Verdict.DELIVERED, "", pkt, ns.name)
    service = ns.listed.get((pkt.proto, pkt.dport))
    if service is not None:
        declared = ", ".join(sorted({f"{s.proto.value}/{s.port}" for s in ns.listeners}))
        otherwise = (
            f" (its containers declare {declared}: if only those listen, the kernel refuses)"
            if declared
            else ""
        )
        assumed = (
            f"assumed: {service}'s endpoints list {pkt.dst}:{pkt.dport}/{pkt.proto.value}, so"
            f" kubehop takes a process in {ns.label} to listen there{otherwise}; the dump"
            " cannot show listening sockets"
        )
        walker.assumptions.append(assumed)
        walker.emit(
            HopKind.DELIVER,
            ns,
            pkt,
            pkt,
            f"{ns.label} accepts the connection on port {pkt.dport} (assumed); it sees the"
            f" request coming from {pkt.src}:{pkt.sport}",
            detail=f"{pkt.proto.value} LISTEN 0.0.0.0:{pkt.dport} (assumed: listed by {service})",
            note=assumed,
            dt=2,
        )
        return End(Verdict.DELIVERED, "", pkt, ns.name)
    if ns.ports_declared:
        return _refused(walker, ns, pkt)
    return _unknown(walker, ns, pkt)


def _refusal(
    walker: Walker, ns: Netns, pkt: Packet, client_ns: str, request: Packet, errno: str
) -> End:
    """The answer to a refused request reaches a netns: the client's socket fails, or no
    socket owns what the answer names and it is dropped (the client times out)."""
    icmp = pkt.proto is Proto.ICMP and pkt.inner is not None
    # An ICMP error finds its socket by the header it quotes (tcp_v4_err, udp_err); a RST
    # by its own addresses, which must be those the socket is connected to.
    if icmp and pkt.inner is not None:
        named = (pkt.inner.src, pkt.inner.sport, pkt.inner.dst, pkt.inner.dport)
    else:
        named = (pkt.dst, pkt.dport, pkt.src, pkt.sport)
    wanted = (request.src, request.sport, request.dst, request.dport)
    what = "ICMP error" if icmp else "RST"
    if walker.too_big is not None and icmp:
        return _frag_needed(walker, ns, pkt, client_ns, request, named, wanted)
    if ns.name != client_ns or named != wanted:
        reason = (
            f"the {what} reaches {ns.label}, but no socket there has the connection it names"
            f" ({named[0]}:{named[1]} → {named[2]}:{named[3]}; the client's is"
            f" {wanted[0]}:{wanted[1]} → {wanted[2]}:{wanted[3]}): the kernel ignores it, and"
            " the client waits until its connect() times out"
        )
        walker.emit(HopKind.DROP, ns, pkt, pkt, reason, dt=2)
        return End(Verdict.DROPPED, reason, pkt, ns.name)
    call = "connect()" if request.proto is Proto.TCP else "the connected UDP socket's next call"
    how = (
        f"the header it quotes, {named[0]}:{named[1]} → {named[2]}:{named[3]}, is the socket's own"
        " connection"
        if icmp
        else f"it comes from {pkt.src}:{pkt.sport}, the address the socket is connected to"
    )
    walker.emit(
        HopKind.DELIVER,
        ns,
        pkt,
        pkt,
        f"the {what} reaches the client socket in {ns.label}: {how}, so {call} fails with"
        f" {errno}" + (" (connection refused)" if errno == "ECONNREFUSED" else ""),
        detail=f"{'tcp_v4_err' if request.proto is Proto.TCP else 'udp_err'}: sk_err = {errno}"
        if icmp
        else f"tcp_reset: sk_err = {errno}",
        dt=2,
    )
    return End(Verdict.DELIVERED, "", pkt, ns.name)


def _is_data(pkt: Packet) -> bool:
    """A TCP segment after the handshake (kubehop's `--size`), not a SYN."""
    return pkt.proto is Proto.TCP and "SYN" not in pkt.tcp_flags.split(",")


def _data(pkt: Packet) -> int:
    """The bytes of data a TCP segment carries (after IPv4 20, TCP 20, timestamps 12)."""
    return pkt.length - TCP_DATA_HEADER


def _frag_needed(
    walker: Walker,
    ns: Netns,
    pkt: Packet,
    client_ns: str,
    request: Packet,
    named: tuple[object, ...],
    wanted: tuple[object, ...],
) -> End:
    """ICMP fragmentation needed reaches the sender: its socket learns the path MTU
    (udp_err, tcp_v4_err), or no socket owns the header it quotes and nothing is learned."""
    assert walker.too_big is not None
    mtu = walker.too_big[0]
    tcp = request.proto is Proto.TCP
    if ns.name != client_ns or named != wanted:
        again = (
            "TCP retransmits the segment at the same size, and it is dropped again"
            if tcp
            else "every datagram this large is lost the same way"
        )
        outcome = (
            f"the sender never learns the path MTU: the error's quoted header names"
            f" {named[0]}:{named[1]} → {named[2]}:{named[3]}, not its socket's"
            f" {wanted[0]}:{wanted[1]} → {wanted[2]}:{wanted[3]}, so its kernel ignores it and"
            f" {again} (a path MTU black hole)"
        )
        walker.pmtu_outcome = outcome
        reason = f"the ICMP fragmentation needed reaches {ns.label}, but {outcome}"
        walker.emit(
            HopKind.DROP,
            ns,
            pkt,
            pkt,
            reason,
            detail=f"{'tcp_v4_err' if tcp else 'udp_err'}: no socket for the quoted header",
            note="a NAT on the way was not undone in the quoted header: no conntrack that"
            " passed the error knew the connection",
            dt=2,
        )
        return End(Verdict.DROPPED, reason, pkt, ns.name)
    if tcp:
        learned = (
            f"tcp_v4_err: the socket's path MTU to {request.dst} becomes {mtu}"
            f" (tcp_v4_mtu_reduced): TCP lowers its MSS to {mtu - 40} and sends the data"
            " again in smaller segments; the application sees no error"
        )
        detail = f"tcp_v4_err: ICMP_FRAG_NEEDED mtu {mtu} → tcp_v4_mtu_reduced"
    else:
        learned = (
            f"udp_err: the route to {request.dst} learns MTU {mtu} (ipv4_sk_update_pmtu) and"
            f" the connected socket's next call fails with EMSGSIZE; from then on a datagram"
            f" larger than {mtu} bytes leaves without DF, in fragments (IP_PMTUDISC_WANT)"
        )
        detail = f"udp_err: ICMP_FRAG_NEEDED mtu {mtu}: sk_err = EMSGSIZE"
    walker.pmtu_outcome = learned
    walker.emit(
        HopKind.DELIVER,
        ns,
        pkt,
        pkt,
        f"the ICMP fragmentation needed reaches the client socket in {ns.label}: the header it"
        f" quotes is the socket's own connection; {learned}",
        detail=detail,
        dt=2,
    )
    return End(Verdict.DELIVERED, "", pkt, ns.name)


def _refused(walker: Walker, ns: Netns, pkt: Packet) -> End:
    """A pod whose containers declare ports, none of them this one: the teaching case."""
    declared = ", ".join(sorted({f"{s.proto.value}/{s.port}" for s in ns.listeners}))
    reason = (
        f"pod {ns.label} declares no port {pkt.proto.value}/{pkt.dport} (it declares"
        f" {declared}; kubehop takes declared container ports as the listening ones): "
        + (
            "the kernel answers with a TCP RST"
            if pkt.proto is Proto.TCP
            else "the kernel answers with ICMP port unreachable"
        )
    )
    walker.emit(HopKind.DROP, ns, pkt, pkt, reason, dt=2)
    return End(Verdict.REFUSED, reason, pkt, ns.name)


def _unknown(walker: Walker, ns: Netns, pkt: Packet) -> End:
    """A port nothing in the dump speaks of: whether a process listens there is unknown."""
    if ns.kind is NetnsKind.NODE:
        declared = ", ".join(sorted({f"{s.proto.value}/{s.port}" for s in ns.listeners}))
        known = f" (its hostNetwork pods declare {declared})" if declared else ""
        why = f"{ns.label} runs processes no pod declares{known}"
    elif ns.kind is NetnsKind.POD:
        why = f"pod {ns.label}'s containers declare no ports (containerPort is informational)"
    else:
        why = f"{ns.label} is a machine kubehop knows only by its address"
    reason = (
        f"the request reaches {ns.label} on {pkt.proto.value}/{pkt.dport}, and no socket kubehop"
        f" knows of listens there: {why}, and the dump cannot show listening sockets, so"
        " whether the connection is accepted or refused is unknown"
    )
    walker.assumptions.append(reason)
    walker.emit(HopKind.UNKNOWN, ns, pkt, pkt, reason, dt=2)
    return End(Verdict.UNKNOWN, reason, pkt, ns.name)
