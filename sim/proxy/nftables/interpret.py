"""nftables mode's rules read as kube-proxy meant them, for the walker (`sim.kernel.interpreter`).

The walker evaluates a hook and hands the result here: kube-proxy's nft
table in words (`explain`), the iptables rules kubelet and the CNI keep on
the same node through iptables mode's explainer, where nftables mode does
otherwise than iptables mode (the hop's notes), and which `numgen` branch
leads to an endpoint the user pinned (`numgen`, which the walker asks for
when an interpreter has it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from model.netfilter import Hook
from model.nftables import NftNat, NftRule, NftTable, NftVmap
from model.packet import CtState, Packet
from model.trace import TableWalk
from sim.kernel.interpreter import HookStory
from sim.kernel.netfilter import HookResult
from sim.kernel.rules import NodeRules, nft_of
from sim.proxy.interpreter import NO_OWNER, MarkingInterpreter, iptables_rules_matched
from sim.proxy.iptables.explain import explain_hook as iptables_explain
from sim.proxy.nftables.explain import (
    Matched,
    differences,
    explain_hook,
    masq_is_external,
    masq_reason,
    service_cidr_guess,
)

__all__ = ["NftablesInterpreter"]


@dataclass
class NftablesInterpreter(MarkingInterpreter):
    """One trace's reading of kube-proxy's nft table (it remembers why the packet was marked)."""

    no_dnat = "no element of this node's kube-proxy table (@service-ips) DNATs it"

    said: set[str] = field(default_factory=set, init=False)
    """Notes already on an earlier hop of this direction (a packet looped through lo meets
    the same rules twice)."""

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
        """The hook's sentence, its decisive rule, and where nftables mode differs."""
        matched = _matched(rules, result.tables)
        self.remember_mark(masq_reason(matched), masq_is_external(matched))
        ipt_walks = tuple(t for t in result.tables if t.nft is None)
        decided_by_ipt = result.verdict != "ACCEPT" and any(
            t.verdict == result.verdict for t in ipt_walks
        )
        ipt_matched = iptables_rules_matched(rules, ipt_walks)
        ipt_sentence = None
        if ipt_matched or decided_by_ipt:
            ipt_sentence = iptables_explain(
                hook,
                before,
                result.packet,
                result.verdict if decided_by_ipt else "ACCEPT",
                ipt_walks,
                ipt_matched,
                out_iface=out_iface,
                masq_because=None,
                picked=self.pick is not None,
                ruleset=rules.ruleset,
                node=node,
                rules_source=None if rules.rendered else rules.ruleset.source,
                original=request,
            )
        nft = nft_of(rules)
        source = None if rules.rendered or nft is None else nft.source
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
            node=node,
            rules_source=source,
            iptables_sentence=ipt_sentence,
            original=request,
        )
        found = self.cluster.node(node) if node else None
        local_addrs = set()
        if found is not None:
            local_addrs.add(found.internal_ip)
            if found.pod_cidr is not None:
                local_addrs.add(found.pod_cidr.network_address + 1)
        notes = differences(
            self.cluster,
            hook,
            before,
            result.packet,
            result.verdict,
            matched,
            node_ip=found.internal_ip if found is not None else None,
            local=before.dst in local_addrs or before.dst in IPv4Network("127.0.0.0/8"),
            dnat=before.dst != result.packet.dst and request,
            external_masq=self.masq_external,
        )
        if hook is Hook.FORWARD and result.ctstate is CtState.INVALID:
            notes.append(
                "conntrack calls this packet INVALID; iptables mode's KUBE-FORWARD drops such"
                " packets, nftables mode has no such rule (kube-proxy 1.30 dropped it), so it"
                " is forwarded, un-NATed"
            )
        fresh = tuple(note for note in notes if note not in self.said)
        self.said.update(fresh)
        return HookStory(sentence, detail, fresh)

    def numgen(self, rule: NftRule, rules: NodeRules) -> int | None:
        """For `--pick`: the `numgen` branch whose endpoint chain DNATs to the pinned endpoint."""
        if self.pick is None:
            return None
        nft = nft_of(rules)
        if nft is None:
            return None
        table = next((t for t in nft.tables if rule.chain in t.chains), None)
        vmap = next((e for e in rule.exprs if isinstance(e, NftVmap) and e.numgen), None)
        if table is None or vmap is None:
            return None
        for element in vmap.elements:
            verdict, _, chain = (element.value or "").partition(" ")
            if verdict in ("goto", "jump") and _dnats_to(table, chain, self.pick):
                return int(element.key[0])
        return None

    def unclaimed(self, pkt: Packet) -> str:
        """Why nothing in the cluster takes `pkt`'s destination address."""
        found = self.service_unclaimed(pkt)
        if found is not None:
            return found
        guess = service_cidr_guess(self.cluster)
        if not self.cluster.service_cidrs and guess is not None and pkt.dst in guess:
            return (
                f"{pkt.dst} lies in {guess}, the range kubehop infers from the ClusterIPs, but no"
                " Service has it (kube-proxy 1.31 drops such packets only when it knows the"
                " Service CIDRs from ServiceCIDR objects, which this dump lacks)"
            )
        return NO_OWNER

    def reply_begins(self) -> None:
        """The reply's packets carry no mark of their own, and meet the rules anew."""
        super().reply_begins()
        self.said.clear()


def _matched(rules: NodeRules, walks: tuple[TableWalk, ...]) -> tuple[Matched, ...]:
    nft = nft_of(rules)
    if nft is None:
        return ()
    tables = {t.label: t for t in nft.tables}
    found: list[Matched] = []
    for walk in walks:
        table = tables.get(walk.nft or "")
        if table is None:
            continue
        for ref in walk.matched:
            chain = table.chains.get(ref.chain)
            if chain is not None and 1 <= ref.index <= len(chain.rules):
                found.append(Matched(table, chain.rules[ref.index - 1]))
    return tuple(found)


def _dnats_to(table: NftTable, chain_name: str, pick: tuple[IPv4Address, int]) -> bool:
    chain = table.chains.get(chain_name)
    if chain is None:
        return False
    for rule in chain.rules:
        for expr in rule.exprs:
            if isinstance(expr, NftNat) and expr.action == "dnat" and expr.addr == pick[0]:
                return expr.port is None or expr.port == pick[1]
    return False
