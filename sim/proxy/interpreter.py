"""What every kube-proxy mode's interpreter (`sim.kernel.interpreter.Interpreter`) keeps and
does alike: the trace's cluster and pinned endpoint, the fork view's override of random
rules, why no Service takes an address, and (iptables and nftables mode) why the
packet was marked for masquerade.

Each mode's interpreter (`sim.proxy.{iptables,nftables,ipvs}.interpret`) adds what is
its own: how it puts a hook in words and how it steers towards the pinned endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import ClassVar

from model.cluster import Cluster
from model.netfilter import Rule, RuleRef, StatisticMatch
from model.packet import Packet
from model.trace import TableWalk
from sim.kernel.rules import NodeRules
from sim.proxy.services import services_with_ip

__all__ = ["NO_OWNER", "MarkingInterpreter", "ProxyInterpreter", "iptables_rules_matched"]

NO_OWNER = "no pod, node or Service kubehop knows has that address"
"""Why nothing takes an address that no Service has either."""


@dataclass
class ProxyInterpreter:
    """One trace's reading of kube-proxy's rules, in any mode."""

    cluster: Cluster
    """The cluster the rules were written for."""
    pick: tuple[IPv4Address, int] | None = None
    """The endpoint `--pick` pinned."""
    choose: Callable[[Rule], bool | None] | None = None
    """Overrides every `-m statistic` draw (the fork view walks each branch with it)."""

    no_dnat: ClassVar[str]
    """The clause for a Service port this mode's rules on the node do not take."""

    def decide(self, rule: Rule, rules: NodeRules) -> bool | None:
        """An iptables `-m statistic` rule: `choose`'s answer (None: draw as the kernel)."""
        if self.choose is not None and any(isinstance(m, StatisticMatch) for m in rule.matches):
            return self.choose(rule)
        return None

    def unclaimed(self, pkt: Packet) -> str:
        """Why nothing in the cluster takes `pkt`'s destination address."""
        return self.service_unclaimed(pkt) or NO_OWNER

    def service_unclaimed(self, pkt: Packet) -> str | None:
        """Why the Service with `pkt`'s destination address does not take it; None: none has it."""
        for service in services_with_ip(self.cluster, pkt.dst):
            what = "ClusterIP" if service.cluster_ip == pkt.dst else "external address"
            if any(p.port == pkt.dport and p.protocol is pkt.proto for p in service.ports):
                return (
                    f"{pkt.dst}:{pkt.dport} is the {what} of {service.key}, but {self.no_dnat},"
                    " and no interface holds a Service address"
                )
            ports = ", ".join(f"{p.port}/{p.protocol.value}" for p in service.ports)
            return (
                f"{pkt.dst} is the {what} of {service.key}, which has no port"
                f" {pkt.dport}/{pkt.proto.value} (its ports: {ports or 'none'}), so no kube-proxy"
                " rule DNATs the packet, and no interface holds a Service address"
            )
        return None


@dataclass
class MarkingInterpreter(ProxyInterpreter):
    """A mode whose rules mark a packet for masquerade in one hook and masquerade it in a
    later one (iptables, nftables): it remembers why, for the later hop's sentence."""

    masq_because: str | None = field(default=None, init=False)
    """Why kube-proxy's masquerade mark was set on this packet, for the masquerade hop."""
    masq_external: bool = field(default=False, init=False)
    """The mark came from an external chain (NodePort, external or LB IP)."""

    def remember_mark(self, why: str | None, external: bool) -> None:
        """The hook's rules set the mark because of `why` (None: they did not set it)."""
        if why is not None:
            self.masq_because = why
            self.masq_external = external

    def reply_begins(self) -> None:
        """The reply's packets carry no masquerade mark of their own."""
        self.masq_because = None
        self.masq_external = False


def iptables_rules_matched(rules: NodeRules, walks: tuple[TableWalk, ...]) -> tuple[Rule, ...]:
    """The iptables rules that matched in `walks`, in order (a reference to none is skipped)."""
    found: list[Rule] = []
    for walk in walks:
        for ref in walk.matched:
            rule = _rule_at(rules, ref)
            if rule is not None:
                found.append(rule)
    return tuple(found)


def _rule_at(rules: NodeRules, ref: RuleRef) -> Rule | None:
    chain = rules.ruleset.chain(ref.table, ref.chain)
    if chain is None or not 1 <= ref.index <= len(chain.rules):
        return None
    return chain.rules[ref.index - 1]
