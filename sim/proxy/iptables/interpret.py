"""iptables mode's rules read as kube-proxy meant them, for the walker (`sim.kernel.interpreter`).

The walker evaluates a hook and hands the result here; this names the rule
that decided and what it did for the Service ("DNAT in KUBE-SEP-…: an endpoint
of default/web"), remembers why KUBE-MARK-MASQ marked the packet so that the
MASQUERADE hop can say it, finds stale rules in a real node's dump, and steers
`-m statistic` rules towards an endpoint the user pinned.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from model.cluster import Cluster
from model.netfilter import DnatTarget, Hook, JumpTarget, Rule, StatisticMatch
from model.packet import Packet
from sim.kernel.interpreter import HookStory
from sim.kernel.netfilter import HookResult
from sim.kernel.rules import NodeRules
from sim.proxy.interpreter import MarkingInterpreter, iptables_rules_matched
from sim.proxy.iptables.explain import (
    article_notes,
    comment_of,
    explain_hook,
    masq_is_external,
    masq_reason,
)

__all__ = ["IptablesInterpreter"]


@dataclass
class IptablesInterpreter(MarkingInterpreter):
    """One trace's reading of kube-proxy's iptables rules (it remembers the MASQ mark's reason)."""

    no_dnat = "no rule of this node's DNATs it (the node's rules lack the Service's)"

    def explain(
        self,
        hook: Hook,
        before: Packet,
        result: HookResult,
        rules: NodeRules,
        *,
        node: str | None,
        out_iface: str | None,
        request: bool,
    ) -> HookStory:
        """The hook's sentence, its decisive rule, and the article's and the dump's notes."""
        matched = iptables_rules_matched(rules, result.tables)
        self.remember_mark(masq_reason(matched), masq_is_external(matched))
        notes = article_notes(
            before, result.packet, matched, rules.ruleset, external_masq=self.masq_external
        )
        finding = None
        if request and before.dst != result.packet.dst and not rules.rendered:
            finding = self._stale_endpoint(node or "", rules, result.packet, matched)
            if finding is not None:
                notes.append(finding)
        sentence, detail = explain_hook(
            hook,
            before,
            result.packet,
            result.verdict,
            result.tables,
            matched,
            out_iface=out_iface,
            masq_because=self.masq_because,
            picked=self.pick is not None,
            ruleset=rules.ruleset,
            node=node,
            rules_source=None if rules.rendered else rules.ruleset.source,
            original=request,
        )
        return HookStory(sentence, detail, tuple(notes), finding)

    def _stale_endpoint(
        self, node: str, rules: NodeRules, after: Packet, matched: tuple[Rule, ...]
    ) -> str | None:
        """A sentence when a real node's rules DNAT to an address no EndpointSlice lists."""
        if (after.dst, after.dport) in _endpoints_of(self.cluster):
            return None
        dnat = next((r for r in matched if isinstance(r.target, DnatTarget)), None)
        if dnat is None or not dnat.chain.startswith("KUBE-"):
            return None
        service = comment_of(dnat)
        of = f" of {service}" if service else ""
        return (
            f"{node}'s rules ({rules.ruleset.source}:{dnat.lineno}) DNAT to {after.dst}:"
            f"{after.dport}{of}, but no EndpointSlice in the cluster dump lists that endpoint:"
            " a stale rule kube-proxy has not removed (or a dump older than the rules)"
        )

    def decide(self, rule: Rule, rules: NodeRules) -> bool | None:
        """For `--pick`: whether a statistic rule leads to the pinned endpoint (None: draw)."""
        random_rule = any(isinstance(m, StatisticMatch) for m in rule.matches)
        if self.choose is not None and random_rule:
            return self.choose(rule)
        if self.pick is None or not random_rule:
            return None
        target = rule.target
        if not isinstance(target, JumpTarget):
            return None
        return _chain_dnats_to(rules, rule, target.chain, self.pick)


_ENDPOINTS: dict[int, tuple[Cluster, frozenset[tuple[IPv4Address, int]]]] = {}


def _endpoints_of(cluster: Cluster) -> frozenset[tuple[IPv4Address, int]]:
    """Every (address, port) some EndpointSlice lists, once per cluster object."""
    hit = _ENDPOINTS.get(id(cluster))
    if hit is not None and hit[0] is cluster:
        return hit[1]
    found = frozenset(
        (endpoint.ip, port.port)
        for slice_ in cluster.endpoint_slices
        for endpoint in slice_.endpoints
        for port in slice_.ports
    )
    if len(_ENDPOINTS) > 8:
        _ENDPOINTS.clear()
    _ENDPOINTS[id(cluster)] = (cluster, found)
    return found


def _chain_dnats_to(
    rules: NodeRules, rule: Rule, chain_name: str, pick: tuple[IPv4Address, int]
) -> bool:
    chain = rules.ruleset.chain(rule.table, chain_name)
    if chain is None:
        return False
    for r in chain.rules:
        t = r.target
        if isinstance(t, DnatTarget) and t.addr == pick[0]:
            port = t.ports.lo if t.ports is not None else None
            if port is None or port == pick[1]:
                return True
    return False
