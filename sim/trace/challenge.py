"""Challenge mode: before a decision hop is shown, ask the learner to predict it.

Questions come from the trace and the cluster only: which chain a rule jumps
to, which address DNAT writes, which node serves the request, which device a
route takes, what source the server sees, where the reply or the refusal comes
from. Each has three or four choices, the wrong ones drawn from what the learner
might confuse (other endpoints, the ClusterIP, a node's address, other chains
of the same table), the index of the right one, the hop it is asked before,
and a paragraph that explains the answer. The same trace and seed give the
same questions, choices in the same order.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address

from model.cluster import Cluster
from model.errors import RequestError
from model.netfilter import Chain, Table
from model.packet import PORTLESS, Packet, Proto
from model.trace import Direction, Hop, HopKind, TableWalk, Trace
from sim.cluster.network import network_of
from sim.cluster.rules import rules_for
from sim.kernel.rules import NodeRules, nft_of
from sim.proxy.endpoints import port_endpoints
from sim.proxy.services import services_at
from sim.trace.effects import Effect, hop_effect
from sim.trace.request import parse_source

__all__ = ["Question", "challenge"]

_BUILT_IN = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
_NFT_BASE = re.compile(
    r"^(?:nat|filter|mangle|raw)-(?:prerouting|input|forward|output|postrouting)$"
)
"""kube-proxy's nftables base chains, which jump on whatever they see (no question there)."""
_MAX_WRONG = 3
_SERVICE_COMMENT = re.compile(r'--comment "?[^"]*?([a-z0-9.-]+/[a-z0-9.-]+(?::[a-z0-9.-]+)?)')
"""The Service port a kube-proxy comment names (`default/svc-b:http`)."""
_HASHED = re.compile(r"^KUBE-[A-Z]+-[A-Z0-9]{16}$")
"""A per-Service or per-endpoint chain of kube-proxy's, named by a hash."""


@dataclass(frozen=True)
class Question:
    """One prediction asked before a hop is revealed."""

    before: int
    """The index (from 0) of the hop it is asked before; that hop shows the answer."""
    kind: str
    """What is asked: `chain`, `dnat`, `node`, `route`, `source`, `reply`, `answer`."""
    prompt: str
    """The question, one sentence."""
    choices: tuple[str, ...]
    """Three or four choices."""
    answer: int
    """The index of the right choice."""
    explanation: str
    """A paragraph revealed after the learner chose: the answer and why."""

    def is_right(self, choice: int) -> bool:
        """Whether `choice` (an index into `choices`) is the right one."""
        return choice == self.answer


def challenge(
    trace: Trace,
    cluster: Cluster,
    seed: int = 0,
    *,
    node_rules: Mapping[str, NodeRules] | None = None,
) -> tuple[Question, ...]:
    """The questions to ask while stepping through `trace`, in hop order.

    `node_rules` are the real nodes' rules the trace walked, if any (the
    chains offered as choices come from the same rules). `seed` decides which
    wrong choices are drawn and the order of the choices.
    """
    rng = random.Random(seed)
    asked = _Asker(trace, cluster, node_rules, rng)
    found = [q for q in asked.all() if q is not None]
    # At most one question of a kind per hop; several before one hop are asked in turn.
    unique: dict[tuple[int, str], Question] = {}
    for question in found:
        unique.setdefault((question.before, question.kind), question)
    return tuple(sorted(unique.values(), key=lambda q: q.before))


def _address(pkt: Packet, side: str) -> str:
    ip = pkt.src if side == "src" else pkt.dst
    if pkt.proto in PORTLESS:
        return str(ip)
    return f"{ip}:{pkt.sport if side == 'src' else pkt.dport}"


class _Asker:
    """The question makers over one trace; each returns None where it has nothing to ask."""

    def __init__(
        self,
        trace: Trace,
        cluster: Cluster,
        node_rules: Mapping[str, NodeRules] | None,
        rng: random.Random,
    ) -> None:
        self.trace = trace
        self.cluster = cluster
        self.node_rules = node_rules
        self.rng = rng
        self.effects = [hop_effect(h, trace.verdict) for h in trace.hops]
        self.request = [h for h in trace.hops if h.direction is Direction.REQUEST]
        self.reply = [h for h in trace.hops if h.direction is Direction.REPLY]
        self.sender = _sender_ip(cluster, trace.source)

    def all(self) -> Iterable[Question | None]:
        yield self.first_route()
        for hop, effect in zip(self.trace.hops, self.effects, strict=True):
            if hop.direction is not Direction.REQUEST:
                continue
            if effect in (Effect.DNAT, Effect.MASQUERADE, Effect.SNAT, Effect.REJECT):
                yield self.chain(hop)
            if effect is Effect.DNAT:
                yield self.dnat(hop)
                yield self.node(hop)
        yield self.source_seen()
        yield self.refusal_source()
        yield self.reply_source()

    # -- making a question ---------------------------------------------------

    def make(
        self,
        before: Hop,
        kind: str,
        prompt: str,
        right: str,
        wrong: Iterable[str],
        explanation: str,
        *,
        keep: Iterable[str] = (),
    ) -> Question | None:
        """A question with `right`, the wrong choices in `keep` (the mistakes worth making),
        and more drawn from `wrong` up to three, shuffled; None with fewer than two wrong."""
        kept = list(dict.fromkeys(k for k in keep if k and k != right))[:_MAX_WRONG]
        pool = list(dict.fromkeys(w for w in wrong if w and w != right and w not in kept))
        if len(kept) + len(pool) < 2:
            return None
        chosen = kept + self.rng.sample(pool, min(_MAX_WRONG - len(kept), len(pool)))
        choices = [right, *chosen]
        self.rng.shuffle(choices)
        return Question(
            before=before.seq,
            kind=kind,
            prompt=prompt,
            choices=tuple(choices),
            answer=choices.index(right),
            explanation=explanation,
        )

    # -- the questions ---------------------------------------------------------

    def first_route(self) -> Question | None:
        """Which device the sender's own route takes."""
        hop = next((h for h in self.request if h.kind is HopKind.ROUTE), None)
        if hop is None or hop.where.interface is None:
            return None
        devices = ["lo", "eth0", *self.node_devices(hop.where.node)]
        return self.make(
            hop,
            "route",
            f"{hop.where.netns} sends to {hop.before.dst}. Which device does its route take?",
            hop.where.interface,
            devices,
            f"{hop.where.interface}: {hop.sentence} ({hop.detail}).",
        )

    def node_devices(self, node: str | None) -> list[str]:
        """The devices of `node`'s own netns, the ones a learner may think a pod uses."""
        if node is None:
            return []
        seen = [h.where.interface for h in self.trace.hops if h.where.netns == node]
        try:
            devices = [i.name for i in network_of(self.cluster).netns(node).interfaces]
        except KeyError:  # a node the network does not know (a real dump's name)
            devices = []
        return [d for d in (*seen, *devices) if d and not d.startswith("veth")]

    def chain(self, hop: Hop) -> Question | None:
        """Which chain the first kube-proxy rule that matched jumps to."""
        walk = _deciding_walk(hop)
        if walk is None or len(walk.matched) < 2:
            return None
        pairs = list(zip(walk.matched, walk.matched[1:], strict=False))
        step = next(
            (
                (rule, then)
                for rule, then in pairs
                if rule.chain not in _BUILT_IN and not _NFT_BASE.match(rule.chain)
            ),
            None,
        )
        if step is None or step[0].chain == step[1].chain:
            return None
        rule, then = step
        alike, others = self.chains_like(hop, walk, then.chain)
        named = self.chain_names(hop, walk)
        where = f"{hop.where.node} {hop.where.hook.value if hop.where.hook else ''}".strip()
        table = walk.nft or walk.table.value
        return self.make(
            hop,
            "chain",
            f"On {where}, {table}'s {rule.chain} #{rule.index} matches the packet to"
            f" {_address(hop.before, 'dst')}. Which chain does it jump to?",
            named(then.chain),
            [named(n) for n in (*alike, *others)],
            f"{then.chain}: the rule `{_short(rule.line)}` matches this destination and jumps"
            f" there; {hop.sentence}.",
            keep=[named(n) for n in alike[:2]],
        )

    def chains_like(self, hop: Hop, walk: TableWalk, answer: str) -> tuple[list[str], list[str]]:
        """Other chains of the walked table: those named like `answer` (`KUBE-SVC-…`), the
        likeliest mistakes, then the rest."""
        names = list(self.chains_of(hop, walk))
        parts = answer.split("-")
        prefix = "-".join(parts[:2] if answer.startswith("KUBE-") and len(parts) > 2 else parts[:1])
        alike = sorted(n for n in names if n != answer and n.startswith(prefix))
        rest = sorted(
            n
            for n in names
            if n != answer and n not in alike and n not in _BUILT_IN and not _NFT_BASE.match(n)
        )
        return alike, rest[:8]

    def chains_of(self, hop: Hop, walk: TableWalk) -> Mapping[str, object]:
        """The chains of the table `walk` walked, by name (an nft table's, or iptables')."""
        if hop.where.node is None:
            return {}
        rules = rules_for(self.cluster, hop.where.node, self.node_rules)
        nft = nft_of(rules)
        if walk.nft is not None and nft is not None:
            return next((t.chains for t in nft.tables if t.label == walk.nft), {})
        return rules.ruleset.tables.get(walk.table, {})

    def chain_names(self, hop: Hop, walk: TableWalk) -> Callable[[str], str]:
        """How to show a chain as a choice: iptables' hashed names with the Service their
        rules' comments name (`KUBE-SVC-… (default/svc-b:http)`); nft's names say it."""
        chains = self.chains_of(hop, walk)

        def named(name: str) -> str:
            chain = chains.get(name)
            if walk.nft is not None or not isinstance(chain, Chain) or not _HASHED.match(name):
                return name
            for rule in chain.rules:
                found = _SERVICE_COMMENT.search(rule.line)
                if found:
                    return f"{name} ({found[1]})"
            return name

        return named

    def dnat(self, hop: Hop) -> Question | None:
        """Which address the packet carries after DNAT."""
        before, after = _address(hop.before, "dst"), _address(hop.after, "dst")
        wrong = [*self.endpoints(hop.before), before]
        if hop.where.node is not None:
            node = self.cluster.node(hop.where.node)
            if node is not None:
                wrong.append(f"{node.internal_ip}:{hop.after.dport}")
        return self.make(
            hop,
            "dnat",
            f"The packet to {before} reaches {hop.where.node} {_hook(hop)}. Which destination"
            " does it carry after this hop?",
            after,
            wrong,
            f"{after}: {hop.sentence}. The other endpoints could have been chosen as well;"
            " conntrack remembers this choice for every later packet of the connection.",
            keep=[before],
        )

    def endpoints(self, pkt: Packet) -> list[str]:
        """`IP:PORT` of every endpoint of the Service at `pkt`'s destination."""
        found: list[str] = []
        for answer in services_at(self.cluster, pkt.dst, pkt.dport, pkt.proto):
            for node in self.cluster.nodes:
                for endpoint in port_endpoints(
                    self.cluster, answer.service, answer.port, node.name
                ):
                    found.append(f"{endpoint.ip}:{endpoint.port}")
        return found

    def node(self, dnat: Hop) -> Question | None:
        """Which node's pod serves the request, asked before the hop after the DNAT."""
        served = next((h for h in self.request if h.kind is HopKind.DELIVER), None)
        following = next((h for h in self.trace.hops if h.seq == dnat.seq + 1), None)
        if served is None or served.where.node is None or following is None:
            return None
        nodes = [n.name for n in self.cluster.nodes]
        crossed = served.where.node != dnat.where.node
        return self.make(
            following,
            "node",
            f"After the DNAT to {_address(dnat.after, 'dst')}, which node's pod will serve the"
            " request?",
            served.where.node,
            nodes,
            f"{served.where.node}: {_address(dnat.after, 'dst')} is in"
            f" {served.where.node}'s pod network, so "
            + (
                f"{dnat.where.node} routes the packet across to it."
                if crossed
                else f"it stays on {dnat.where.node} and its bridge delivers it."
            ),
        )

    def source_seen(self) -> Question | None:
        """What source address the server sees."""
        served = next((h for h in self.request if h.kind is HopKind.DELIVER), None)
        if served is None:
            return None
        sent = self.request[0].before
        seen = _address(served.before, "src")
        wrong = [f"127.0.0.1:{sent.sport}"]
        wrong += [f"{n.internal_ip}:{sent.sport}" for n in self.cluster.nodes]
        keep = [_address(sent, "src")]
        if self.sender is not None:
            keep.append(f"{self.sender}:{sent.sport}")
        dnat = next(
            (h for h, e in zip(self.trace.hops, self.effects, strict=True) if e is Effect.DNAT),
            None,
        )
        node = self.cluster.node(dnat.where.node) if dnat and dnat.where.node else None
        if node is not None:
            keep.append(f"{node.internal_ip}:{sent.sport}")
        masq = [
            h
            for h, e in zip(self.trace.hops, self.effects, strict=True)
            if e in (Effect.MASQUERADE, Effect.SNAT) and h.direction is Direction.REQUEST
        ]
        why = (
            f"{masq[0].where.node} rewrote the source at hop {masq[0].seq + 1} ({masq[0].sentence})"
            if masq
            else "no hop rewrote the source, so the server sees the client's own address"
        )
        return self.make(
            served,
            "source",
            f"What source address does the server in {served.where.netns} see?",
            seen,
            wrong,
            f"{seen}: {why}.",
            keep=keep,
        )

    def reply_source(self) -> Question | None:
        """Which address the reply reaches the client from."""
        if self.trace.verdict.value != "delivered" or not self.reply:
            return None
        last = self.reply[-1]
        if last.kind is not HopKind.DELIVER:
            return None
        right = _address(last.before, "src")
        sent = self.reply[0].before
        wrong = [_address(sent, "src"), *self.endpoints(self.request[0].before)]
        if self.request[0].before.dst != last.before.src:
            wrong.append(_address(self.request[0].before, "dst"))
        wrong += [f"{n.internal_ip}:{last.before.sport}" for n in self.cluster.nodes]
        unnat = [h for h, e in zip(self.trace.hops, self.effects, strict=True) if e is Effect.UNNAT]
        numbers = [str(h.seq + 1) for h in unnat]
        at = f"hop {numbers[0]}" if len(numbers) == 1 else f"hops {', '.join(numbers[:-1])}"
        if len(numbers) > 1:
            at += f" and {numbers[-1]}"
        why = (
            f"conntrack reversed the NAT at {at}, so the reply carries the address the client"
            " sent to, and its socket accepts it"
            if unnat
            else "no NAT was done, so the reply comes from where the request went"
        )
        return self.make(
            last,
            "reply",
            f"The server answers from {_address(sent, 'src')}. From which address does the"
            " reply reach the client?",
            right,
            wrong,
            f"{right}: {why}.",
            keep=[_address(sent, "src")],
        )

    def refusal_source(self) -> Question | None:
        """Which address the answer to a refused request comes from."""
        if not self.reply or self.trace.verdict.value not in ("rejected", "refused"):
            return None
        sent = self.reply[0]
        refused = self.request[-1].after
        right = str(sent.after.src)
        node = self.cluster.node(sent.where.node) if sent.where.node else None
        keep = [str(refused.dst), str(node.internal_ip) if node is not None else ""]
        wrong = [str(refused.src), *(str(n.internal_ip) for n in self.cluster.nodes)]
        if sent.where.node is not None:
            wrong += [
                str(a) for a in _gateway_addresses(self.cluster, sent.where.node, refused.src)
            ]
        icmp = sent.after.proto is Proto.ICMP
        return self.make(
            sent,
            "answer",
            f"{sent.where.netns} refuses the packet to {_address(refused, 'dst')} and answers"
            f" with {'an ICMP error' if icmp else 'a TCP RST'}. Which source address does the"
            " answer carry?",
            right,
            wrong,
            f"{right}: {sent.sentence}.",
            keep=keep,
        )


def _sender_ip(cluster: Cluster, source: str) -> IPv4Address | None:
    """The address of the trace's sender as the cluster lists it (a pod's IP, for a
    localhost request whose packets never carry it)."""
    name, _, container = source.partition(" -c ")
    try:
        return parse_source(cluster, name, container or None).ip
    except RequestError:
        return None


def _gateway_addresses(cluster: Cluster, node: str, client: IPv4Address) -> list[IPv4Address]:
    """The node's bridge or gateway addresses: the pods' side of the node."""
    try:
        netns = network_of(cluster).netns(node)
    except KeyError:
        return []
    return [
        a.ip for i in netns.interfaces for a in i.addrs if a.ip != client and not a.ip.is_loopback
    ]


def _deciding_walk(hop: Hop) -> TableWalk | None:
    """The walk whose rules rewrote or stopped the packet at `hop`."""
    stopped = [w for w in hop.tables if w.verdict in ("DROP", "REJECT") and w.matched]
    if stopped:
        return stopped[-1]
    nat = [w for w in hop.tables if w.table is Table.NAT and w.matched and w.skipped is None]
    return nat[-1] if nat else None


def _hook(hop: Hop) -> str:
    return hop.where.hook.value if hop.where.hook else ""


def _short(line: str) -> str:
    """A rule without its comment, as short as it reads."""
    return re.sub(r' -m comment --comment "[^"]*"', "", line.split(' comment "')[0])
