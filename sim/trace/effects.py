"""What each hop did to the packet, named once for the text report, the JSON and the app.

A hop's kind says where it happens (a netfilter hook, the bridge); its effect
says what happened there: a netfilter hook that rewrote the destination is a
DNAT, one that rewrote a reply's addresses back is an un-NAT, a hook that only
walked its rules is a HOOK. The kind stays the model's; the effect is derived.
"""

from __future__ import annotations

import re
from enum import StrEnum

from model.trace import Direction, Hop, HopKind, TableWalk, Trace, Verdict


class Effect(StrEnum):
    """What a hop did, as the text report's header, the JSON's `effect` and the app name it."""

    DNS = "dns"
    """The destination name was resolved."""
    SEND = "send"
    """A process wrote to its socket."""
    ROUTE = "route"
    """A routing decision."""
    HOOK = "hook"
    """Netfilter tables walked without a rewrite or a verdict against the packet."""
    DNAT = "dnat"
    """Netfilter rewrote the destination (a Service's endpoint chosen)."""
    SNAT = "snat"
    """Netfilter rewrote the source with an SNAT rule."""
    MASQUERADE = "masquerade"
    """Netfilter rewrote the source to the outgoing interface's address (MASQUERADE)."""
    UNNAT = "unnat"
    """Conntrack reversed an earlier NAT on a reply."""
    LOOPBACK = "loopback"
    """The packet looped through `lo`."""
    VETH = "veth"
    """The packet crossed a veth pair."""
    BRIDGE = "bridge"
    """The node bridge forwarded the frame, or took it for itself."""
    WIRE = "wire"
    """The packet crossed the network between machines."""
    ENCAP = "encap"
    """A tunnel device wrapped the frame in an outer header."""
    DECAP = "decap"
    """A tunnel took the outer header off."""
    RECEIVE = "receive"
    """An interface accepted a frame addressed to it."""
    DELIVER = "deliver"
    """A listening socket received the packet."""
    DROP = "drop"
    """The packet died here: a DROP rule or policy, no route, nobody waiting for a reply."""
    REJECT = "reject"
    """A REJECT rule refused the packet (the sender gets an ICMP error or a RST)."""
    REFUSED = "refused"
    """Nothing listens on the port: the kernel answers with a RST (ICMP for UDP)."""
    UNKNOWN = "unknown"
    """The dump cannot tell what happens here."""

    @property
    def label(self) -> str:
        """The effect in at most seven capitals, as a trace's header shows it (`UN-NAT`)."""
        return _LABELS.get(self, self.value.upper())


_LABELS: dict[Effect, str] = {
    Effect.MASQUERADE: "MASQ",
    Effect.UNNAT: "UN-NAT",
    Effect.LOOPBACK: "LO",
    Effect.RECEIVE: "RECV",
}

_BY_KIND: dict[HopKind, Effect] = {
    HopKind.DNS: Effect.DNS,
    HopKind.SEND: Effect.SEND,
    HopKind.ROUTE: Effect.ROUTE,
    HopKind.NETFILTER: Effect.HOOK,
    HopKind.LOOPBACK: Effect.LOOPBACK,
    HopKind.VETH: Effect.VETH,
    HopKind.BRIDGE: Effect.BRIDGE,
    HopKind.WIRE: Effect.WIRE,
    HopKind.ENCAP: Effect.ENCAP,
    HopKind.DECAP: Effect.DECAP,
    HopKind.RECEIVE: Effect.RECEIVE,
    HopKind.DELIVER: Effect.DELIVER,
    HopKind.DROP: Effect.DROP,
    HopKind.UNKNOWN: Effect.UNKNOWN,
}

_ADDRESSES = frozenset({"src", "dst", "sport", "dport"})


def hop_effect(hop: Hop, verdict: Verdict | None = None) -> Effect:
    """What `hop` did, from its kind, the fields it rewrote and the rules that decided.

    `verdict` is the trace's: a drop hop ends its trace, so a REFUSED trace's
    drop hop is the kernel refusing the connection (its kind alone says drop).
    """
    if hop.kind is HopKind.NETFILTER:
        changed = set(hop.changed)
        # An ICMP error's quoted header counts: conntrack un-NATs it as the reply it is about.
        if hop.direction is Direction.REPLY and changed & (_ADDRESSES | {"inner"}):
            return Effect.UNNAT
        if changed & {"dst", "dport"}:
            return Effect.DNAT
        if changed & {"src", "sport"}:
            masq = any(_masquerades(walk) for walk in hop.tables)
            return Effect.MASQUERADE if masq else Effect.SNAT
        return Effect.HOOK
    if hop.kind is HopKind.DROP:
        # A netfilter hook that refused the packet is a drop hop with the tables it walked.
        if any(walk.verdict == "REJECT" for walk in hop.tables):
            return Effect.REJECT
        request = hop.direction is Direction.REQUEST
        if request and verdict is Verdict.REJECTED and not _dropped(hop):
            # IPVS without a real server rejects at its own hook, in no table walk.
            return Effect.REJECT
        if request and not hop.tables and verdict is Verdict.REFUSED:
            return Effect.REFUSED
        return Effect.DROP
    return _BY_KIND[hop.kind]


def _dropped(hop: Hop) -> bool:
    """Whether a table walk at `hop` dropped the packet."""
    return any(walk.verdict == "DROP" for walk in hop.tables)


_NFT_MASQUERADE = re.compile(r"(?:^|\s)masquerade(?:\s|$)")
"""nft's `masquerade` statement (not `jump mark-for-masquerade`, nor a comment's word)."""


def _masquerades(walk: TableWalk) -> bool:
    """Whether a rule `walk` matched masquerades, in iptables' spelling or nft's."""
    if walk.nft is None:
        return any("-j MASQUERADE" in rule.line for rule in walk.matched)
    return any(_NFT_MASQUERADE.search(rule.line.split(' comment "')[0]) for rule in walk.matched)


def trace_effects(trace: Trace) -> tuple[Effect, ...]:
    """The effect of each of `trace`'s hops, in order."""
    return tuple(hop_effect(hop, trace.verdict) for hop in trace.hops)
