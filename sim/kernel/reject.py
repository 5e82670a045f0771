"""The answer to a refused packet: the ICMP error or TCP RST Linux sends back to its sender.

A forwarded packet too big for the next device with DF set is answered too:
ICMP fragmentation needed, with that device's MTU (ip_forward).

A REJECT rule (iptables' `--reject-with`, nft's `reject`), IPVS with no real
server (ip_vs_leave) and a port nobody listens on all answer the sender: an
ICMP destination unreachable that quotes the refused packet's header, or for
`tcp-reset` and a closed TCP port a RST. The answer is generated in the netns
that refused the packet and walked back like any reply, so conntrack (RELATED
for the ICMP error) undoes the connection's NAT on the way, in the quoted
header too, and the client's socket learns why its connect() failed.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from types import MappingProxyType
from typing import TYPE_CHECKING

from model.netfilter import Hook
from model.packet import ConntrackEntry, CtState, Packet, Proto
from model.trace import Direction, HopKind, Verdict
from sim.kernel.conntrack import ConntrackTable, CtDirection
from sim.kernel.devices import Netns
from sim.kernel.netfilter import InFlight, NetfilterState, RecentTable
from sim.kernel.outcome import End

if TYPE_CHECKING:
    from sim.kernel.walk import Walker

__all__ = ["ERRNO", "FRAG_NEEDED", "answer_refusal"]

ERRNO: dict[str, tuple[int, str]] = {
    "icmp-net-unreachable": (0, "ENETUNREACH"),
    "icmp-host-unreachable": (1, "EHOSTUNREACH"),
    "icmp-proto-unreachable": (2, "ENOPROTOOPT"),
    "icmp-port-unreachable": (3, "ECONNREFUSED"),
    "icmp-net-prohibited": (9, "ENETUNREACH"),
    "icmp-host-prohibited": (10, "EHOSTUNREACH"),
    "icmp-admin-prohibited": (13, "EHOSTUNREACH"),
}
"""`--reject-with` ICMP types: the destination-unreachable code sent, and the errno the
sender's socket gets for it (net/ipv4/icmp.c's icmp_err_convert)."""

FRAG_NEEDED = "icmp-frag-needed"
"""Destination unreachable, code 4 (ICMP_FRAG_NEEDED): sent by ip_forward for a packet with
DF set that does not fit the next device; it carries that device's MTU."""

_FRAG_NEEDED_ERRNO = (4, "EMSGSIZE")

_RATE_NOTE = (
    "kubehop sends every error, where the kernel rate-limits them (net.ipv4.icmp_ratelimit,"
    " icmp_msgs_per_sec)"
)
_INBOUND_NOTE = (
    "kubehop assumes net.ipv4.icmp_errors_use_inbound_ifaddr=0, the default: the error leaves"
    " from the address routing chooses toward the sender, not the one the packet came in on; "
    + _RATE_NOTE
)


def answer_refusal(walker: Walker, end: End) -> End | None:
    """Send the answer to the packet `end` refused, back to its sender; how that walk ended.

    None when the refusal sends nothing (a DROP, an unknown port): the sender is left to
    time out. Call after `walker.begin_reply`.
    """
    ns = walker.network.netns(end.netns)
    refused = end.packet
    if end.verdict is Verdict.DROPPED and walker.too_big is not None:
        return _icmp(walker, ns, refused, FRAG_NEEDED, hook=None, mtu=walker.too_big[0])
    if end.verdict is Verdict.REFUSED:
        if refused.proto is Proto.TCP:
            return _reset(walker, ns, refused, "tcp_v4_send_reset: no socket has this port")
        return _icmp(walker, ns, refused, "icmp-port-unreachable", hook=None)
    if end.verdict is not Verdict.REJECTED or walker.rejected_at is None:
        return None
    hook, reject_with = walker.rejected_at
    if reject_with == "tcp-reset" and refused.proto is Proto.TCP:
        return _reset(
            walker, ns, refused, "nf_send_reset: the REJECT rule's --reject-with tcp-reset"
        )
    if reject_with not in ERRNO:
        reject_with = "icmp-port-unreachable"
    return _icmp(walker, ns, refused, reject_with, hook=hook)


def _icmp(
    walker: Walker,
    ns: Netns,
    refused: Packet,
    reject_with: str,
    *,
    hook: Hook | None,
    mtu: int | None = None,
) -> End | None:
    """icmp_send(): an ICMP destination unreachable quoting `refused`, from the address
    the kernel picks, through this netns's OUTPUT and POSTROUTING; for fragmentation
    needed, with the next-hop `mtu`."""
    source, why, routed = _error_source(walker, ns, refused, hook)
    if source is None:
        return None
    code, errno = _FRAG_NEEDED_ERRNO if reject_with == FRAG_NEEDED else ERRNO[reject_with]
    quoted = refused.model_copy(update={"src_mac": None, "dst_mac": None, "mark": 0, "inner": None})
    error = Packet(
        src=source,
        dst=refused.src,
        sport=0,
        dport=0,
        proto=Proto.ICMP,
        tcp_flags="",
        inner=quoted,
    )
    walker.refusal = errno
    what = reject_with.removeprefix("icmp-")
    if mtu is not None:
        what = f"fragmentation needed, next-hop MTU {mtu}"
    walker.emit(
        HopKind.SEND,
        ns,
        error,
        error,
        f"{ns.label}'s kernel answers with an ICMP destination unreachable"
        f" ({what}) to {refused.src}, from {source} ({why}); it"
        f" quotes the refused packet's header, {_quoted(quoted)}",
        detail=f"icmp type 3 code {code} ({reject_with}) {source} > {refused.src}; quotes"
        f" {_quoted(quoted)}" + (f"; mtu {mtu}; {error.length} bytes" if mtu is not None else ""),
        note=_INBOUND_NOTE if routed else _RATE_NOTE,
        dt=2,
    )
    _attach(walker, ns, error)
    return walker.local_out(ns, error)


def _attach(walker: Walker, ns: Netns, error: Packet) -> None:
    """nf_ct_attach (icmp_glue_bits): the error carries the conntrack entry of the packet it
    answers, confirmed or not, as RELATED in the reply direction; NAT then undoes that
    connection's rewrites in the error and in the header it quotes."""
    entry = _refused_entry(walker, ns)
    if entry is None:
        return
    state = walker.state.get(ns.name) or NetfilterState(ConntrackTable.of(), RecentTable())
    carried = InFlight(entry=entry, direction=CtDirection.REPLY, ctstate=CtState.RELATED)
    walker.state[ns.name] = replace(
        state, in_flight=MappingProxyType({**state.in_flight, error.tuple(): carried})
    )


def _refused_entry(walker: Walker, ns: Netns) -> ConntrackEntry | None:
    """The entry the refused request last had in `ns`, as its last hook there left it."""
    for hop in reversed(walker.hops):
        if hop.direction is Direction.REQUEST and hop.where.netns == ns.name and hop.conntrack:
            return hop.conntrack
    return None


def _reset(walker: Walker, ns: Netns, refused: Packet, how: str) -> End:
    """A TCP RST back to the sender, from the address and port it sent to."""
    rst = Packet(
        src=refused.dst,
        dst=refused.src,
        sport=refused.dport,
        dport=refused.sport,
        proto=Proto.TCP,
        tcp_flags="RST,ACK",
    )
    walker.refusal = "ECONNREFUSED"
    walker.emit(
        HopKind.SEND,
        ns,
        rst,
        rst,
        f"{ns.label} answers the SYN with a TCP RST from {rst.src}:{rst.sport}, the address it"
        " was sent to",
        detail=f"{how}; RST,ACK {rst.src}:{rst.sport} > {rst.dst}:{rst.dport}",
        dt=2,
    )
    return walker.local_out(ns, rst)


def _error_source(
    walker: Walker, ns: Netns, refused: Packet, hook: Hook | None
) -> tuple[IPv4Address | None, str, bool]:
    """The ICMP error's source address as __icmp_send() picks it, why in a clause, and
    whether routing chose it.

    A packet for the netns itself (its route RTCF_LOCAL) is answered from the
    address it was sent to. Any other (forwarded, or rejected at PREROUTING,
    where nf_reject_fill_skb_dst routed it back to its sender) leaves the choice
    to the route back to the sender: its preferred source, else the out device's
    address.
    """
    if hook is not Hook.PREROUTING and ns.is_local(refused.dst):
        return refused.dst, "the address the refused packet was sent to", False
    route = walker.route(ns, refused.src)
    if route is None:
        return None, "", True
    if route.src is not None:
        return route.src, f"the preferred source of the route back, {route}", True
    address = ns.iface(route.dev).primary
    return address, f"the address of {route.dev}, by which the route back leaves", True


def _quoted(pkt: Packet) -> str:
    return f"{pkt.src}:{pkt.sport} → {pkt.dst}:{pkt.dport} {pkt.proto.value}"
