"""One nft base chain walked for one packet, as nf_tables' `nft_do_chain` runs it.

A rule's expressions run in order: a comparison or lookup that fails ends
the rule (the kernel's NFT_BREAK) and the next rule runs; a statement acts and
the rule goes on; a verdict decides. `jump` comes back to the next rule when
the chain called ends or says `return`, `goto` does not; a base chain that
ends applies its policy. NAT statements hand the packet to the NAT core and
end the chain (nft_nat sets the verdict to accept).

The hook (`sim.kernel.netfilter.hook`) owns the packet, its conntrack entry
and the NAT; this module sees them through `NftHost`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from model.errors import RulesWalkError
from model.netfilter import RuleRef, Table
from model.nftables import (
    NftChain,
    NftCmp,
    NftCounter,
    NftLog,
    NftMark,
    NftNat,
    NftNotrack,
    NftReject,
    NftRule,
    NftSetUpdate,
    NftTable,
    NftUnknown,
    NftVerdict,
    NftVmap,
)
from model.packet import ConntrackEntry, CtState, Packet
from model.trace import ChainSpan, TableWalk
from sim.kernel.conntrack import CtDirection
from sim.kernel.netfilter.state import HookContext
from sim.kernel.nftables.sets import Key, set_index
from sim.kernel.nftables.values import Literal, Value, literal, matches, packet_value

__all__ = ["MAX_CHAIN_ENTRIES", "NftHost", "chain_table", "walk_base_chain"]

_U32 = 0xFFFFFFFF

MAX_CHAIN_ENTRIES = 100_000
"""Chain entries one base chain walk follows before kubehop gives up (nft refuses loops)."""


class NftHost(Protocol):
    """What the hook lends a chain walk: the packet, its connection, and the NAT core."""

    pkt: Packet
    ctx: HookContext
    rng: random.Random
    assumptions: list[str]
    dynamic: dict[str, dict[Key, float]]
    reject_with: str | None

    @property
    def ct_view(self) -> tuple[CtState, ConntrackEntry | None, CtDirection | None]:
        """The packet's conntrack state, entry and direction as nft's `ct` sees them."""

    def nft_nat(self, nat: NftNat, where: str) -> str:
        """Apply a NAT statement; the verdict (`ACCEPT`, or `DROP` when it cannot)."""

    def nft_notrack(self) -> None:
        """`notrack`: conntrack leaves the packet alone (before conntrack only)."""


def chain_table(chain: NftChain) -> Table:
    """The iptables table a base chain's type plays the part of, for the trace's record."""
    if chain.type == "nat":
        return Table.NAT
    if chain.type == "route":
        return Table.MANGLE
    return Table.FILTER


@dataclass
class _Frame:
    chain: NftChain
    pos: int


def walk_base_chain(host: NftHost, table: NftTable, base: NftChain) -> TableWalk:
    """Walk `base` of `table` for `host.pkt`; the record of what was compared and what matched."""
    kind = chain_table(base)
    spans: list[ChainSpan] = []
    matched: list[RuleRef] = []
    stack: list[_Frame] = []
    chain, pos, start = base, 0, 0
    entries = 0
    verdict = ""
    while not verdict:
        if pos >= len(chain.rules):
            spans.append(ChainSpan(chain=chain.name, first=start + 1, last=len(chain.rules)))
            if stack:
                frame = stack.pop()
                chain, pos = frame.chain, frame.pos
                start = pos
                continue
            verdict = (base.policy or "accept").upper()
            break
        rule = chain.rules[pos]
        outcome = _rule(host, table, rule)
        if outcome is None:
            pos += 1
            continue
        matched.append(RuleRef(table=kind, chain=chain.name, index=rule.index, line=rule.text))
        action, target = outcome
        if action == "next":
            pos += 1
            continue
        spans.append(ChainSpan(chain=chain.name, first=start + 1, last=pos + 1))
        if action in ("jump", "goto"):
            entries += 1
            if entries > MAX_CHAIN_ENTRIES:
                raise RulesWalkError(
                    f"{table.label} {chain.name} #{rule.index}: the rules fan out into more than"
                    f" {MAX_CHAIN_ENTRIES:,} chain entries for one packet; kubehop stops there"
                )
            called = table.chains.get(target or "")
            if called is None:
                host.assumptions.append(
                    f"{table.label} {chain.name} #{rule.index}: no chain {target}; the rule is"
                    " skipped"
                )
                spans.pop()
                pos += 1
                continue
            if action == "jump":
                stack.append(_Frame(chain, pos + 1))
            chain, pos, start = called, 0, 0
            continue
        if action == "return":
            if stack:
                frame = stack.pop()
                chain, pos = frame.chain, frame.pos
                start = pos
                continue
            verdict = (base.policy or "accept").upper()
            break
        verdict = action
    return TableWalk(
        table=kind,
        nft=table.label,
        spans=tuple(spans),
        matched=tuple(matched),
        verdict=verdict,
    )


Outcome = tuple[str, str | None]
"""What a matching rule does: (`next` | `jump` | `goto` | `return` | ACCEPT | DROP | REJECT, chain)."""


def _rule(host: NftHost, table: NftTable, rule: NftRule) -> Outcome | None:
    """Run `rule`'s expressions; None when one breaks (the rule does not match)."""
    for expr in rule.exprs:
        if isinstance(expr, NftCmp):
            if not _compare(host, table, expr):
                return None
        elif isinstance(expr, NftVmap):
            found = _vmap(host, table, rule, expr)
            if found is None:
                return None
            return _verdict_of(found)
        elif isinstance(expr, NftVerdict):
            if expr.verdict == "continue":
                return ("next", None)
            if expr.verdict in ("jump", "goto", "return"):
                return (expr.verdict, expr.chain)
            return (expr.verdict.upper(), None)
        elif isinstance(expr, NftReject):
            host.reject_with = expr.reject_with
            return ("REJECT", None)
        elif isinstance(expr, NftMark):
            pkt = host.pkt
            host.pkt = pkt.model_copy(update={"mark": ((pkt.mark & expr.mask) ^ expr.xor) & _U32})
        elif isinstance(expr, NftNat):
            return (host.nft_nat(expr, f"{table.label} {rule.chain} #{rule.index}"), None)
        elif isinstance(expr, NftSetUpdate):
            _update(host, table, expr)
        elif isinstance(expr, NftNotrack):
            host.nft_notrack()
        elif isinstance(expr, NftCounter | NftLog):
            continue
        else:
            assert isinstance(expr, NftUnknown)
            host.assumptions.append(
                f"{table.label} {rule.chain} #{rule.index}: cannot evaluate {expr.text!r};"
                " assumed the rule does not match"
            )
            return None
    return ("next", None)


def _verdict_of(value: str) -> Outcome:
    word, _, chain = value.partition(" ")
    if word in ("jump", "goto"):
        return (word, chain)
    if word == "continue":
        return ("next", None)
    if word == "return":
        return ("return", None)
    return (word.upper(), None)


def _read(host: NftHost, selector: str) -> Value:
    ctstate, entry, direction = host.ct_view
    return packet_value(selector, host.pkt, host.ctx, ctstate, entry, direction)


def _key(host: NftHost, selectors: tuple[str, ...]) -> Key | None:
    key: list[int | str | frozenset[str]] = []
    for selector in selectors:
        value = _read(host, selector)
        if value is None:
            return None
        key.append(value)
    return tuple(key)


def _compare(host: NftHost, table: NftTable, expr: NftCmp) -> bool:
    if expr.set is not None:
        return _in_set(host, table, expr) == (expr.op == "==")
    values = [_read(host, s) for s in expr.left]
    if expr.mask is not None:
        values = [v & expr.mask if isinstance(v, int) else v for v in values]
    found = any(_equal(expr.left, values, text) for text in expr.values)
    return found == (expr.op == "==")


def _equal(left: tuple[str, ...], values: list[Value], text: str) -> bool:
    parts = text.split(" . ") if len(left) > 1 else [text]
    return len(parts) == len(left) and all(
        matches(s, v, literal(s, p)) for s, v, p in zip(left, values, parts, strict=False)
    )


def _in_set(host: NftHost, table: NftTable, expr: NftCmp) -> bool:
    assert expr.set is not None
    named = table.sets.get(expr.set)
    key = _key(host, expr.left)
    if named is None or key is None:
        if named is None:
            host.assumptions.append(f"{table.label}: no set @{expr.set}; assumed empty")
        return False
    if set_index(named).lookup(key) is not None:
        return True
    expiry = host.dynamic.get(f"{table.label} {expr.set}", {}).get(key)
    return expiry is not None and host.ctx.now_s < expiry


def _vmap(host: NftHost, table: NftTable, rule: NftRule, expr: NftVmap) -> str | None:
    if expr.numgen is not None:
        chosen = host.ctx.numgen(rule) if host.ctx.numgen is not None else None
        # nft_numgen_random: reciprocal_scale(get_random_u32(), mod); kubehop
        # draws the same uniform choice from the trace's seeded generator.
        number = chosen if chosen is not None else host.rng.randrange(expr.numgen)
        return next((e.value for e in expr.elements if e.key == (str(number),)), None)
    key = _key(host, expr.left)
    if key is None:
        return None
    if expr.map is not None:
        named = table.sets.get(expr.map)
        if named is None:
            host.assumptions.append(f"{table.label}: no map @{expr.map}; assumed empty")
            return None
        element = set_index(named).lookup(key)
        return element.value if element is not None else None
    for element in expr.elements:
        lits: list[Literal] = [literal(s, p) for s, p in zip(expr.left, element.key, strict=False)]
        if all(matches(s, v, lit) for s, v, lit in zip(expr.left, key, lits, strict=False)):
            return element.value
    return None


def _update(host: NftHost, table: NftTable, expr: NftSetUpdate) -> None:
    named = table.sets.get(expr.set)
    key = _key(host, expr.key)
    if named is None or key is None:
        return
    name = f"{table.label} {expr.set}"
    elements = host.dynamic.setdefault(name, {})
    now = host.ctx.now_s
    timeout = expr.timeout if expr.timeout is not None else named.timeout
    expiry = now + timeout if timeout is not None else math.inf
    if expr.op == "delete":
        elements.pop(key, None)
    elif expr.op == "update" or elements.get(key, -math.inf) <= now:
        elements[key] = expiry


Chooser = Callable[[NftRule], int | None]
"""Picks the branch of a `numgen` rule (to reach a pinned endpoint); None: draw."""
