"""Netfilter at one hook: tables in kernel priority order, conntrack, NAT.

`traverse` is a pure function of the hook context, the packet, the ruleset
and the netns's state; it returns the verdict, the rewritten packet, what
each table did, and the new state. The caller calls it once per hook in path
order and routes again after a DNAT.

Simplifications, each also noted where it is made: `-m statistic --mode
random` draws a float from the caller's generator; SNAT/MASQUERADE with
`--random`/`--random-fully` draws the port uniformly from the range
(1024-65535 by default) and a clash walks upward instead of from a hashed
offset; NAT ranges use their first address and port; conntrack ASSURED equals
SEEN_REPLY; a packet unknown to conntrack is always NEW (nf_conntrack_tcp_loose);
`-m recent --rttl` is ignored; addresses not local, multicast or broadcast
are UNICAST for `-m addrtype`; unknown matches never match and unknown
targets continue, both reported in `HookResult.assumptions`.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType
from typing import Literal

from model.netfilter import (
    AcceptTarget,
    AddrMatch,
    AddrtypeMatch,
    Chain,
    CommentMatch,
    ConnmarkTarget,
    ConntrackMatch,
    DnatTarget,
    DropTarget,
    FragmentMatch,
    Hook,
    IcmpMatch,
    IfaceMatch,
    JumpTarget,
    LogTarget,
    MarkMatch,
    MarkTarget,
    MasqueradeTarget,
    Match,
    MultiportMatch,
    NfacctMatch,
    NotrackTarget,
    PhysdevMatch,
    PortMatch,
    PortRange,
    ProtoMatch,
    RecentMatch,
    RejectTarget,
    ReturnTarget,
    Rule,
    RuleRef,
    Ruleset,
    SnatTarget,
    StatisticMatch,
    Table,
    TcpFlagsMatch,
    UnknownMatch,
    UnknownTarget,
)
from model.packet import ConntrackEntry, ConntrackTuple, CtState, Packet, Proto
from model.trace import ChainSpan, TableWalk
from sim.kernel.conntrack import ConntrackTable, CtDirection

INDEX_MIN_RULES = 32
"""Chains with at least this many rules are walked through a candidate index."""

RECENT_STAMPS = 20
"""Timestamps kept per `-m recent` entry (xt_recent's `ip_pkt_list_tot` default)."""

_U32 = 0xFFFFFFFF
_LOOPBACK = IPv4Network("127.0.0.0/8")
_MULTICAST = IPv4Network("224.0.0.0/4")
_ALL_TCP_FLAGS = frozenset({"SYN", "ACK", "FIN", "RST", "URG", "PSH"})

HookVerdict = Literal["ACCEPT", "DROP", "REJECT"]
"""What a hook decides about a packet."""


@dataclass(frozen=True)
class HookContext:
    """What the kernel knows about a packet at a hook, besides the packet."""

    hook: Hook
    """The hook being traversed."""
    in_iface: str | None = None
    """The input interface (`-i`); None at OUTPUT and POSTROUTING of local packets."""
    out_iface: str | None = None
    """The output interface (`-o`); None at PREROUTING and INPUT."""
    local_addrs: frozenset[IPv4Address] = frozenset()
    """Addresses of this netns (`-m addrtype --dst-type LOCAL`); 127.0.0.0/8 is always local."""
    out_iface_addr: IPv4Address | None = None
    """The primary address of `out_iface`, which MASQUERADE uses."""
    in_iface_addrs: frozenset[IPv4Address] = frozenset()
    """Addresses of `in_iface`, for `--limit-iface-in`."""
    broadcast_addrs: frozenset[IPv4Address] = frozenset()
    """Subnet broadcast addresses of this netns, for `--dst-type BROADCAST`."""
    physdev_in: str | None = None
    """The bridge port a bridged packet entered by (`-m physdev --physdev-in`)."""
    physdev_out: str | None = None
    """The bridge port a bridged packet leaves by (`-m physdev --physdev-out`)."""
    bridged: bool = False
    """The packet is being bridged and br_netfilter passes it through iptables."""
    now_s: float = 0.0
    """The virtual clock in seconds, for `-m recent --seconds`."""
    decide: Callable[[Rule], bool | None] | None = None
    """Overrides the draw of a rule's `-m statistic --mode random` (True: it matches);
    returning None, or no callable, draws from the generator as the kernel does."""
    foreign: Callable[[UnknownMatch, Packet], bool | None] | None = None
    """Evaluates a match the engine has no model of (`-m set` given an `ipset save`);
    returning None, or no callable, assumes it does not match and says so."""


@dataclass(frozen=True)
class RecentTable:
    """The `-m recent` lists of a netns: list name → address → timestamps, oldest first."""

    lists: Mapping[str, Mapping[IPv4Address, tuple[float, ...]]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Each list's entries."""

    def stamps(self, name: str, addr: IPv4Address) -> tuple[float, ...] | None:
        """The timestamps of `addr` in list `name`, None when it has no entry."""
        entries = self.lists.get(name)
        return None if entries is None else entries.get(addr)

    def with_stamps(
        self, name: str, addr: IPv4Address, stamps: tuple[float, ...] | None
    ) -> RecentTable:
        """A new table where `addr` has `stamps` in list `name` (None removes the entry)."""
        entries = dict(self.lists.get(name, {}))
        if stamps is None:
            entries.pop(addr, None)
        else:
            entries[addr] = stamps
        lists = dict(self.lists)
        lists[name] = MappingProxyType(entries)
        return RecentTable(MappingProxyType(lists))


@dataclass(frozen=True)
class InFlight:
    """The conntrack entry a packet carries between two hooks of one netns (`skb->_nfct`)."""

    entry: ConntrackEntry | None
    """The entry, None for an untracked packet."""
    direction: CtDirection
    """The packet's direction in that connection."""
    ctstate: CtState
    """The packet's conntrack state."""


@dataclass(frozen=True)
class NetfilterState:
    """One netns's netfilter state, shared by every flow through that netns."""

    conntrack: ConntrackTable = field(default_factory=ConntrackTable)
    """Confirmed connections."""
    recent: RecentTable = field(default_factory=RecentTable)
    """`-m recent` lists."""
    nth: Mapping[tuple[Table, str, int], int] = field(default_factory=lambda: MappingProxyType({}))
    """`-m statistic --mode nth` counters, one per rule as in the kernel."""
    in_flight: Mapping[ConntrackTuple, InFlight] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Entries carried by packets between hooks, keyed by each packet's tuple as it left.

    This is how a first packet's unconfirmed entry reaches POSTROUTING or
    INPUT, where it is confirmed, and how a packet looped through `lo` keeps
    its entry.
    """


@dataclass(frozen=True)
class HookResult:
    """What one hook did to a packet."""

    verdict: HookVerdict
    """ACCEPT lets the packet continue; DROP and REJECT end it here."""
    packet: Packet
    """The packet after NAT and MARK."""
    tables: tuple[TableWalk, ...]
    """Each table consulted (or skipped, with the reason), in priority order."""
    state: NetfilterState
    """The netns's state after this packet."""
    entry: ConntrackEntry | None
    """This packet's conntrack entry after the hook; None when untracked."""
    ctstate: CtState
    """The packet's conntrack state (`--ctstate`), without the virtual DNAT/SNAT."""
    direction: CtDirection | None = None
    """The packet's direction in its connection; None when untracked."""
    reject_with: str | None = None
    """For REJECT, what is sent back (`icmp-port-unreachable`, `tcp-reset`)."""
    assumptions: tuple[str, ...] = ()
    """Where the simulation had to guess: unknown matches and targets that were reached."""


class _Step(Enum):
    CT_IN = "conntrack"
    CONFIRM = "confirm"


# Kernel priorities: raw -300, conntrack -200, mangle -150, nat dst -100,
# filter 0, nat src 100, conntrack confirm INT_MAX.
_HOOK_STEPS: dict[Hook, tuple[Table | _Step, ...]] = {
    Hook.PREROUTING: (Table.RAW, _Step.CT_IN, Table.MANGLE, Table.NAT),
    Hook.INPUT: (Table.MANGLE, Table.FILTER, Table.NAT, _Step.CONFIRM),
    Hook.FORWARD: (Table.MANGLE, Table.FILTER),
    Hook.OUTPUT: (Table.RAW, _Step.CT_IN, Table.MANGLE, Table.NAT, Table.FILTER),
    Hook.POSTROUTING: (Table.MANGLE, Table.NAT, _Step.CONFIRM),
}

_DST_MANIP_HOOKS = frozenset({Hook.PREROUTING, Hook.OUTPUT})


def traverse(
    ctx: HookContext,
    pkt: Packet,
    ruleset: Ruleset,
    state: NetfilterState,
    rng: random.Random,
    *,
    index_min_rules: int | None = INDEX_MIN_RULES,
) -> HookResult:
    """Walk every table registered at `ctx.hook`, in kernel priority order.

    `index_min_rules=None` walks every chain linearly; the result is the same
    either way (the index only skips rules that cannot match).
    """
    run = _Run(ctx, ruleset, state, rng, index_min_rules, pkt)
    for step in _HOOK_STEPS[ctx.hook]:
        if step is _Step.CT_IN:
            run.conntrack_in()
        elif step is _Step.CONFIRM:
            run.confirm()
        elif isinstance(step, Table):
            if step is Table.NAT:
                walk = run.nat()
            else:
                walk = run.table(step) if run.has_chain(step) else None
            if walk is None:
                continue
            run.walks.append(walk)
            if walk.verdict in ("DROP", "REJECT"):
                return run.result("DROP" if walk.verdict == "DROP" else "REJECT")
    return run.result("ACCEPT")


class _Run:
    """The mutable scratch of one `traverse` call; nothing escapes it but frozen values."""

    def __init__(
        self,
        ctx: HookContext,
        ruleset: Ruleset,
        state: NetfilterState,
        rng: random.Random,
        index_min_rules: int | None,
        pkt: Packet,
    ) -> None:
        self.ctx = ctx
        self.ruleset = ruleset
        self.rng = rng
        self.index_min_rules = index_min_rules
        self.pkt = pkt
        self.conntrack = state.conntrack
        self.recent = state.recent
        self.nth = dict(state.nth)
        self.in_flight = dict(state.in_flight)
        self.walks: list[TableWalk] = []
        self.candidates: dict[int, tuple[_Key, list[int]]] = {}
        self.assumptions: list[str] = []
        self.untracked = False
        # A packet conntrack refuses to track (a SYN-ACK or RST of no known
        # connection): no entry, ctstate INVALID, never NATed.
        self.invalid = False
        self.reject_with: str | None = None
        self.entry: ConntrackEntry | None = None
        self.direction = CtDirection.ORIGINAL
        self.ctstate = CtState.NEW
        carried = self.in_flight.pop(pkt.tuple(), None)
        # A packet from a socket or the wire is looked up afresh; only one
        # looped through lo still carries the entry it had when it left.
        fresh = ctx.hook is Hook.OUTPUT or (ctx.hook is Hook.PREROUTING and ctx.in_iface != "lo")
        if carried is not None and not fresh:
            self.attached = True
            self.entry = carried.entry
            self.direction = carried.direction
            self.ctstate = carried.ctstate
            self.untracked = carried.entry is None and carried.ctstate is CtState.UNTRACKED
            self.invalid = carried.entry is None and carried.ctstate is CtState.INVALID
            if self.entry is not None and self.entry.confirmed:
                self.entry = self.conntrack.get(self.entry.original) or self.entry
        else:
            self.attached = False
            if ctx.hook not in (Hook.PREROUTING, Hook.OUTPUT):
                # The caller skipped the hook that looks packets up; do it here
                # so a lone POSTROUTING or INPUT call still sees the connection.
                self.conntrack_in()

    # --- conntrack -------------------------------------------------------

    def conntrack_in(self) -> None:
        if self.attached or self.untracked:
            return
        self.attached = True
        key = self.pkt.tuple()
        found = self.conntrack.lookup(key)
        if found is None and _starts_no_connection(self.pkt):
            # nf_conntrack_proto_tcp's tcp_new(): only a SYN (or, with the
            # default nf_conntrack_tcp_loose=1, a plain ACK) may open an entry.
            self.invalid = True
            self.entry = None
            self.ctstate = CtState.INVALID
            return
        if found is None:
            self.entry = ConntrackEntry(original=key, reply=key.inverted())
            self.direction = CtDirection.ORIGINAL
            self.ctstate = CtState.NEW
            return
        entry, self.direction = found.entry, found.direction
        if self.direction is CtDirection.REPLY and entry.state is not CtState.ESTABLISHED:
            entry = entry.model_copy(update={"state": CtState.ESTABLISHED})
            self.conntrack = self.conntrack.with_entry(entry)
        self.entry = entry
        self.ctstate = CtState.ESTABLISHED if entry.state is CtState.ESTABLISHED else CtState.NEW

    def confirm(self) -> None:
        if self.entry is not None and not self.entry.confirmed:
            self.entry = self.entry.model_copy(update={"confirmed": True})
            self.conntrack = self.conntrack.with_entry(self.entry)

    def set_entry(self, entry: ConntrackEntry) -> None:
        self.entry = entry
        if entry.confirmed:
            self.conntrack = self.conntrack.with_entry(entry)

    # --- tables ----------------------------------------------------------

    def has_chain(self, table: Table) -> bool:
        # iptables-nft registers a base chain only when the text declares it.
        return self.ruleset.chain(table, self.ctx.hook.value) is not None

    def nat(self) -> TableWalk | None:
        dst_manip = self.ctx.hook in _DST_MANIP_HOOKS
        present = self.has_chain(Table.NAT)
        entry = self.entry
        if self.untracked or entry is None:
            if not present:
                return None
            return TableWalk(
                table=Table.NAT,
                skipped="conntrack calls this packet INVALID (a TCP SYN-ACK or RST of no "
                "connection it knows), so nat is not consulted"
                if self.invalid
                else "untracked packets (raw NOTRACK) are never NATed",
                verdict="ACCEPT",
            )
        if not entry.confirmed:
            if not present:
                return None
            walk = self.table(Table.NAT)
            if walk.verdict == "ACCEPT" and not dst_manip:
                self.null_binding()
            return walk
        return self.nat_from_entry(entry, dst_manip, present)

    def nat_from_entry(
        self, entry: ConntrackEntry, dst_manip: bool, present: bool
    ) -> TableWalk | None:
        original = self.direction is CtDirection.ORIGINAL
        # The tuple this direction must end up with is the other direction's
        # tuple turned around; which half to rewrite depends on the hook.
        target = entry.reply.inverted() if original else entry.original.inverted()
        if dst_manip:
            needed = entry.dnat if original else entry.snat
            what = "repeats the DNAT" if original else "reverses the SNAT"
            change = f"dst {self.pkt.dst}:{self.pkt.dport} -> {target.dst}:{target.dport}"
        else:
            needed = entry.snat if original else entry.dnat
            what = "repeats the SNAT" if original else "reverses the DNAT"
            change = f"src {self.pkt.src}:{self.pkt.sport} -> {target.src}:{target.sport}"
        if needed:
            if dst_manip:
                self.pkt = self.pkt.model_copy(update={"dst": target.dst, "dport": target.dport})
            else:
                self.pkt = self.pkt.model_copy(update={"src": target.src, "sport": target.sport})
            reason = f"conntrack {what} of entry [{entry}]: {change}"
        else:
            reason = f"entry [{entry}] has nothing to rewrite here"
        if not present:
            return None
        return TableWalk(
            table=Table.NAT,
            skipped=f"nat is consulted only for a connection's first packet; {reason}",
            verdict="ACCEPT",
        )

    def null_binding(self) -> None:
        # With no SNAT rule the kernel still makes the reply tuple unique,
        # remapping the source port when another connection owns it.
        entry = self.entry
        if entry is None or entry.snat or not self.conntrack.tuple_in_use(entry.reply):
            return
        self.snat_to(self.pkt.src, None, randomize=False)

    def table(self, table: Table) -> TableWalk:
        chains = self.ruleset.tables[table]
        base = chains[self.ctx.hook.value]
        spans: list[ChainSpan] = []
        matched: list[RuleRef] = []
        stack: list[tuple[Chain, int]] = []
        chain, pos, start, fresh = base, 0, 0, True
        entered = 0
        verdict: str
        while True:
            rules = chain.rules
            idx = self.next_candidate(chain, pos)
            if idx is None:
                if fresh or start < len(rules):
                    spans.append(ChainSpan(chain=chain.name, first=start + 1, last=len(rules)))
                if stack:
                    chain, pos = stack.pop()
                    start, fresh = pos, False
                    continue
                verdict = base.policy or "ACCEPT"
                break
            rule = rules[idx]
            if not self.matches(rule):
                pos = idx + 1
                continue
            matched.append(rule.ref)
            target = rule.target
            if isinstance(target, JumpTarget):
                spans.append(ChainSpan(chain=chain.name, first=start + 1, last=idx + 1))
                entered += 1
                if entered > 100_000:
                    raise ValueError(f"{rule.ref}: jumps do not terminate (a loop of -g?)")
                if not target.goto:
                    stack.append((chain, idx + 1))
                chain, pos, start, fresh = chains[target.chain], 0, 0, True
                continue
            if isinstance(target, ReturnTarget):
                spans.append(ChainSpan(chain=chain.name, first=start + 1, last=idx + 1))
                if stack:
                    chain, pos = stack.pop()
                    start, fresh = pos, False
                    continue
                verdict = base.policy or "ACCEPT"
                break
            final = self.apply(rule, table)
            if final is None:
                pos = idx + 1
                continue
            spans.append(ChainSpan(chain=chain.name, first=start + 1, last=idx + 1))
            verdict = final
            break
        return TableWalk(table=table, spans=tuple(spans), matched=tuple(matched), verdict=verdict)

    def next_candidate(self, chain: Chain, pos: int) -> int | None:
        if pos >= len(chain.rules):
            return None
        if self.index_min_rules is None or len(chain.rules) < self.index_min_rules:
            return pos
        key: _Key = (self.pkt.dst, self.pkt.proto.value, self.pkt.dport)
        cached = self.candidates.get(id(chain))
        if cached is not None and cached[0] == key:
            candidates = cached[1]
        else:
            candidates = _chain_index(chain).candidates(self.pkt)
            self.candidates[id(chain)] = (key, candidates)
        at = bisect_left(candidates, pos)
        return candidates[at] if at < len(candidates) else None

    # --- targets ---------------------------------------------------------

    def apply(self, rule: Rule, table: Table) -> str | None:
        """Apply a non-jump target; the table's verdict when it ends the walk, else None."""
        target = rule.target
        if target is None or isinstance(target, LogTarget):
            return None
        if isinstance(target, AcceptTarget):
            return "ACCEPT"
        if isinstance(target, DropTarget):
            return "DROP"
        if isinstance(target, RejectTarget):
            self.reject_with = target.reject_with
            return "REJECT"
        if isinstance(target, MarkTarget):
            self.pkt = self.pkt.model_copy(
                update={"mark": ((self.pkt.mark & ~target.mask) ^ target.value) & _U32}
            )
            return None
        if isinstance(target, ConnmarkTarget):
            self.connmark(target)
            return None
        if isinstance(target, NotrackTarget):
            if table is Table.RAW and not self.attached:
                self.untracked = True
                self.entry = None
                self.ctstate = CtState.UNTRACKED
            return None
        if isinstance(target, UnknownTarget):
            args = " ".join((target.name, *target.args))
            self.assumptions.append(
                f"{rule.ref}: target {args} is not simulated; assumed to continue"
            )
            return None
        if table is not Table.NAT or self.entry is None:
            self.assumptions.append(
                f"{rule.ref}: NAT outside the nat table is not simulated; ignored"
            )
            return None
        if isinstance(target, DnatTarget):
            self.dnat(target)
            return "ACCEPT"
        if isinstance(target, SnatTarget):
            self.snat_to(
                target.addr or self.pkt.src, target.ports, target.random or target.random_fully
            )
            return "ACCEPT"
        assert isinstance(target, MasqueradeTarget)
        addr = self.ctx.out_iface_addr
        if addr is None:
            # The kernel drops what it cannot masquerade: the out interface has no address.
            self.assumptions.append(
                f"{rule.ref}: MASQUERADE with no address on {self.ctx.out_iface}; dropped"
            )
            return "DROP"
        self.snat_to(addr, target.ports, target.random or target.random_fully)
        return "ACCEPT"

    def connmark(self, target: ConnmarkTarget) -> None:
        entry = self.entry
        if entry is None:
            return
        if target.mode == "set":
            self.set_entry(
                entry.model_copy(
                    update={"mark": ((entry.mark & ~target.mask) ^ target.value) & _U32}
                )
            )
        elif target.mode == "save":
            mark = ((entry.mark & ~target.ctmask) ^ (self.pkt.mark & target.nfmask)) & _U32
            self.set_entry(entry.model_copy(update={"mark": mark}))
        else:
            mark = ((self.pkt.mark & ~target.nfmask) ^ (entry.mark & target.ctmask)) & _U32
            self.pkt = self.pkt.model_copy(update={"mark": mark})

    def dnat(self, target: DnatTarget) -> None:
        # A range of addresses or ports is simplified to its first member; the
        # kernel hashes the tuple to pick one.
        assert self.entry is not None
        addr = target.addr or self.pkt.dst
        port = target.ports.lo if target.ports is not None else self.pkt.dport
        reply = self.entry.reply.model_copy(update={"src": addr, "sport": port})
        self.entry = self.entry.model_copy(update={"reply": reply, "dnat": True})
        self.pkt = self.pkt.model_copy(update={"dst": addr, "dport": port})

    def snat_to(self, addr: IPv4Address, ports: PortRange | None, randomize: bool) -> None:
        assert self.entry is not None
        port = self.pick_source_port(addr, ports, randomize)
        reply = self.entry.reply.model_copy(update={"dst": addr, "dport": port})
        self.entry = self.entry.model_copy(update={"reply": reply, "snat": True})
        self.pkt = self.pkt.model_copy(update={"src": addr, "sport": port})

    def pick_source_port(self, addr: IPv4Address, ports: PortRange | None, randomize: bool) -> int:
        """The source port after SNAT: kept when free, else another in the range.

        Simplifications: `--random` and `--random-fully` both draw uniformly
        from the range (1024-65535 by default) with `rng`, where the kernel
        uses a keyed hash or prandom and a privileged source port keeps to
        1-1023; a clash walks upward from the range start instead of from a
        hashed offset.
        """
        assert self.entry is not None
        lo, hi = (ports.lo, ports.hi) if ports is not None else (1024, 65535)
        lo = max(lo, 1)
        reply = self.entry.reply

        def free(port: int) -> bool:
            return not self.conntrack.tuple_in_use(
                reply.model_copy(update={"dst": addr, "dport": port})
            )

        if randomize:
            for _ in range(64):
                port = self.rng.randint(lo, hi)
                if free(port):
                    return port
        elif (ports is None or lo <= self.pkt.sport <= hi) and free(self.pkt.sport):
            return self.pkt.sport
        for port in range(lo, hi + 1):
            if free(port):
                return port
        return lo

    # --- matches ---------------------------------------------------------

    def matches(self, rule: Rule) -> bool:
        return all(self.match(m, rule) for m in rule.matches)

    def match(self, m: Match, rule: Rule) -> bool:
        pkt, ctx = self.pkt, self.ctx
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
            return (
                _iface_matches(ctx.in_iface if m.field == "in" else ctx.out_iface, m.name)
                != m.negate
            )
        if isinstance(m, MarkMatch):
            return ((pkt.mark & m.mask) == m.value) != m.negate
        if isinstance(m, ConntrackMatch):
            return self.conntrack_match(m)
        if isinstance(m, AddrtypeMatch):
            return self.addrtype(m)
        if isinstance(m, StatisticMatch):
            return self.statistic(m, rule) != m.negate
        if isinstance(m, RecentMatch):
            return self.recent_match(m)
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
            return self.physdev(m)
        if isinstance(m, FragmentMatch):
            return m.negate  # simulated packets are never fragments
        if isinstance(m, IcmpMatch):
            return False  # simulated packets are never ICMP
        assert isinstance(m, UnknownMatch)
        if ctx.foreign is not None:
            answer = ctx.foreign(m, pkt)
            if answer is not None:
                return answer
        args = " ".join(m.args)
        self.assumptions.append(
            f"{rule.ref}: cannot evaluate -m {m.module} {args}; assumed it does not match"
        )
        return False

    def statistic(self, m: StatisticMatch, rule: Rule) -> bool:
        if m.mode == "random":
            forced = self.ctx.decide(rule) if self.ctx.decide is not None else None
            if forced is not None:
                return forced != m.negate
            # The kernel compares a random u32 (masked to 31 bits) with the
            # probability scaled to 2^31; a float draw differs by < 2^-31.
            return self.rng.random() < m.probability
        key = (rule.table, rule.chain, rule.index)
        count = self.nth.get(key, m.packet)
        count = 0 if count == m.every - 1 else count + 1
        self.nth[key] = count
        return count == 0

    def recent_match(self, m: RecentMatch) -> bool:
        """xt_recent's `recent_mt`, with its quirk: `--update` refreshes only a true result."""
        raw = self.pkt.src if m.side == "src" else self.pkt.dst
        addr = IPv4Address(int(raw) & int(m.mask))
        now = self.ctx.now_s
        stamps = self.recent.stamps(m.name, addr)
        result = m.negate
        if stamps is None:
            if m.command == "set":
                self.recent = self.recent.with_stamps(m.name, addr, (now,))
                result = not result
            return result
        if m.command == "set":
            result = not result
        elif m.command == "remove":
            self.recent = self.recent.with_stamps(m.name, addr, None)
            return not result
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
                self.reap(m.name, addr, oldest)
        if m.command == "set" or (m.command == "update" and result):
            self.recent = self.recent.with_stamps(m.name, addr, (*stamps, now)[-RECENT_STAMPS:])
        return result

    def reap(self, name: str, working: IPv4Address, oldest: float) -> None:
        # The kernel reaps at most the least recently updated entry per packet.
        entries = self.recent.lists.get(name, {})
        others = [
            (stamps[-1], addr) for addr, stamps in entries.items() if addr != working and stamps
        ]
        if others:
            last, addr = min(others)
            if last < oldest:
                self.recent = self.recent.with_stamps(name, addr, None)

    def conntrack_match(self, m: ConntrackMatch) -> bool:
        """xt_conntrack's `conntrack_mt`, option by option in its order."""
        entry = None if self.untracked else self.entry
        if m.states is not None:
            states = {self.ctstate.value}
            if entry is not None:
                if entry.dnat:
                    states.add("DNAT")
                if entry.snat:
                    states.add("SNAT")
            if bool(states.intersection(m.states)) == m.states_negate:
                return False
        if entry is None:
            return m.states is not None
        if m.direction is not None and (self.direction.value.upper() != m.direction):
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

    def addrtype(self, m: AddrtypeMatch) -> bool:
        src_ok = not m.src_types or (self.addr_type(self.pkt.src, m) in m.src_types) != m.src_negate
        return src_ok and (
            not m.dst_types or (self.addr_type(self.pkt.dst, m) in m.dst_types) != m.dst_negate
        )

    def addr_type(self, addr: IPv4Address, m: AddrtypeMatch) -> str:
        """The route type `inet_addr_type` gives; other addresses are assumed routable (UNICAST)."""
        ctx = self.ctx
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

    def physdev(self, m: PhysdevMatch) -> bool:
        """xt_physdev's `physdev_mt`: a port test passes when the port is unknown."""
        ctx = self.ctx
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
            or _iface_matches(ctx.physdev_in, m.physdev_in) != m.in_negate
        )
        return in_ok and (
            m.physdev_out is None
            or ctx.physdev_out is None
            or _iface_matches(ctx.physdev_out, m.physdev_out) != m.out_negate
        )

    # --- result ----------------------------------------------------------

    def result(self, verdict: HookVerdict) -> HookResult:
        hook, ctx = self.ctx.hook, self.ctx
        leaves_netns = hook is Hook.INPUT or (hook is Hook.POSTROUTING and ctx.out_iface != "lo")
        if verdict == "ACCEPT" and not leaves_netns:
            self.in_flight[self.pkt.tuple()] = InFlight(
                entry=None if self.untracked else self.entry,
                direction=self.direction,
                ctstate=CtState.UNTRACKED if self.untracked else self.ctstate,
            )
        state = NetfilterState(
            conntrack=self.conntrack,
            recent=self.recent,
            nth=MappingProxyType(self.nth),
            in_flight=MappingProxyType(self.in_flight),
        )
        return HookResult(
            verdict=verdict,
            packet=self.pkt,
            tables=tuple(self.walks),
            state=state,
            entry=None if self.untracked else self.entry,
            ctstate=CtState.UNTRACKED if self.untracked else self.ctstate,
            direction=None if self.untracked or self.invalid else self.direction,
            reject_with=self.reject_with if verdict == "REJECT" else None,
            assumptions=tuple(self.assumptions),
        )


def _iface_matches(name: str | None, pattern: str) -> bool:
    # The kernel compares against an empty name when there is no device.
    actual = name or ""
    if pattern.endswith("+"):
        return actual.startswith(pattern[:-1])
    return actual == pattern


def _flag_set(flags: tuple[str, ...]) -> frozenset[str]:
    if "ALL" in flags:
        return _ALL_TCP_FLAGS
    return frozenset(f for f in flags if f != "NONE")


# --- the candidate index -------------------------------------------------------

_Key = tuple[IPv4Address | None, str | None, int | None]

# Matches that change state or need an assumption when evaluated. A key
# taken from a match after one of these would let the index skip a rule whose
# earlier match the kernel evaluates, so such keys are not taken.
_IMPURE = (StatisticMatch, RecentMatch, UnknownMatch)


@dataclass(frozen=True)
class ChainIndex:
    """Rule positions of one chain bucketed by the exact values their matches require.

    A rule's key holds `-d X/32`, `-p P` and `--dport N` when present (None
    when absent); a packet can match only rules whose every keyed value equals
    its own, so walking those candidates in order is first-match exact.
    """

    buckets: Mapping[_Key, tuple[int, ...]]
    """Positions (0-based, ascending) of the rules with each key."""

    def candidates(self, pkt: Packet) -> list[int]:
        """Positions of the rules `pkt` could match, ascending."""
        found: list[tuple[int, ...]] = []
        for dst in (pkt.dst, None):
            for proto in (pkt.proto.value, None):
                for dport in (pkt.dport, None):
                    positions = self.buckets.get((dst, proto, dport))
                    if positions:
                        found.append(positions)
        if len(found) == 1:
            return list(found[0])
        return list(heapq.merge(*found))


def rule_key(rule: Rule) -> _Key:
    """The values `rule` requires of a packet's destination, protocol and destination port."""
    dst: IPv4Address | None = None
    proto: str | None = None
    dport: int | None = None
    for m in rule.matches:
        if isinstance(m, AddrMatch):
            if m.field == "dst" and not m.negate and m.net.prefixlen == 32:
                dst = m.net.network_address
        elif isinstance(m, ProtoMatch):
            if not m.negate and m.proto != "all":
                proto = m.proto
        elif isinstance(m, PortMatch):
            if m.field == "dport" and not m.negate and m.ports.lo == m.ports.hi:
                dport = m.ports.lo
        elif isinstance(m, _IMPURE):
            break
    return (dst, proto, dport)


def build_index(chain: Chain) -> ChainIndex:
    """Index `chain`'s rules by `rule_key`."""
    buckets: dict[_Key, list[int]] = {}
    for pos, rule in enumerate(chain.rules):
        buckets.setdefault(rule_key(rule), []).append(pos)
    return ChainIndex(MappingProxyType({k: tuple(v) for k, v in buckets.items()}))


_INDEX_CACHE: dict[int, tuple[Chain, ChainIndex]] = {}
_INDEX_CACHE_SIZE = 512


def _chain_index(chain: Chain) -> ChainIndex:
    # Keyed by identity: a Chain is immutable, and the cache holds it so the id
    # cannot be reused while the entry lives.
    cached = _INDEX_CACHE.get(id(chain))
    if cached is not None and cached[0] is chain:
        return cached[1]
    index = build_index(chain)
    if len(_INDEX_CACHE) >= _INDEX_CACHE_SIZE:
        del _INDEX_CACHE[next(iter(_INDEX_CACHE))]
    _INDEX_CACHE[id(chain)] = (chain, index)
    return index


def _starts_no_connection(pkt: Packet) -> bool:
    """A TCP packet that conntrack will not open a connection for."""
    if pkt.proto is not Proto.TCP:
        return False
    flags = set(pkt.tcp_flags.split(","))
    return "RST" in flags or {"SYN", "ACK"} <= flags
