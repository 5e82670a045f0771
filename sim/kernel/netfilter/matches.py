"""Match modules as the kernel evaluates them, one function per module.

Each function answers for one packet at one hook. Most read only the packet
and the `HookContext`; `-m recent` also returns the lists it changed, and
`-m conntrack` reads the packet's connection. `-m statistic` draws from the
hook's generator and is the hook walk's own (`sim.kernel.netfilter.hook`).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from model.netfilter import (
    AddrMatch,
    AddrtypeMatch,
    CommentMatch,
    ConntrackMatch,
    FragmentMatch,
    IcmpMatch,
    IfaceMatch,
    MarkMatch,
    Match,
    MultiportMatch,
    NfacctMatch,
    PhysdevMatch,
    PortMatch,
    ProtoMatch,
    RecentMatch,
    TcpFlagsMatch,
)
from model.packet import ConntrackEntry, CtState, Packet
from sim.kernel.conntrack import CtDirection
from sim.kernel.netfilter.state import RECENT_STAMPS, HookContext, RecentTable

__all__ = ["addr_type", "conntrack_match", "physdev_match", "recent_match", "stateless_match"]

_LOOPBACK = IPv4Network("127.0.0.0/8")
_MULTICAST = IPv4Network("224.0.0.0/4")
_ALL_TCP_FLAGS = frozenset({"SYN", "ACK", "FIN", "RST", "URG", "PSH"})


def stateless_match(m: Match, pkt: Packet, ctx: HookContext) -> bool | None:
    """Whether `m` matches, for every module that needs only the packet and the hook.

    None for the modules that need more (`conntrack`, `statistic`, `recent`,
    and matches kubehop has no model of).
    """
    if isinstance(m, AddrMatch):
        return ((pkt.src if m.field == "src" else pkt.dst) in m.net) != m.negate
    if isinstance(m, ProtoMatch):
        return (m.proto == "all" or m.proto == pkt.proto.value) != m.negate
    if isinstance(m, PortMatch):
        port = pkt.dport if m.field == "dport" else pkt.sport
        return (port in m.ports) != m.negate
    if isinstance(m, CommentMatch | NfacctMatch):
        return True
    if isinstance(m, IfaceMatch):
        return iface_matches(ctx.in_iface if m.field == "in" else ctx.out_iface, m.name) != m.negate
    if isinstance(m, MarkMatch):
        return ((pkt.mark & m.mask) == m.value) != m.negate
    if isinstance(m, AddrtypeMatch):
        return addrtype_match(m, pkt, ctx)
    if isinstance(m, MultiportMatch):
        ports = (
            (pkt.sport, pkt.dport)
            if m.field == "port"
            else (pkt.dport if m.field == "dport" else pkt.sport,)
        )
        return any(p in r for p in ports for r in m.ranges) != m.negate
    if isinstance(m, TcpFlagsMatch):
        flags = frozenset(f.strip().upper() for f in pkt.tcp_flags.split(","))
        mask, comp = _flag_set(m.mask), _flag_set(m.comp)
        return (pkt.proto.value == "tcp" and flags & mask == comp) != m.negate
    if isinstance(m, PhysdevMatch):
        return physdev_match(m, ctx)
    if isinstance(m, FragmentMatch):
        return m.negate  # simulated packets are never fragments
    if isinstance(m, IcmpMatch):
        return False  # simulated packets are never ICMP
    return None


def recent_match(
    m: RecentMatch, pkt: Packet, now: float, recent: RecentTable
) -> tuple[bool, RecentTable]:
    """xt_recent's `recent_mt`, with its quirk: `--update` refreshes only a true result.

    Returns the result and the lists as the packet leaves them.
    """
    raw = pkt.src if m.side == "src" else pkt.dst
    addr = IPv4Address(int(raw) & int(m.mask))
    stamps = recent.stamps(m.name, addr)
    result = m.negate
    if stamps is None:
        if m.command == "set":
            recent = recent.with_stamps(m.name, addr, (now,))
            result = not result
        return result, recent
    if m.command == "set":
        result = not result
    elif m.command == "remove":
        return not result, recent.with_stamps(m.name, addr, None)
    else:
        oldest = now - m.seconds if m.seconds else None
        hits = 0
        for stamp in stamps:
            if oldest is not None and stamp < oldest:
                continue
            hits += 1
            if not m.hitcount or hits >= m.hitcount:
                result = not result
                break
        if m.reap and oldest is not None:
            recent = _reap(recent, m.name, addr, oldest)
    if m.command == "set" or (m.command == "update" and result):
        recent = recent.with_stamps(m.name, addr, (*stamps, now)[-RECENT_STAMPS:])
    return result, recent


def _reap(recent: RecentTable, name: str, working: IPv4Address, oldest: float) -> RecentTable:
    # The kernel reaps at most the least recently updated entry per packet.
    entries = recent.lists.get(name, {})
    others = [(stamps[-1], addr) for addr, stamps in entries.items() if addr != working and stamps]
    if others:
        last, addr = min(others)
        if last < oldest:
            return recent.with_stamps(name, addr, None)
    return recent


def conntrack_match(
    m: ConntrackMatch, entry: ConntrackEntry | None, ctstate: CtState, direction: CtDirection
) -> bool:
    """xt_conntrack's `conntrack_mt`, option by option in its order (`entry` None: untracked)."""
    if m.states is not None:
        states = {ctstate.value}
        if entry is not None:
            if entry.dnat:
                states.add("DNAT")
            if entry.snat:
                states.add("SNAT")
        if bool(states.intersection(m.states)) == m.states_negate:
            return False
    if entry is None:
        return m.states is not None
    if m.direction is not None and (direction.value.upper() != m.direction):
        return False
    if m.proto is not None and (
        (m.proto == "all" or entry.original.proto.value == m.proto) == m.proto_negate
    ):
        return False
    for cond in m.addrs:
        tup = entry.original if cond.option.startswith("ctorig") else entry.reply
        addr = tup.src if cond.option.endswith("src") else tup.dst
        if (addr in cond.net) == cond.negate:
            return False
    for pcond in m.ports:
        tup = entry.original if pcond.option.startswith("ctorig") else entry.reply
        port = tup.sport if pcond.option.endswith("srcport") else tup.dport
        if (port in pcond.ports) == pcond.negate:
            return False
    if m.statuses is not None:
        # ASSURED is simplified to SEEN_REPLY; the kernel sets it once
        # TCP's handshake completes.
        status = {"CONFIRMED"} if entry.confirmed else set()
        if entry.state is CtState.ESTABLISHED:
            status |= {"SEEN_REPLY", "ASSURED"}
        if bool(status.intersection(m.statuses)) == m.statuses_negate:
            return False
    return True


def addrtype_match(m: AddrtypeMatch, pkt: Packet, ctx: HookContext) -> bool:
    """xt_addrtype: the source's and destination's route types."""
    src_ok = not m.src_types or (addr_type(pkt.src, m, ctx) in m.src_types) != m.src_negate
    return src_ok and (
        not m.dst_types or (addr_type(pkt.dst, m, ctx) in m.dst_types) != m.dst_negate
    )


def addr_type(addr: IPv4Address, m: AddrtypeMatch, ctx: HookContext) -> str:
    """The route type `inet_addr_type` gives; other addresses are assumed routable (UNICAST)."""
    if addr == IPv4Address("0.0.0.0") or addr == IPv4Address("255.255.255.255"):
        return "BROADCAST"
    if addr in _MULTICAST:
        return "MULTICAST"
    if m.limit_iface_in:
        local = addr in ctx.in_iface_addrs or (ctx.in_iface == "lo" and addr in _LOOPBACK)
    elif m.limit_iface_out:
        local = addr == ctx.out_iface_addr or (ctx.out_iface == "lo" and addr in _LOOPBACK)
    else:
        local = addr in ctx.local_addrs or addr in _LOOPBACK
    if local:
        return "LOCAL"
    if addr in ctx.broadcast_addrs:
        return "BROADCAST"
    return "UNICAST"


def physdev_match(m: PhysdevMatch, ctx: HookContext) -> bool:
    """xt_physdev's `physdev_mt`: a port test passes when the port is unknown."""
    if not ctx.bridged:
        # Not a bridged packet: only negated or absent options pass.
        return not (
            m.is_bridged is True
            or m.is_in is True
            or m.is_out is True
            or (m.physdev_in is not None and not m.in_negate)
            or (m.physdev_out is not None and not m.out_negate)
        )
    if m.is_bridged is not None and (ctx.physdev_out is not None) != m.is_bridged:
        return False
    if m.is_in is not None and (ctx.physdev_in is not None) != m.is_in:
        return False
    if m.is_out is not None and (ctx.physdev_out is not None) != m.is_out:
        return False
    in_ok = (
        m.physdev_in is None
        or ctx.physdev_in is None
        or iface_matches(ctx.physdev_in, m.physdev_in) != m.in_negate
    )
    return in_ok and (
        m.physdev_out is None
        or ctx.physdev_out is None
        or iface_matches(ctx.physdev_out, m.physdev_out) != m.out_negate
    )


def iface_matches(name: str | None, pattern: str) -> bool:
    """`-i`/`-o`/`--physdev-*` against a device name; `+` ends a prefix."""
    # The kernel compares against an empty name when there is no device.
    actual = name or ""
    if pattern.endswith("+"):
        return actual.startswith(pattern[:-1])
    return actual == pattern


def _flag_set(flags: tuple[str, ...]) -> frozenset[str]:
    if "ALL" in flags:
        return _ALL_TCP_FLAGS
    return frozenset(f for f in flags if f != "NONE")
