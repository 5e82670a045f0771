"""What an nft selector reads from a packet, and what a literal in a rule or set stands for.

Every value is brought to one comparable form: addresses and ports as
integers (a literal as an inclusive range, so a prefix `10.0.0.0/8` and a
range `a-b` compare like one address), protocols by number, `ct state` as a
set of flags, `fib … type` and interface names as strings.
"""

from __future__ import annotations

import functools
from ipaddress import IPv4Address, IPv4Network

from model.packet import ConntrackEntry, CtState, Packet
from sim.kernel.conntrack import CtDirection
from sim.kernel.netfilter.state import HookContext

__all__ = [
    "ADDRESS",
    "Literal",
    "literal",
    "packet_value",
]

ADDRESS = frozenset({"ip saddr", "ip daddr"})
"""Selectors whose values are IPv4 addresses."""
_PROTOCOL = frozenset({"meta l4proto", "ip protocol"})
_PORTS = {
    "th dport": None,
    "th sport": None,
    "tcp dport": "tcp",
    "tcp sport": "tcp",
    "udp dport": "udp",
    "udp sport": "udp",
    "sctp dport": "sctp",
    "sctp sport": "sctp",
}
_NUMBERS = frozenset({"meta mark", "ct mark"})
_PROTOCOLS = {
    "icmp": 1,
    "igmp": 2,
    "ipencap": 4,  # IP-in-IP, as /etc/protocols (and so nft) names protocol 4; "ipip" is 94
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "sctp": 132,
}
_LOOPBACK = IPv4Network("127.0.0.0/8")
_MULTICAST = IPv4Network("224.0.0.0/4")

Literal = tuple[int, int] | str | frozenset[str]
"""A literal's comparable form: an inclusive integer range, a name, or a set of flags."""

Value = int | str | frozenset[str] | None
"""What a selector reads from a packet; None when the packet has no such field
(`tcp dport` of a UDP packet), which matches nothing."""


@functools.lru_cache(maxsize=1 << 16)
def literal(selector: str, text: str) -> Literal:
    """The comparable form of `text` written against `selector`."""
    if selector in ADDRESS:
        if "/" in text:
            net = IPv4Network(text, strict=False)
            return int(net.network_address), int(net.broadcast_address)
        if "-" in text:
            lo, hi = text.split("-", 1)
            return int(IPv4Address(lo)), int(IPv4Address(hi))
        addr = int(IPv4Address(text))
        return addr, addr
    if selector in _PROTOCOL:
        number = _PROTOCOLS.get(text)
        value = number if number is not None else int(text)
        return value, value
    if selector in _PORTS or selector in _NUMBERS:
        if "-" in text:
            lo, hi = text.split("-", 1)
            return int(lo, 0), int(hi, 0)
        value = int(text, 0)
        return value, value
    if selector in ("ct state", "ct status"):
        return frozenset(text.split(","))
    return text


def packet_value(
    selector: str,
    pkt: Packet,
    ctx: HookContext,
    ctstate: CtState,
    entry: ConntrackEntry | None,
    direction: CtDirection | None,
) -> Value:
    """What `selector` reads from `pkt` at this hook."""
    if selector == "ip daddr":
        return int(pkt.dst)
    if selector == "ip saddr":
        return int(pkt.src)
    if selector in _PROTOCOL:
        return _PROTOCOLS[pkt.proto.value]
    if selector in _PORTS:
        needs = _PORTS[selector]
        if needs is not None and pkt.proto.value != needs:
            return None
        return pkt.dport if selector.endswith("dport") else pkt.sport
    if selector == "meta mark":
        return pkt.mark
    if selector == "ct state":
        return frozenset({ctstate.value.lower()})
    if selector == "ct mark":
        return entry.mark if entry is not None else None
    if selector == "ct status":
        if entry is None:
            return None
        status = {"confirmed"} if entry.confirmed else set()
        status |= {"dnat"} if entry.dnat else set()
        status |= {"snat"} if entry.snat else set()
        status |= {"seen-reply", "assured"} if entry.state is CtState.ESTABLISHED else set()
        return frozenset(status)
    if selector == "ct direction":
        return direction.value if direction is not None else None
    if selector == "fib daddr type":
        return _addr_type(pkt.dst, ctx)
    if selector == "fib saddr type":
        return _addr_type(pkt.src, ctx)
    if selector in ("meta iifname", "meta iif"):
        return ctx.in_iface
    if selector in ("meta oifname", "meta oif"):
        return ctx.out_iface
    return None


def _addr_type(addr: IPv4Address, ctx: HookContext) -> str:
    # nft_fib's `type`: the route type of the address in this netns (inet_addr_type).
    if addr == IPv4Address("255.255.255.255") or addr in ctx.broadcast_addrs:
        return "broadcast"
    if addr in _MULTICAST:
        return "multicast"
    if addr in ctx.local_addrs or addr in _LOOPBACK:
        return "local"
    return "unicast"


def matches(selector: str, value: Value, lit: Literal) -> bool:
    """Whether the packet's `value` for `selector` is the literal (or inside its range)."""
    if value is None:
        return False
    if isinstance(lit, tuple):
        return isinstance(value, int) and lit[0] <= value <= lit[1]
    if isinstance(lit, frozenset):
        return isinstance(value, frozenset) and bool(value & lit)
    if isinstance(value, str) and lit.endswith("*"):
        return value.startswith(lit[:-1])
    return value == lit
