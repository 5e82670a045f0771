"""The hops where something was decided, for the app's jump keys (next/previous decision).

A decision is a hop whose outcome could have been otherwise: a NAT or its
reversal, a routing or bridging choice, a drop or rejection, conntrack
recognising a reply, IPVS choosing a real server, a tunnel wrapping the packet,
and the socket that finally took it. Hops that only carry the packet (a veth,
a wire, a receive) or walk rules without effect are not.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.trace import Direction, HopKind, Trace
from sim.kernel.conntrack import conntrack_view
from sim.trace.effects import Effect, hop_effect

__all__ = ["Decision", "decisions", "next_decision", "previous_decision"]

_WHY: dict[Effect, str] = {
    Effect.DNAT: "DNAT",
    Effect.SNAT: "SNAT",
    Effect.MASQUERADE: "MASQUERADE",
    Effect.UNNAT: "conntrack reverses the NAT",
    Effect.ROUTE: "routing decision",
    Effect.BRIDGE: "bridge decision",
    Effect.DROP: "drop",
    Effect.REJECT: "reject",
    Effect.REFUSED: "refused",
    Effect.UNKNOWN: "unknown",
    Effect.ENCAP: "encapsulation",
    Effect.DELIVER: "delivered",
}


@dataclass(frozen=True)
class Decision:
    """A hop where something was decided, and what, in a few words."""

    seq: int
    """The hop's index in the trace, from 0."""
    why: str
    """What was decided (`DNAT`, `routing decision`, `conntrack matches the reply`)."""


def decisions(trace: Trace) -> tuple[Decision, ...]:
    """The decision hops of `trace`, in order."""
    found: list[Decision] = []
    for hop in trace.hops:
        effect = hop_effect(hop, trace.verdict)
        if effect is Effect.DNAT and any(w.table.value == "nat" and w.matched for w in hop.tables):
            why = "DNAT"
        elif effect is Effect.DNAT:
            why = "DNAT (IPVS schedules a real server)"
        elif effect in _WHY:
            why = _WHY[effect]
        elif _reply_recognised(trace, hop.seq):
            why = "conntrack matches the reply"
        else:
            continue
        found.append(Decision(hop.seq, why))
    return tuple(found)


def _reply_recognised(trace: Trace, seq: int) -> bool:
    """A reply's first hook in a netns, where conntrack finds the connection it answers."""
    hop = trace.hops[seq]
    if hop.direction is not Direction.REPLY or hop.kind is not HopKind.NETFILTER:
        return False
    view = conntrack_view(trace, seq)
    return view.after is not None and "state" in view.changed


def next_decision(trace: Trace, seq: int) -> int | None:
    """The index of the first decision hop after hop `seq`, None when there is none."""
    return next((d.seq for d in decisions(trace) if d.seq > seq), None)


def previous_decision(trace: Trace, seq: int) -> int | None:
    """The index of the last decision hop before hop `seq`, None when there is none."""
    return next((d.seq for d in reversed(decisions(trace)) if d.seq < seq), None)
