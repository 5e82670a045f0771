"""One iptables table walked for one packet, as the kernel's ipt_do_table walks it.

From the built-in chain at the hook, each rule in order: a rule whose matches
fail is passed; a jump enters a chain and comes back to the next rule when it
ends or says RETURN, a goto does not; a target that decides ends the walk, the
chain's policy when none does. The hook's walk (`sim.kernel.netfilter.hook`) is
the host: it holds the packet and conntrack entry, evaluates matches and applies
targets. Two things make big tables quick without changing the result: a long
chain is indexed (only the rules that can match the packet are tried), and a
side-effect-free chain entered again with the same packet is replayed from its
first walk. (The nftables walk is `sim.kernel.nftables.walk`.)
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Protocol

from model.errors import RulesWalkError
from model.netfilter import (
    Chain,
    ConnmarkTarget,
    DnatTarget,
    Hook,
    JumpTarget,
    MarkTarget,
    MasqueradeTarget,
    NotrackTarget,
    RecentMatch,
    ReturnTarget,
    Rule,
    Ruleset,
    SnatTarget,
    StatisticMatch,
    Table,
)
from model.packet import Packet
from model.trace import ChainSpan, TableWalk
from sim.kernel.netfilter.index import Key, chain_index
from sim.kernel.netfilter.shown import Frame, MemoKey, Replay, Shown

__all__ = ["MAX_CHAIN_ENTRIES", "TableHost", "TableWalker"]


class TableHost(Protocol):
    """What the hook lends a table walk: the packet as rewritten so far, matches, targets."""

    @property
    def pkt(self) -> Packet:
        """The packet, as the rules so far left it."""

    def matches(self, rule: Rule) -> bool:
        """Whether every match of `rule` holds for the packet."""

    def apply(self, rule: Rule, table: Table) -> str | None:
        """Apply `rule`'s target: the verdict if it decides, None to go on."""


MAX_CHAIN_ENTRIES = 100_000
"""Chain entries one table walk follows; only rules that change the packet as they fan
out can need more (side-effect-free chains are walked once per packet and replayed)."""

_EFFECT_TARGETS = (
    MarkTarget,
    ConnmarkTarget,
    NotrackTarget,
    DnatTarget,
    SnatTarget,
    MasqueradeTarget,
)
_EFFECT_MATCHES = (StatisticMatch, RecentMatch)


class TableWalker:
    """The iptables table walks of one hook call, and what they keep between them: replays
    of side-effect-free chains, which chains are so, each long chain's candidates."""

    def __init__(
        self, ruleset: Ruleset, hook: Hook, index_min_rules: int | None, host: TableHost
    ) -> None:
        self.ruleset = ruleset
        self.hook = hook
        self.index_min_rules = index_min_rules
        self.host = host
        self.memo: dict[MemoKey, Replay] = {}
        self.purity: dict[tuple[Table, str], bool] = {}
        self.candidates: dict[int, tuple[Key, list[int]]] = {}

    def walk(self, table: Table) -> TableWalk:
        """Walk `table` from its built-in chain at this hook to a verdict, recording what the
        trace shows."""
        chains = self.ruleset.tables[table]
        base = chains[self.hook.value]
        shown = Shown()
        stack: list[Frame] = []
        chain, pos, start, fresh = base, 0, 0, True
        entered = 0
        verdict: str
        while True:
            rules = chain.rules
            idx = self.next_candidate(chain, pos)
            if idx is None:
                if fresh or start < len(rules):
                    shown.span(ChainSpan(chain=chain.name, first=start + 1, last=len(rules)))
                if stack:
                    chain, pos = self._back(stack.pop(), shown, table)
                    start, fresh = pos, False
                    continue
                verdict = base.policy or "ACCEPT"
                break
            rule = rules[idx]
            if not self.host.matches(rule):
                pos = idx + 1
                continue
            target = rule.target
            if isinstance(target, JumpTarget):
                shown.match(rule.ref)
                shown.span(ChainSpan(chain=chain.name, first=start + 1, last=idx + 1))
                key = self._memo_key(table, target) if not target.goto else None
                known = self.memo.get(key) if key is not None else None
                if known is not None:
                    # The same side-effect-free chain with the same packet: the
                    # kernel walks it again to the same RETURN; kubehop replays it.
                    shown.replay(known)
                    pos = start = idx + 1
                    fresh = False
                    continue
                entered += 1
                if entered > MAX_CHAIN_ENTRIES:
                    where = f"{self.ruleset.source}:{rule.lineno}" if rule.lineno else ""
                    raise RulesWalkError(
                        f"{where or rule.ref}: {rule.ref}: the {table.value} table's rules fan"
                        f" out into more than {MAX_CHAIN_ENTRIES:,} chain entries for one packet,"
                        " changing the packet or netfilter's state on the way (so no walk can be"
                        " replayed); kubehop does not follow them to the end"
                    )
                if not target.goto:
                    stack.append(Frame(chain, idx + 1, key, shown.mark()))
                chain, pos, start, fresh = chains[target.chain], 0, 0, True
                continue
            if isinstance(target, ReturnTarget):
                shown.match(rule.ref)
                shown.span(ChainSpan(chain=chain.name, first=start + 1, last=idx + 1))
                if stack:
                    chain, pos = self._back(stack.pop(), shown, table)
                    start, fresh = pos, False
                    continue
                verdict = base.policy or "ACCEPT"
                break
            final = self.host.apply(rule, table)
            if final is None:
                shown.match(rule.ref)
                pos = idx + 1
                continue
            shown.match(rule.ref, always=True)
            shown.span(ChainSpan(chain=chain.name, first=start + 1, last=idx + 1), always=True)
            verdict = final
            break
        return TableWalk(
            table=table,
            spans=tuple(shown.spans),
            matched=tuple(shown.matched),
            verdict=verdict,
            elided=shown.elided,
        )

    def _back(self, frame: Frame, shown: Shown, table: Table) -> tuple[Chain, int]:
        """Return to the rule after a jump; remember a pure chain's walk for the next time."""
        if frame.memo is not None:
            self.memo[frame.memo] = shown.since(frame.mark)
        return frame.chain, frame.pos

    def _memo_key(self, table: Table, target: JumpTarget) -> MemoKey | None:
        """The key to remember a jump's walk by, when walking it changes nothing."""
        if self.index_min_rules is None or not self._pure(table, target.chain):
            return None
        return (table, target.chain, self.host.pkt)

    def _pure(self, table: Table, name: str) -> bool:
        """Whether walking chain `name` (and every chain it reaches) changes no packet or state."""
        key = (table, name)
        found = self.purity.get(key)
        if found is not None:
            return found
        self.purity[key] = False  # (loops are refused when rules are read)
        chain = self.ruleset.tables[table].get(name)
        # A chain whose rules are produced as they are read (iptables mode's shared
        # chains, `sim.proxy.iptables.lazy`) is not proved pure: that would render
        # every Service port's rules for one packet. Walking it again is cheap anyway:
        # such a chain is indexed.
        lazy = chain is not None and not isinstance(chain.rules, tuple)
        pure = (
            chain is not None
            and not lazy
            and all(
                not isinstance(rule.target, _EFFECT_TARGETS)
                and not any(isinstance(m, _EFFECT_MATCHES) for m in rule.matches)
                and (
                    not isinstance(rule.target, JumpTarget) or self._pure(table, rule.target.chain)
                )
                for rule in chain.rules
            )
        )
        self.purity[key] = pure
        return pure

    def next_candidate(self, chain: Chain, pos: int) -> int | None:
        """The first rule from `pos` on that can match the packet (an index skips the rest
        of a long chain), None past the end."""
        if pos >= len(chain.rules):
            return None
        if self.index_min_rules is None or len(chain.rules) < self.index_min_rules:
            return pos
        key: Key = (self.host.pkt.dst, self.host.pkt.proto.value, self.host.pkt.dport)
        cached = self.candidates.get(id(chain))
        if cached is not None and cached[0] == key:
            candidates = cached[1]
        else:
            candidates = chain_index(chain).candidates(self.host.pkt)
            self.candidates[id(chain)] = (key, candidates)
        at = bisect_left(candidates, pos)
        return candidates[at] if at < len(candidates) else None
