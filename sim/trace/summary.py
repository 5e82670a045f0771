"""What a trace came to, in a few lines: NAT and where it was undone, the rules that decided,
the nodes and tunnels crossed, how a refusal was answered, and the verdict.

Derived from the hops only (their effects are `sim.trace.effects.hop_effect`'s),
so the text report, the JSON and the app say the same thing.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from model.netfilter import RuleRef
from model.packet import PORTLESS, CtState, Packet, Proto
from model.trace import Direction, Hop, TableWalk, Trace, Verdict
from sim.trace.effects import Effect, hop_effect

__all__ = [
    "DecidingRule",
    "NatStep",
    "RefusalAnswer",
    "TraceSummary",
    "TunnelStep",
    "summarize",
    "summary_lines",
]

_NAT = (Effect.DNAT, Effect.SNAT, Effect.MASQUERADE)
_DECIDING = (*_NAT, Effect.DROP, Effect.REJECT)


class NatStep(BaseModel):
    """One address translation of the request, and the reply hop that undid it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    effect: Effect
    """dnat, snat or masquerade."""
    hop: int
    """The hop that translated, numbered from 1 as the report shows it."""
    node: str | None
    """The node it happened on."""
    hook: str | None
    """The netfilter hook (`PREROUTING`)."""
    before: str
    """The rewritten address as it was (`10.101.100.102:80`)."""
    after: str
    """The address it became (`192.168.2.2:8080`)."""
    reversed_at: int | None = None
    """The reply hop that undid it (numbered from 1), None when no reply hop did."""
    reversed_node: str | None = None
    """The node it was undone on."""
    reversed_quoted: bool = False
    """What undid it was an ICMP error about the request, from an address that was never
    translated: conntrack rewrote the header the error quotes, not its own."""


class DecidingRule(BaseModel):
    """The rule that rewrote or stopped the packet at one hop, and the rules that led to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hop: int
    """The hop, numbered from 1."""
    effect: Effect
    """What the rule did there."""
    node: str | None
    """The node whose rules these are."""
    hook: str | None
    """The netfilter hook."""
    table: str
    """The table (`nat`), or for nftables the nft table (`ip kube-proxy`)."""
    chain: str | None
    """The chain holding the deciding rule; None when no rule decided (IPVS)."""
    index: int | None
    """Its number in the chain, from 1; None when no rule decided."""
    line: str
    """The rule as iptables-save or nft prints it, or the hop's detail when no rule decided."""
    path: tuple[str, ...] = ()
    """The rules matched before it in that table, `CHAIN #N`, in walk order."""


class TunnelStep(BaseModel):
    """A tunnel the packet entered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hop: int
    """The encapsulating hop, numbered from 1."""
    node: str | None
    """The node whose tunnel device wrapped it."""
    interface: str | None
    """The tunnel device (`flannel.1`, `tunl0`)."""
    kind: str
    """`vxlan` or `ipip`."""
    direction: Direction
    """Request or reply."""


class RefusalAnswer(BaseModel):
    """How a refused request's sender was told: the ICMP error or RST sent back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hop: int
    """The hop that sent the answer, numbered from 1."""
    what: str
    """`ICMP destination unreachable` or `TCP RST`."""
    source: str
    """The answer's source address as it left."""
    delivered_at: int | None
    """The hop where it reached the client's socket, None when it did not."""
    error: str | None
    """What the client's call fails with (`ECONNREFUSED`), when it arrived."""


class TraceSummary(BaseModel):
    """What a trace came to, derived from its hops."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nat: tuple[NatStep, ...]
    """Each address translation of the request, in order, with where it was undone."""
    rules: tuple[DecidingRule, ...]
    """The rules that rewrote or stopped the packet, in hop order."""
    nodes: tuple[str, ...]
    """The nodes whose own network stack the exchange passed, in the order it first reached
    them (a packet that stays inside a pod crosses none)."""
    stayed_in: str | None = None
    """The one netns the whole exchange stayed in, when it crossed no other."""
    tunnels: tuple[TunnelStep, ...]
    """The tunnels the packet entered."""
    answer: RefusalAnswer | None
    """How the sender of a refused request was told, None when nothing was refused."""
    verdict: Verdict
    """How the trace ended."""
    outcome: str
    """The endpoint that served the request, else the verdict."""


def summarize(trace: Trace) -> TraceSummary:
    """What `trace` came to."""
    effects = [hop_effect(hop, trace.verdict) for hop in trace.hops]
    return TraceSummary(
        nat=_nat_steps(trace, effects),
        rules=tuple(
            _deciding_rule(hop, effect)
            for hop, effect in zip(trace.hops, effects, strict=True)
            if effect in _DECIDING and hop.direction is Direction.REQUEST
        ),
        nodes=tuple(
            dict.fromkeys(h.where.node for h in trace.hops if h.where.netns == h.where.node)
        ),
        tunnels=tuple(
            TunnelStep(
                hop=hop.seq + 1,
                node=hop.where.node,
                interface=hop.where.interface,
                kind="ipip" if hop.after.proto is Proto.IPIP else "vxlan",
                direction=hop.direction,
            )
            for hop, effect in zip(trace.hops, effects, strict=True)
            if effect is Effect.ENCAP
        ),
        stayed_in=places.pop() if len(places := {h.where.netns for h in trace.hops}) == 1 else None,
        answer=_answer(trace),
        verdict=trace.verdict,
        outcome=trace.outcome,
    )


def _address(pkt: Packet, side: str) -> str:
    """`IP:PORT` of one side (`src`, `dst`) of `pkt`, just `IP` for a protocol without ports."""
    ip = pkt.src if side == "src" else pkt.dst
    if pkt.proto in PORTLESS:
        return str(ip)
    return f"{ip}:{pkt.sport if side == 'src' else pkt.dport}"


def _nat_steps(trace: Trace, effects: list[Effect]) -> tuple[NatStep, ...]:
    steps: list[NatStep] = []
    for hop, effect in zip(trace.hops, effects, strict=True):
        if effect not in _NAT or hop.direction is not Direction.REQUEST:
            continue
        side = "dst" if effect is Effect.DNAT else "src"
        undo, quoted = _undone_by(trace, effects, hop, side)
        steps.append(
            NatStep(
                effect=effect,
                hop=hop.seq + 1,
                node=hop.where.node,
                hook=hop.where.hook.value if hop.where.hook else None,
                before=_address(hop.before, side),
                after=_address(hop.after, side),
                reversed_at=undo.seq + 1 if undo is not None else None,
                reversed_node=undo.where.node if undo is not None else None,
                reversed_quoted=quoted,
            )
        )
    return tuple(steps)


def _undone_by(trace: Trace, effects: list[Effect], nat: Hop, side: str) -> tuple[Hop | None, bool]:
    """The reply hop that turned `nat`'s rewrite back, and whether it did so only in the
    header an ICMP error quotes: a reply's other side goes from the rewritten address to
    the original one (an ICMP error's by address only), or the quoted request's own side
    does (an error from an address NAT never touched, a router's)."""
    back = "src" if side == "dst" else "dst"
    for hop, effect in zip(trace.hops, effects, strict=True):
        if hop.seq <= nat.seq or effect is not Effect.UNNAT:
            continue
        portless = hop.before.proto in PORTLESS
        if _same(hop.before, back, nat.after, side, portless=portless) and _same(
            hop.after, back, nat.before, side, portless=portless
        ):
            return hop, False
        quoted, restored = hop.before.inner, hop.after.inner
        if (
            portless
            and quoted is not None
            and restored is not None
            and _address(quoted, side) == _address(nat.after, side)
            and _address(restored, side) == _address(nat.before, side)
        ):
            return hop, True
    return None, False


def _same(reply: Packet, reply_side: str, request: Packet, side: str, *, portless: bool) -> bool:
    """Whether `reply_side` of `reply` is `side` of `request` (addresses only when the reply
    has no ports: an ICMP error)."""
    if portless:
        return _address(reply, reply_side) == str(request.src if side == "src" else request.dst)
    return _address(reply, reply_side) == _address(request, side)


def _deciding_walk(hop: Hop, effect: Effect) -> TableWalk | None:
    """The table walk whose rule rewrote or stopped the packet at `hop`."""
    if effect in (Effect.DROP, Effect.REJECT):
        stopped = [w for w in hop.tables if w.verdict in ("DROP", "REJECT") and w.matched]
        return stopped[-1] if stopped else None
    nat = [w for w in hop.tables if w.table.value == "nat" and w.matched and w.skipped is None]
    return nat[-1] if nat else None


def _deciding_rule(hop: Hop, effect: Effect) -> DecidingRule:
    walk = _deciding_walk(hop, effect)
    hook = hop.where.hook.value if hop.where.hook else None
    if walk is None:
        # IPVS, a policy, a route: no rule to name; the hop's detail says what decided.
        # A packet of a connection NATed already (the data segment `--size` sends) is
        # rewritten by its conntrack entry: no rule is consulted.
        line = hop.detail
        entry = hop.conntrack
        if not line and effect in _NAT and entry is not None and entry.state is not CtState.NEW:
            line = (
                f"conntrack: the connection's mapping ({entry.state.value}; no rule is consulted)"
            )
        return DecidingRule(
            hop=hop.seq + 1,
            effect=effect,
            node=hop.where.node,
            hook=hook,
            table=hop.tables[-1].nft or hop.tables[-1].table.value if hop.tables else "",
            chain=None,
            index=None,
            line=line,
        )
    rule = walk.matched[-1]
    return DecidingRule(
        hop=hop.seq + 1,
        effect=effect,
        node=hop.where.node,
        hook=hook,
        table=walk.nft or walk.table.value,
        chain=rule.chain,
        index=rule.index,
        line=rule.line,
        path=tuple(f"{r.chain} #{r.index}" for r in _calls(walk.matched)),
    )


def _calls(matched: tuple[RuleRef, ...]) -> list[RuleRef]:
    """The jumps that lead to the last matched rule, from the base chain: what `matched` holds
    besides them (a jump that returned, a MARK) did not bring the packet there."""
    path: list[RuleRef] = []
    chain = matched[-1].chain
    for rule in reversed(matched[:-1]):
        if rule.chain == chain:
            continue
        # A named verdict map (`vmap @no-endpoint-services`) names its chains in its elements.
        if _jumps_to(rule.line, chain) or " vmap @" in rule.line:
            path.append(rule)
            chain = rule.chain
    return path[::-1]


def _jumps_to(line: str, chain: str) -> bool:
    """Whether the rule `line` jumps or goes to `chain` (iptables' -j/-g, nft's jump/goto, also
    inside a verdict map)."""
    name = re.escape(chain)
    return (
        re.search(rf"(?:-[jg]|--jump|--goto|\bjump|\bgoto) {name}(?=[\s,}}]|$)", line) is not None
    )


def _answer(trace: Trace) -> RefusalAnswer | None:
    if trace.verdict not in (Verdict.REJECTED, Verdict.REFUSED):
        return None
    reply = [h for h in trace.hops if h.direction is Direction.REPLY]
    if not reply:
        return None
    sent, last = reply[0], reply[-1]
    icmp = sent.after.proto is Proto.ICMP
    arrived = last.kind.value == "deliver"
    error = last.detail.rpartition("sk_err = ")[2] or None if arrived else None
    return RefusalAnswer(
        hop=sent.seq + 1,
        what="ICMP destination unreachable" if icmp else "TCP RST",
        source=str(sent.after.src),
        delivered_at=last.seq + 1 if arrived else None,
        error=error,
    )


def _rule_text(rule: DecidingRule) -> str:
    """`hop 5 node-a PREROUTING: KUBE-SEP-… #2 -j DNAT --to-destination … (nat), reached by …`."""
    where = " ".join(p for p in (rule.node or "", rule.hook or "") if p)
    if rule.chain is None:
        return f"hop {rule.hop} {where}: {rule.effect.label} by {rule.line or 'no rule'}"
    statement = rule.line.split(' comment "')[0]
    if " -j " in statement:
        statement = "-j " + statement.split(" -j ", 1)[1]
    text = f"hop {rule.hop} {where}: {rule.chain} #{rule.index} {statement} ({rule.table})"
    if rule.path:
        text += f", reached by {' → '.join(rule.path)}"
    return text


def summary_lines(summary: TraceSummary) -> list[str]:
    """The summary as lines of text, the last thing `kubehop trace` prints."""
    lines = ["summary:"]
    if summary.nodes:
        lines.append(f"  nodes: {' → '.join(summary.nodes)}")
    elif summary.stayed_in is not None:
        lines.append(f"  nodes: none (the packets never left {summary.stayed_in})")
    else:
        lines.append("  nodes: none")
    for step in summary.nat:
        on = f" on {step.node}" if step.node else ""
        text = f"  {step.effect.label} at hop {step.hop}{on} ({step.before} → {step.after})"
        if step.reversed_at is not None:
            back = f" on {step.reversed_node}" if step.reversed_node else ""
            text += f", reversed at hop {step.reversed_at}{back}"
            if step.reversed_quoted:
                text += " (in the header the ICMP error quotes)"
        else:
            text += ", not reversed in this trace"
        lines.append(text)
    if not summary.nat:
        lines.append("  NAT: none")
    if summary.rules:
        lines.append("  decided by:")
        lines += [f"    {_rule_text(rule)}" for rule in summary.rules]
    for tunnel in summary.tunnels:
        lines.append(
            f"  tunnel: {tunnel.kind} by {tunnel.interface} on {tunnel.node} at hop {tunnel.hop}"
            f" ({tunnel.direction.value})"
        )
    answer = summary.answer
    if answer is not None:
        text = f"  answer: {answer.what} from {answer.source} at hop {answer.hop}"
        if answer.delivered_at is not None:
            text += f", reaches the client at hop {answer.delivered_at}"
            if answer.error:
                text += f": {answer.error}"
        else:
            text += ", which never reaches the client's socket"
        lines.append(text)
    served = f" ({summary.outcome})" if summary.outcome != summary.verdict.value else ""
    lines.append(f"  outcome: {summary.verdict.value.upper()}{served}")
    return lines
