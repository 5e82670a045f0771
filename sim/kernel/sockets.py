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
from sim.kernel.outcome import End

if TYPE_CHECKING:
    from sim.kernel.walk import Walker

__all__ = ["deliver"]


def deliver(walker: Walker, ns: Netns, pkt: Packet) -> End:
    """The packet reached its destination netns: a listening socket, or the client's own."""
    if walker.direction is Direction.REPLY:
        assert walker.reply_socket is not None
        client_ns, request = walker.reply_socket
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
            f"{pkt.src}:{pkt.sport}, exactly the address the request was sent to, so the "
            "connection is established",
            dt=2,
        )
        return End(Verdict.DELIVERED, "", pkt, ns.name)
    listener = ns.listener(pkt.proto, pkt.dport)
    if listener is None:
        declared = sorted({f"{s.proto.value}/{s.port}" for s in ns.listeners})
        if ns.kind is NetnsKind.NODE:
            what = f" (they declare {', '.join(declared)}" if declared else " (none declares any"
            who = f"no hostNetwork pod on {ns.label} declares port"
        else:
            what = f" (it declares {', '.join(declared)}" if declared else " (it declares none"
            who = f"pod {ns.label} declares no port"
        reason = (
            f"{who} {pkt.proto.value}/{pkt.dport}{what}; kubehop "
            "takes declared container ports as the listening ones): "
            + (
                "the kernel answers with a TCP RST"
                if pkt.proto is Proto.TCP
                else "the kernel answers with ICMP port unreachable"
            )
        )
        walker.emit(HopKind.DROP, ns, pkt, pkt, reason, dt=2)
        return End(Verdict.REFUSED, reason, pkt, ns.name)
    walker.emit(
        HopKind.DELIVER,
        ns,
        pkt,
        pkt,
        f"{listener.owner} in {ns.label} accepts the connection on port {pkt.dport}; it sees "
        f"the request coming from {pkt.src}:{pkt.sport}",
        detail=f"{pkt.proto.value} LISTEN 0.0.0.0:{pkt.dport} ({listener.owner})",
        note="kubehop takes a container's declared ports as the ports it listens on",
        dt=2,
    )
    return End(Verdict.DELIVERED, "", pkt, ns.name)
