"""A trace: the hops of one request and its reply, each a frozen snapshot."""

# No `from __future__ import annotations`: pydantic reads each string annotation by
# compiling and evaluating it when it makes the class; real ones spare that at start-up.

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from model.netfilter import Hook, RuleRef, Table
from model.packet import PORTLESS, ConntrackEntry, Packet


class Direction(StrEnum):
    """Which half of the exchange a hop belongs to."""

    REQUEST = "request"
    REPLY = "reply"


_PORT_FIELDS = frozenset({"sport", "dport", "tcp_flags", "mss"})
"""What a packet without ports (IP-in-IP's outer header) lacks."""


class HopKind(StrEnum):
    """What happens at a hop; the screen gives each kind a colour and a symbol."""

    DNS = "dns"
    """The destination name was resolved (summarised, not packet by packet)."""
    SEND = "send"
    """A process wrote to its socket."""
    ROUTE = "route"
    """A routing decision in a netns (longest prefix match)."""
    NETFILTER = "netfilter"
    """One hook's tables walked; may rewrite (DNAT, SNAT, MASQUERADE) or drop."""
    LOOPBACK = "loopback"
    """The packet looped through `lo` inside one netns."""
    VETH = "veth"
    """The packet crossed a veth pair into the peer netns."""
    BRIDGE = "bridge"
    """The node bridge forwarded a frame by its FDB, or took it for itself."""
    WIRE = "wire"
    """The packet crossed the network between nodes (the CNI's data path)."""
    RECEIVE = "receive"
    """An interface accepted a frame addressed to it."""
    DELIVER = "deliver"
    """A listening socket received the packet."""
    DROP = "drop"
    """The packet died here: dropped, rejected, unroutable, or nobody listening."""
    ENCAP = "encap"
    """A tunnel device wrapped the frame in an outer header (VXLAN) for another node."""
    DECAP = "decap"
    """A tunnel's socket took the outer header off and handed the frame to its device."""
    UNKNOWN = "unknown"
    """The walk stops where the dump cannot tell what happens (no socket known to listen)."""


class Where(BaseModel):
    """The place of a hop: node, netns, interface, and for netfilter the hook."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node: str | None
    """The node whose machine this is on, None for an external client."""
    netns: str
    """The network namespace: `node-a`, `pod/default/pod1`, `client/laptop`."""
    interface: str | None = None
    """The interface involved (`eth0`, `veth1a2b3c4d`, `cni0`, `lo`)."""
    hook: Hook | None = None
    """The netfilter hook, at NETFILTER hops."""

    def __str__(self) -> str:
        parts = [self.netns]
        if self.interface:
            parts.append(self.interface)
        if self.hook:
            parts.append(self.hook.value)
        return " ".join(parts)


class ChainSpan(BaseModel):
    """A run of consecutive rules of one chain that the packet was compared with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain: str
    """The chain."""
    first: int = Field(ge=1)
    """The first rule compared (1-based)."""
    last: int = Field(ge=0)
    """The last rule compared; `last < first` when the chain was empty."""


class TableWalk(BaseModel):
    """One table's chains walked at a hook, and what matched."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    table: Table
    """The table walked; for an nftables base chain, the table its type plays (nat, filter)."""
    nft: str | None = None
    """For an nftables base chain (`nft` is its table, `ip kube-proxy`), None for an iptables
    table: the spans then name that table's chains and `matched` its rules as `nft list`
    prints them."""
    spans: tuple[ChainSpan, ...] = ()
    """The rules the packet was compared with, chain by chain, in walk order.

    Spans, not a list of rules, so a 10,000-rule KUBE-SERVICES chain costs one
    entry; every rule inside a span was compared, as the kernel compares them.
    """
    matched: tuple[RuleRef, ...] = ()
    """The rules that matched, in order (jumps, marks, and the final target)."""
    verdict: str = "ACCEPT"
    """ACCEPT, DROP, REJECT, or the built-in chain's policy."""
    skipped: str | None = None
    """Why this table was not consulted (nat is only for a connection's first packet)."""
    elided: int = 0
    """Chain spans walked but not listed (a walk that fans out lists its first thousands)."""


class Hop(BaseModel):
    """One step of a packet's path: where, before and after, why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=0)
    """Position in the trace, from 0."""
    t_us: int = Field(ge=0)
    """Virtual time in microseconds since the request was sent."""
    direction: Direction
    """Request or reply."""
    kind: HopKind
    """What happens here."""
    where: Where
    """Node, netns, interface, hook."""
    before: Packet
    """The packet arriving at this hop."""
    after: Packet
    """The packet leaving this hop (equal to `before` when nothing changed)."""
    tables: tuple[TableWalk, ...] = ()
    """At NETFILTER hops, each table walked in kernel priority order."""
    conntrack: ConntrackEntry | None = None
    """The conntrack entry of this packet in this netns, after the hop."""
    detail: str = ""
    """The decision in kernel terms: a route line, an FDB lookup, a rule target."""
    sentence: str
    """What happened and why, in one plain sentence."""
    note: str | None = None
    """Where the simulation simplifies, or where the article and Linux disagree."""

    @property
    def changed(self) -> tuple[str, ...]:
        """Names of the packet fields this hop rewrote. Where a tunnel header without ports
        (IP-in-IP) is added or taken off, the ports and TCP flags are not said to change:
        one side has none."""
        portless = self.before.proto in PORTLESS or self.after.proto in PORTLESS
        return tuple(
            name
            for name in Packet.model_fields
            if getattr(self.before, name) != getattr(self.after, name)
            and not (portless and name in _PORT_FIELDS)
        )


class Verdict(StrEnum):
    """How a trace ended."""

    DELIVERED = "delivered"
    DROPPED = "dropped"
    REJECTED = "rejected"
    UNREACHABLE = "unreachable"
    REFUSED = "refused"
    UNKNOWN = "unknown"
    """The dump cannot tell: no listening socket is known, or a Service's endpoints are not in it."""


class Trace(BaseModel):
    """A request and its reply, hop by hop, with how it ended."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    """The source as the user named it (`pod1 -c container01`)."""
    destination: str
    """The destination as the user named it (`svc-b:80`)."""
    seed: int
    """The seed of the random generator; the same seed gives the same trace."""
    hops: tuple[Hop, ...]
    """Every hop of the request, then of the reply."""
    verdict: Verdict
    """How it ended."""
    reason: str
    """The verdict in one plain sentence, naming the rule or route that caused it."""
    endpoint: str | None = None
    """`IP:PORT` of the endpoint that served the request, when one did."""
    warnings: tuple[str, ...] = ()
    """Cluster warnings that bear on this trace, and where the rules made kubehop assume."""
    rule: str | None = None
    """The rule that dropped or rejected the packet, as iptables-save prints it (with
    `file:line:` in front for a real node's dump); None when no rule did."""

    @property
    def outcome(self) -> str:
        """Where the request ended: the endpoint that served it, else the verdict.

        A request refused or dropped at its endpoint reached no server, though
        a DNAT chose that endpoint.
        """
        if self.verdict is Verdict.DELIVERED and self.endpoint:
            return self.endpoint
        return self.verdict.value
