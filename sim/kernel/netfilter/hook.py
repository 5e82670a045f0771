"""One hook's walk: conntrack, then each table at its priority, targets and NAT.

`traverse` is a pure function of the hook context, the packet, the ruleset
and the netns's state. Inside, a short-lived `_Run` keeps the scratch of one
call (the packet as rewritten so far, its conntrack entry, the chains entered)
and nothing escapes it but frozen values. (Long on purpose: `_Run` is one
packet's passage through one hook, and its conntrack, table walk, targets and
NAT share that scratch. What runs at a hook and in which order is `order`'s,
a table's chains walked rule by rule `walk`'s, what a walk records `shown`'s, the match modules `matches`', the source port
SNAT picks `nat_ports`'.)
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address
from types import MappingProxyType
from typing import TYPE_CHECKING

from model.netfilter import (
    UNREADABLE,
    AcceptTarget,
    ConnmarkTarget,
    ConntrackMatch,
    DnatTarget,
    DropTarget,
    Hook,
    LogTarget,
    MarkTarget,
    MasqueradeTarget,
    Match,
    NotrackTarget,
    PortRange,
    RecentMatch,
    RejectTarget,
    Rule,
    Ruleset,
    SnatTarget,
    StatisticMatch,
    Table,
    UnknownMatch,
    UnknownTarget,
)
from model.packet import ConntrackEntry, CtState, Packet, Proto
from model.trace import ChainSpan, TableWalk
from sim.kernel.conntrack import CtDirection
from sim.kernel.netfilter.index import INDEX_MIN_RULES
from sim.kernel.netfilter.matches import conntrack_match, recent_match, stateless_match
from sim.kernel.netfilter.nat_ports import pick_source_port
from sim.kernel.netfilter.order import (
    DST_MANIP_HOOKS,
    IpvsStep,
    NftStep,
    Step,
    hook_steps,
    with_ipvs,
)
from sim.kernel.netfilter.state import (
    HookContext,
    HookResult,
    HookVerdict,
    InFlight,
    NetfilterState,
    NftKey,
)
from sim.kernel.netfilter.walk import TableWalker

if TYPE_CHECKING:
    from model.ipvs import IpvsTable
    from model.nftables import NftChain, NftNat, NftRuleset, NftTable
    from sim.kernel.ipvs.hooks import IpvsVerdict

# The nft chain walk is imported by the calls that use it: a node in iptables or IPVS mode
# never needs nftables' models, and the app's first screen shows one (`tests/test_layers.py`).
# IPVS likewise, by `ipvs_step`: only a node with virtual servers reaches it.

__all__ = ["traverse"]

_U32 = 0xFFFFFFFF


def traverse(
    ctx: HookContext,
    pkt: Packet,
    ruleset: Ruleset,
    state: NetfilterState,
    rng: random.Random,
    *,
    index_min_rules: int | None = INDEX_MIN_RULES,
    nft: NftRuleset | None = None,
    ipvs: IpvsTable | None = None,
) -> HookResult:
    """Walk every table and base chain registered at `ctx.hook`, in kernel priority order.

    `nft` holds the netns's nftables tables (kube-proxy's in nftables mode),
    walked at their base chains' priorities beside the iptables tables.
    `ipvs` holds the netns's IPVS virtual servers: IPVS runs at its hook
    priorities, and a packet it sends on to a remote real server ends the hook
    (the result's `ipvs.stolen`; the caller takes it through LOCAL_OUT).
    `index_min_rules=None` walks every chain linearly, every time it is
    entered; the result is the same either way (the index only skips rules
    that cannot match, and a side-effect-free chain entered again with the same
    packet is replayed from its first walk instead of walked again).
    """
    run = _Run(ctx, ruleset, state, rng, index_min_rules, pkt)
    steps, nat_chains = hook_steps(ctx.hook, nft)
    if ipvs is not None:
        steps = with_ipvs(ctx.hook, steps)
    for step in steps:
        if isinstance(step, IpvsStep):
            if ipvs is None or ctx.reinjected:
                continue  # IPVS passes what it sent itself (skb->ipvs_property)
            ended = run.ipvs_step(step.kind, ipvs)
            if ended is not None:
                return run.result(ended)
        elif step is Step.CT_IN:
            run.conntrack_in()
        elif step is Step.CONFIRM:
            run.confirm()
        elif isinstance(step, NftStep):
            chain_walk = run.nft_chain(step.table, step.chain)
            run.walks.append(chain_walk)
            if chain_walk.verdict in ("DROP", "REJECT"):
                return run.result("DROP" if chain_walk.verdict == "DROP" else "REJECT")
        elif isinstance(step, Table):
            walks: list[TableWalk | None]
            if step is Table.NAT:
                walks = run.nat_core(nat_chains) if nat_chains else [run.nat()]
            else:
                walks = [run.table(step) if run.has_chain(step) else None]
            for walk in walks:
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
        self.pkt = pkt
        self.conntrack = state.conntrack
        self.recent = state.recent
        self.nth = dict(state.nth)
        self.in_flight = dict(state.in_flight)
        self.walks: list[TableWalk] = []
        self.walker = TableWalker(ruleset, ctx.hook, index_min_rules, self)
        self.assumptions: list[str] = []
        self.untracked = False
        # A packet conntrack refuses to track (a SYN-ACK or RST of no known
        # connection): no entry, ctstate INVALID, never NATed.
        self.invalid = False
        self.reject_with: str | None = None
        # nft sets the packet path fills (affinity), copied so this hook's changes stay its own.
        self.dynamic: dict[str, dict[NftKey, float]] = {
            name: dict(elements) for name, elements in state.nft_sets.items()
        }
        self.entry: ConntrackEntry | None = None
        self.direction = CtDirection.ORIGINAL
        self.ctstate = CtState.NEW
        # An ICMP error about a known connection (RELATED): NAT rewrites it and the header
        # it quotes as that connection's, and no rule of the nat table is consulted.
        self.related = False
        self.ipvs_state = state.ipvs
        self.ipvs_verdict: IpvsVerdict | None = None
        carried = self.in_flight.pop(pkt.tuple(), None)
        # A packet from a socket or the wire is looked up afresh; only one
        # looped through lo, or sent on by IPVS, still carries the entry it had,
        # and an ICMP error the kernel made: icmp_glue_bits attaches the entry of
        # the packet it answers (nf_ct_attach), RELATED, confirmed or not.
        fresh = (
            ctx.hook is Hook.OUTPUT
            and not ctx.reinjected
            and not (carried is not None and carried.ctstate is CtState.RELATED)
        ) or (ctx.hook is Hook.PREROUTING and ctx.in_iface != "lo")
        if carried is not None and not fresh:
            self.attached = True
            self.entry = carried.entry
            self.direction = carried.direction
            self.ctstate = carried.ctstate
            self.untracked = carried.entry is None and carried.ctstate is CtState.UNTRACKED
            self.invalid = carried.entry is None and carried.ctstate is CtState.INVALID
            self.related = carried.entry is not None and carried.ctstate is CtState.RELATED
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
        if self.pkt.proto is Proto.ICMP and self.pkt.inner is not None:
            self.icmp_error_in(self.pkt.inner)
            return
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
        if self.direction is CtDirection.REPLY and "RST" in self.pkt.tcp_flags.split(","):
            # nf_conntrack_proto_tcp: a RST as the only reply ends the connection (the
            # tracer deletes it); the RST itself still passes as the connection's reply.
            self.entry, self.ctstate = entry, CtState.ESTABLISHED
            return
        if self.direction is CtDirection.REPLY and entry.state is not CtState.ESTABLISHED:
            entry = entry.model_copy(update={"state": CtState.ESTABLISHED})
            self.conntrack = self.conntrack.with_entry(entry)
        self.entry = entry
        self.ctstate = CtState.ESTABLISHED if entry.state is CtState.ESTABLISHED else CtState.NEW

    def invalid_why(self) -> str:
        """Why conntrack calls this packet INVALID, and what follows for nat."""
        if self.pkt.proto is Proto.ICMP:
            return (
                "conntrack calls this ICMP error INVALID: the connection of the header it"
                " quotes is not in the table (an error from another host about a connection"
                " this netns never confirmed), so nat is not consulted"
            )
        return (
            "conntrack calls this packet INVALID (a TCP SYN-ACK or RST of no connection it"
            " knows), so nat is not consulted"
        )

    def icmp_error_in(self, quoted: Packet) -> None:
        """nf_conntrack_icmpv4_error: an ICMP error belongs to the connection of the header it
        quotes (looked up turned around, as a reply to it would be), as RELATED; an error
        about no known connection is INVALID."""
        found = self.conntrack.lookup(quoted.tuple().inverted())
        if found is None:
            self.invalid, self.entry, self.ctstate = True, None, CtState.INVALID
            return
        self.entry, self.direction = found.entry, found.direction
        self.ctstate, self.related = CtState.RELATED, True

    def icmp_error_nat(self, entry: ConntrackEntry, dst_manip: bool) -> str:
        """nf_nat_icmp_reply_translation: the quoted header made to look as the packet it
        quotes did before NAT, and the error's own address to match; why, in a clause."""
        original = self.direction is CtDirection.ORIGINAL
        if dst_manip:
            needed = entry.dnat if original else entry.snat
        else:
            needed = entry.snat if original else entry.dnat
        if not needed or self.pkt.inner is None:
            return f"entry [{entry}] has nothing to rewrite here"
        # The other direction's tuple: what the quoted packet looked like before this NAT.
        other = entry.reply if original else entry.original
        quoted = self.pkt.inner
        if dst_manip:
            inner = quoted.model_copy(update={"src": other.src, "sport": other.sport})
            outer = {"dst": other.src, "inner": inner}
            change = (
                f"quoted src {quoted.src}:{quoted.sport} -> {other.src}:{other.sport},"
                f" dst {self.pkt.dst} -> {other.src}"
            )
        else:
            inner = quoted.model_copy(update={"dst": other.dst, "dport": other.dport})
            outer = {"src": other.dst, "inner": inner}
            change = (
                f"quoted dst {quoted.dst}:{quoted.dport} -> {other.dst}:{other.dport},"
                f" src {self.pkt.src} -> {other.dst}"
            )
        self.pkt = self.pkt.model_copy(update=outer)
        undone = "SNAT" if dst_manip is not original else "DNAT"
        return (
            f"the ICMP error is RELATED to entry [{entry}]; conntrack undoes its {undone}: {change}"
        )

    def confirm(self) -> None:
        # __nf_conntrack_confirm: a packet of the reply direction confirms nothing, as an
        # ICMP error carrying the unconfirmed entry of the packet it answers.
        if self.related and self.direction is CtDirection.REPLY:
            return
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
        dst_manip = self.ctx.hook in DST_MANIP_HOOKS
        present = self.has_chain(Table.NAT)
        entry = self.entry
        if self.ctx.reinjected and dst_manip and entry is not None and not entry.confirmed:
            # nf_nat_inet_fn: the connection's destination NAT was initialised at
            # PREROUTING (or the first OUTPUT pass); rules are not consulted again.
            return (
                TableWalk(
                    table=Table.NAT,
                    skipped="the connection's destination NAT was settled when the packet first"
                    " passed nat, before IPVS took it; nat is not consulted again",
                    verdict="ACCEPT",
                )
                if present
                else None
            )
        if self.related and entry is not None:
            reason = self.icmp_error_nat(entry, dst_manip)
            if not present:
                return None
            return TableWalk(
                table=Table.NAT,
                skipped=f"nat rules are consulted only for a connection's first packet; {reason}",
                verdict="ACCEPT",
            )
        if self.untracked or entry is None:
            if not present:
                return None
            return TableWalk(
                table=Table.NAT,
                skipped=self.invalid_why()
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
        reason = self.apply_entry_nat(entry, dst_manip)
        if not present:
            return None
        return TableWalk(
            table=Table.NAT,
            skipped=f"nat is consulted only for a connection's first packet; {reason}",
            verdict="ACCEPT",
        )

    def apply_entry_nat(self, entry: ConntrackEntry, dst_manip: bool) -> str:
        """Rewrite the packet as the connection's NAT says; why, in a clause."""
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
            return f"conntrack {what} of entry [{entry}]: {change}"
        return f"entry [{entry}] has nothing to rewrite here"

    # --- IPVS ----------------------------------------------------------------

    def ipvs_step(self, kind: str, table: IpvsTable) -> HookVerdict | None:
        """One IPVS hook; the hook's verdict when IPVS ends it here, else None.

        A new connection's NAT (ip_vs_nat_xmit) rewrites the destination and,
        with net.ipv4.vs.conntrack=1 as kube-proxy sets it, alters the
        unconfirmed conntrack entry's reply tuple to come from the real server
        (ip_vs_update_conntrack), without marking it DST_NAT: conntrack does
        not undo it on the reply, IPVS does.
        """
        from model.ipvs import IpvsState
        from sim.kernel.ipvs.hooks import reply as ipvs_reply
        from sim.kernel.ipvs.hooks import request as ipvs_request

        if self.ipvs_state is None:
            self.ipvs_state = IpvsState()
        if kind == "reply":
            verdict = ipvs_reply(table, self.ipvs_state, self.pkt)
            if verdict is not None:
                self.ipvs_verdict = verdict
                self.pkt = self.pkt.model_copy(
                    update={"src": verdict.packet.src, "sport": verdict.packet.sport}
                )
            return None
        verdict = ipvs_request(
            table,
            self.ipvs_state,
            self.pkt,
            now=self.ctx.now_s,
            local_addrs=self.ctx.local_addrs,
            steer=self.ctx.ipvs_steer,
        )
        if verdict is None:
            return None
        self.ipvs_verdict = verdict
        self.ipvs_state = verdict.state
        if verdict.assumed:
            self.assumptions.append(f"IPVS {verdict.service.label}: {verdict.assumed}")
        if verdict.kind == "no-dest":
            # ip_vs_leave: ICMP port unreachable to the client, the packet dropped.
            self.reject_with = "icmp-port-unreachable"
            return "REJECT"
        entry = self.entry
        if entry is not None and not entry.confirmed and self.direction is CtDirection.ORIGINAL:
            reply = entry.reply.model_copy(
                update={"src": verdict.packet.dst, "sport": verdict.packet.dport}
            )
            self.entry = entry.model_copy(update={"reply": reply})
        self.pkt = self.pkt.model_copy(
            update={"dst": verdict.packet.dst, "dport": verdict.packet.dport}
        )
        return "ACCEPT" if verdict.stolen else None

    # --- nftables ----------------------------------------------------------

    @property
    def ct_view(self) -> tuple[CtState, ConntrackEntry | None, CtDirection | None]:
        """The packet's conntrack state, entry and direction as nft's `ct` expressions see them."""
        if self.untracked:
            return CtState.UNTRACKED, None, None
        return self.ctstate, self.entry, None if self.invalid else self.direction

    def nft_chain(self, table: NftTable, chain: NftChain) -> TableWalk:
        """Walk one nft base chain (a filter or route chain; nat chains go through `nat_core`)."""
        from sim.kernel.nftables.walk import walk_base_chain

        return walk_base_chain(self, table, chain)

    def nat_core(self, nft_chains: tuple[NftStep, ...]) -> list[TableWalk | None]:
        """The NAT core at this hook: nft's nat chains and iptables' nat table, in order.

        nf_nat_inet_fn runs the nat chains of a connection's first packet in
        priority order and stops at the first that binds this direction's NAT
        (the others are not consulted); iptables' nat table is one of them, at
        -100 or 100, after nft chains of the same priority (registered later).
        """
        dst_manip = self.ctx.hook in DST_MANIP_HOOKS
        xt_at = -100 if dst_manip else 100
        members: list[NftStep | None] = [s for s in nft_chains if (s.chain.priority or 0) <= xt_at]
        members.append(None)  # iptables' nat table
        members += [s for s in nft_chains if (s.chain.priority or 0) > xt_at]
        if not self.has_chain(Table.NAT):
            members.remove(None)
        entry = self.entry
        walks: list[TableWalk | None] = []
        if self.related and entry is not None:
            reason = self.icmp_error_nat(entry, dst_manip)
            why = f"nat rules are consulted only for a connection's first packet; {reason}"
            return [self._nat_skipped(m, why) for m in members]
        if self.untracked or entry is None:
            why = (
                self.invalid_why()
                if self.invalid
                else "untracked packets (raw NOTRACK) are never NATed"
            )
            return [self._nat_skipped(m, why) for m in members]
        if entry.confirmed:
            reason = self.apply_entry_nat(entry, dst_manip)
            why = f"nat is consulted only for a connection's first packet; {reason}"
            return [self._nat_skipped(m, why) for m in members]
        bound_by = ""
        for member in members:
            current = self.entry
            if current is not None and (current.dnat if dst_manip else current.snat):
                walks.append(
                    self._nat_skipped(
                        member,
                        f"the connection's {'destination' if dst_manip else 'source'} NAT was"
                        f" bound by {bound_by}; the NAT core consults no further nat chain",
                    )
                )
                continue
            if member is None:
                walk = self.table(Table.NAT)
                bound_by = "iptables' nat table"
            else:
                from sim.kernel.nftables.walk import walk_base_chain

                walk = walk_base_chain(self, member.table, member.chain)
                bound_by = f"{member.table.label} {member.chain.name}"
            walks.append(walk)
            if walk.verdict in ("DROP", "REJECT"):
                return walks
        if not dst_manip:
            self.null_binding()
        return walks

    def _nat_skipped(self, member: NftStep | None, why: str) -> TableWalk:
        if member is None:
            return TableWalk(table=Table.NAT, skipped=why, verdict="ACCEPT")
        return TableWalk(
            table=Table.NAT,
            nft=member.table.label,
            spans=(ChainSpan(chain=member.chain.name, first=1, last=0),),
            skipped=why,
            verdict="ACCEPT",
        )

    def nft_nat(self, nat: NftNat, where: str) -> str:
        """An nft NAT statement: bind the connection's NAT; the verdict (nft_nat accepts)."""
        if self.entry is None:
            self.assumptions.append(f"{where}: NAT of an untracked packet; ignored")
            return "ACCEPT"
        ports = None
        if nat.port is not None:
            ports = PortRange(lo=nat.port, hi=nat.port_hi or nat.port)
        randomize = "random" in nat.flags or "fully-random" in nat.flags
        if nat.action == "dnat":
            self.dnat(DnatTarget(addr=nat.addr, ports=ports))
        elif nat.action == "snat":
            self.snat_to(nat.addr or self.pkt.src, ports, randomize)
        elif nat.action == "masquerade":
            addr = self.ctx.out_iface_addr
            if addr is None:
                self.assumptions.append(
                    f"{where}: masquerade with no address on {self.ctx.out_iface}; dropped"
                )
                return "DROP"
            self.snat_to(addr, ports, randomize)
        else:
            self.assumptions.append(f"{where}: {nat.action} is not simulated; ignored")
        return "ACCEPT"

    def nft_notrack(self) -> None:
        """nft's `notrack`: only a packet conntrack has not looked up yet stays untracked."""
        if not self.attached:
            self.untracked = True
            self.entry = None
            self.ctstate = CtState.UNTRACKED

    def null_binding(self) -> None:
        # With no SNAT rule the kernel still makes the reply tuple unique,
        # remapping the source port when another connection owns it.
        entry = self.entry
        if entry is None or entry.snat or not self.conntrack.tuple_in_use(entry.reply):
            return
        self.snat_to(self.pkt.src, None, randomize=False)

    def table(self, table: Table) -> TableWalk:
        """`table`'s chains at this hook, walked as the kernel's ipt_do_table does."""
        return self.walker.walk(table)

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
        port = pick_source_port(
            self.conntrack, self.entry.reply, addr, ports, self.pkt.sport, randomize, self.rng
        )
        reply = self.entry.reply.model_copy(update={"dst": addr, "dport": port})
        self.entry = self.entry.model_copy(update={"reply": reply, "snat": True})
        self.pkt = self.pkt.model_copy(update={"src": addr, "sport": port})

    # --- matches ---------------------------------------------------------

    def matches(self, rule: Rule) -> bool:
        return all(self.match(m, rule) for m in rule.matches)

    def match(self, m: Match, rule: Rule) -> bool:
        answer = stateless_match(m, self.pkt, self.ctx)
        if answer is not None:
            return answer
        if isinstance(m, ConntrackMatch):
            entry = None if self.untracked else self.entry
            return conntrack_match(m, entry, self.ctstate, self.direction)
        if isinstance(m, StatisticMatch):
            return self.statistic(m, rule) != m.negate
        if isinstance(m, RecentMatch):
            result, self.recent = recent_match(m, self.pkt, self.ctx.now_s, self.recent)
            return result
        assert isinstance(m, UnknownMatch)
        if self.ctx.foreign is not None:
            answer = self.ctx.foreign(m, self.pkt)
            if answer is not None:
                return answer
        args = " ".join(m.args)
        what = f"the rule {args}" if m.module == UNREADABLE else f"-m {m.module} {args}"
        self.assumptions.append(f"{rule.ref}: cannot evaluate {what}; assumed it does not match")
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

    # --- result ----------------------------------------------------------

    def result(self, verdict: HookVerdict) -> HookResult:
        hook, ctx = self.ctx.hook, self.ctx
        leaves_netns = hook is Hook.INPUT or (hook is Hook.POSTROUTING and ctx.out_iface != "lo")
        stolen = self.ipvs_verdict is not None and self.ipvs_verdict.stolen
        if verdict == "ACCEPT" and (not leaves_netns or stolen):
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
            nft_sets=MappingProxyType(
                {name: MappingProxyType(elements) for name, elements in self.dynamic.items()}
            ),
            ipvs=self.ipvs_state,
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
            ipvs=self.ipvs_verdict,
        )


def _starts_no_connection(pkt: Packet) -> bool:
    """A TCP packet that conntrack will not open a connection for."""
    if pkt.proto is not Proto.TCP:
        return False
    flags = set(pkt.tcp_flags.split(","))
    return "RST" in flags or {"SYN", "ACK"} <= flags
