"""One request traced under two dataplanes: the same moment in both, and what differs.

The app's `m` switches kube-proxy's mode and traces the request on show again:
the person stays at the hop they were reading (the DNAT hop stays the DNAT hop,
on the same node) and is told what the other mode did differently there, in
the words of the trace: "DNAT in endpoint-… instead of KUBE-SEP-…".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from model.netfilter import RuleRef
from model.trace import Hop, Trace
from sim.trace.effects import Effect, hop_effect

__all__ = ["Counterpart", "counterpart", "differences"]

_DECIDING = (Effect.DNAT, Effect.SNAT, Effect.MASQUERADE, Effect.REJECT, Effect.DROP)
"""Effects a rule decides, so the rule names what a mode did."""

_IPTABLES_DECIDES = ("-j DNAT", "-j SNAT", "-j MASQUERADE", "-j DROP", "-j REJECT")
_NFT_DECIDES = re.compile(r"(?:^|\s)(?:dnat|snat|masquerade|drop|reject)(?:\s|$)")


@dataclass(frozen=True)
class Counterpart:
    """Where a hop of one trace is in another trace of the same request."""

    index: int
    """The position of the hop in the other trace."""
    same: bool
    """The hop there did the same (DNAT, bridge…) on the same node; False: the nearest."""


def _keys(trace: Trace) -> list[Callable[[Hop], Hashable]]:
    effect = {hop.seq: hop_effect(hop, trace.verdict) for hop in trace.hops}
    return [
        lambda h: (effect[h.seq], h.direction, h.where.node, h.where.hook, h.where.interface),
        lambda h: (effect[h.seq], h.direction, h.where.node),
        lambda h: (h.kind, h.direction, h.where.node, h.where.hook),
        lambda h: (h.kind, h.direction, h.where.node),
        lambda h: (h.direction, h.where.node),
        lambda h: h.direction,
    ]


def counterpart(old: Trace, index: int, new: Trace) -> Counterpart:
    """Hop `index` of `old` in `new`: a hop that did the same on the same node (the same
    occurrence of it, counting from the start), else the nearest kind of hop there."""
    if not new.hops:
        return Counterpart(0, same=False)
    if not old.hops:
        return Counterpart(0, same=False)
    index = max(0, min(index, len(old.hops) - 1))
    hop = old.hops[index]
    for level, (old_key, new_key) in enumerate(zip(_keys(old), _keys(new), strict=True)):
        wanted = old_key(hop)
        found = [h.seq for h in new.hops if new_key(h) == wanted]
        if found:
            before = sum(1 for h in old.hops[:index] if old_key(h) == wanted)
            return Counterpart(found[min(before, len(found) - 1)], same=level < 2)
    # Not even the direction: the same fraction of the way through.
    scale = (len(new.hops) - 1) / max(1, len(old.hops) - 1)
    return Counterpart(round(index * scale), same=False)


def _decisive(hop: Hop) -> tuple[str, RuleRef] | None:
    """The rule that rewrote or stopped the packet at `hop` (its table as listed), else None."""
    for walk in reversed(hop.tables):
        for rule in reversed(walk.matched):
            if walk.nft is not None:
                if _NFT_DECIDES.search(rule.line.split(' comment "')[0]):
                    return walk.nft, rule
            elif any(target in rule.line for target in _IPTABLES_DECIDES):
                return walk.table.value, rule
    return None


_IPVS_SERVICE = re.compile(r"-A (?:-[tu]|--sctp-service) (\S+)")


def _decider(hop: Hop) -> str | None:
    """What rewrote or stopped the packet at `hop`: a rule's chain, or IPVS's virtual server
    (IPVS mode's DNAT and its refusals come from no rule)."""
    rule = _decisive(hop)
    if rule is not None:
        return rule[1].chain
    if hop.detail.startswith("ipvs: "):
        service = _IPVS_SERVICE.search(hop.detail)
        return f"IPVS's virtual server {service[1]}" if service else "IPVS"
    return None


def _decisions(trace: Trace) -> list[tuple[Effect, str]]:
    """(effect, decider) of each hop where a rule or IPVS rewrote or stopped the packet, in
    order."""
    found: list[tuple[Effect, str]] = []
    for hop in trace.hops:
        effect = hop_effect(hop, trace.verdict)
        if effect in _DECIDING and (decider := _decider(hop)) is not None:
            found.append((effect, decider))
    return found


def differences(old: Trace, new: Trace) -> tuple[str, ...]:
    """What differs between two traces of one request, in a few plain phrases: the rules that
    rewrote or stopped the packet (`DNAT in endpoint-… instead of KUBE-SEP-…`), the endpoint,
    the verdict, the number of hops. Empty when nothing a reader would notice differs."""
    said: list[str] = []
    before, after = _decisions(old), _decisions(new)
    for n in range(max(len(before), len(after))):
        was = before[n] if n < len(before) else None
        now = after[n] if n < len(after) else None
        if was is not None and now is not None and was[0] is now[0]:
            if was[1] != now[1]:
                said.append(f"{now[0].label} in {now[1]} instead of {was[1]}")
        elif now is not None:
            said.append(f"{now[0].label} in {now[1]}" + (f" (was {was[0].label})" if was else ""))
        elif was is not None:
            said.append(f"no {was[0].label} (was in {was[1]})")
    if old.endpoint != new.endpoint:
        said.append(f"endpoint {new.endpoint or 'none'} instead of {old.endpoint or 'none'}")
    if old.verdict is not new.verdict:
        said.append(f"{new.verdict.value} instead of {old.verdict.value}")
    if len(old.hops) != len(new.hops):
        said.append(f"{len(new.hops)} hops instead of {len(old.hops)}")
    return tuple(said)
