"""IPVS mode's hops in words, for the walker (`sim.kernel.interpreter`).

The iptables rules IPVS mode still writes (KUBE-SERVICES' set matches,
KUBE-MARK-MASQ, KUBE-POSTROUTING, KUBE-IPVS-FILTER) are read as iptables
mode reads its own (`sim.proxy.iptables.interpret`); what IPVS itself did at
the hook (which virtual server, which scheduler, why this real server, the
rewrite) is said here, with where IPVS mode differs from iptables mode in
what a person can see on the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from model.ipvs import SCHEDULERS, RealServer, VirtualServer
from model.netfilter import Hook
from model.packet import Packet
from sim.kernel.interpreter import HookStory
from sim.kernel.ipvs import IpvsVerdict
from sim.kernel.netfilter import HookResult
from sim.kernel.rules import NodeRules
from sim.proxy.endpoints import external_policy_local
from sim.proxy.interpreter import ProxyInterpreter
from sim.proxy.iptables.interpret import IptablesInterpreter
from sim.proxy.sentences import capitalised

__all__ = ["IpvsInterpreter", "ipvs_detail"]

ROUND_ROBIN_NOTE = (
    "The article speaks of round-robin: in IPVS mode with the rr scheduler that is literally"
    " what happens, each new connection to this virtual server taking the next real server in"
    " the kernel's list (iptables mode picks at random)"
)
NO_CHAINS_NOTE = (
    "IPVS mode writes no KUBE-SVC-/KUBE-SEP- chains and no DNAT rule: the choice is IPVS's,"
    " seen with `ipvsadm -Ln` (its ActiveConn/InActConn counters) and `ipvsadm -Lnc`, not in"
    " iptables' counters"
)
ORDER_NOTE = (
    "kubehop assumes the kernel's list of real servers in ipvsadm's sorted order: kube-proxy"
    " adds them in a Go map's random order and the kernel puts each new one first, so which"
    " endpoint a real node's rr starts with may differ (the cycle is the same)"
)
LOCAL_ELSEWHERE_NOTE = (
    "externalTrafficPolicy Local, but no endpoint on this node: kube-proxy gives the virtual"
    " server every endpoint instead (kubernetes#97081, so the node's pods can still reach it)"
    " and does not masquerade, so the endpoint answers the client directly from its own"
    " address and the client discards the reply; iptables mode drops the packet here"
)
FILTER_NOTE = (
    "In IPVS mode every Service address sits on kube-ipvs0 and so is local to the node: without"
    " KUBE-IPVS-FILTER the node's own sockets would answer on any other port of it"
    " (kubernetes#72236); kube-proxy rejects new connections to addresses in KUBE-IPVS-IPS that"
    " no virtual server port claims (iptables mode: no rule catches them, and they are routed on)"
)


def ipvs_detail(vs: VirtualServer, rs: RealServer | None) -> str:
    """The virtual server (and real server) as `ipvsadm-save -n` prints them."""
    text = f"ipvs: -A {vs.save_name} -s {vs.scheduler}"
    if vs.persistent is not None:
        text += f" -p {vs.persistent}"
    if rs is not None:
        flag = {"masq": "-m", "gate": "-g", "ipip": "-i"}.get(rs.forward, "-m")
        text += f"; -a {vs.save_name} -r {rs.addr} {flag} -w {rs.weight}"
    return text


def _reached(vs: VirtualServer) -> str:
    if vs.owner is None:
        return ""
    how = {"ClusterIP": "its ClusterIP", "NodePort": "its NodePort on this node"}.get(
        vs.how, f"its {vs.how}"
    )
    return f" ({vs.owner}, {how})"


@dataclass
class IpvsInterpreter(ProxyInterpreter):
    """One trace's reading of an IPVS node's rules and IPVS's decisions."""

    no_dnat = "no virtual server of this node's takes it (the node's rules lack the Service's)"

    inner: IptablesInterpreter = field(init=False)
    """Reads the iptables rules IPVS mode still writes."""

    def __post_init__(self) -> None:
        self.inner = IptablesInterpreter(self.cluster, self.pick, self.choose)

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
        """The hook's sentence: the iptables rules' part, then IPVS's."""
        verdict = result.ipvs
        if verdict is None:
            story = self.inner.explain(
                hook, before, result, rules, node=node, out_iface=out_iface, request=request
            )
            notes = list(story.notes)
            if "KUBE-IPVS-FILTER" in story.sentence and result.verdict == "REJECT":
                notes.append(FILTER_NOTE)
            if "KUBE-LOOP-BACK" in story.detail:
                notes.append(
                    "hairpin: the endpoint reached itself through its Service, so KUBE-LOOP-BACK"
                    " (endpoint, port, source: the same pod) masquerades it and the reply comes"
                    " back through the node, where IPVS puts the Service address back"
                )
            return replace(story, notes=tuple(notes))
        undone = _undo(result.packet, verdict)
        tables = replace(
            result, packet=undone, verdict="ACCEPT" if verdict.kind == "no-dest" else result.verdict
        )
        story = self.inner.explain(
            hook, before, tables, rules, node=node, out_iface=out_iface, request=request
        )
        clauses: list[str] = []
        if story.detail:
            clauses.append(story.sentence.rstrip("."))
        clauses.append(self._ipvs_clause(verdict, hook))
        notes = list(story.notes)
        detail = ipvs_detail(verdict.service, verdict.server)
        if verdict.kind == "new":
            if self._local_policy_elsewhere(verdict, node):
                notes.append(LOCAL_ELSEWHERE_NOTE)
            if verdict.service.scheduler == "rr" and not verdict.persistent:
                notes.append(ROUND_ROBIN_NOTE)
            notes.append(NO_CHAINS_NOTE)
            if rules.rendered and len(verdict.service.real_servers) > 1:
                notes.append(ORDER_NOTE)
        if verdict.kind == "no-dest":
            notes.append(
                "iptables mode rejects this in KUBE-SERVICES with a REJECT rule naming the Service;"
                " IPVS mode writes none, and IPVS itself answers (ip_vs_leave)"
            )
        sentence = capitalised("; ".join(clauses))
        return HookStory(sentence, detail, tuple(notes), story.finding)

    def _ipvs_clause(self, verdict: IpvsVerdict, hook: Hook) -> str:
        vs, rs = verdict.service, verdict.server
        where = f"IPVS virtual server {vs.label}{_reached(vs)}"
        if verdict.kind == "no-dest":
            return (
                f"REJECT by IPVS: {where} has no real server (its Service has no ready endpoint),"
                " so ip_vs_leave answers with ICMP port unreachable and drops the packet"
            )
        if verdict.kind == "reply":
            return (
                f"IPVS puts the virtual address back on the reply: source"
                f" {verdict.before.src}:{verdict.before.sport} → {verdict.packet.src}:"
                f"{verdict.packet.sport}, from its connection entry for {vs.label} (ip_vs_out);"
                " conntrack does not do it, its entry has no DNAT to undo"
            )
        assert rs is not None
        rewrite = (
            f"NAT (masq) rewrites the destination {verdict.before.dst}:{verdict.before.dport} →"
            f" {rs.addr}"
        )
        if verdict.kind == "existing":
            how = f"{where} already has this connection, so {rewrite}"
        else:
            name = SCHEDULERS.get(vs.scheduler, vs.scheduler)
            if verdict.pinned:
                why = "the endpoint chosen in advance (--pick), not the scheduler"
            else:
                why = verdict.why
            how = (
                f"{where} takes the new connection and picks real server {rs.addr} with"
                f" {vs.scheduler} ({name}): {why}; {rewrite}"
            )
        if verdict.local:
            return how + ": the real server is the node's own address, so the packet goes on up"
        at = "LOCAL_IN" if hook is Hook.INPUT else "LOCAL_OUT"
        return (
            how + f", and IPVS sends the packet on itself (taken at {at}, it skips the rest of"
            f" {hook.value}); with net.ipv4.vs.conntrack=1 conntrack's entry now expects the"
            f" reply from {rs.addr}"
        )

    def _local_policy_elsewhere(self, verdict: IpvsVerdict, node: str | None) -> bool:
        """An external address of an eTP Local Service, and the real server not on `node`."""
        vs, rs = verdict.service, verdict.server
        if vs.how in ("", "ClusterIP") or vs.owner is None or rs is None or node is None:
            return False
        key = vs.owner.split(":")[0]
        service = next((s for s in self.cluster.services if s.key == key), None)
        if service is None or not external_policy_local(service):
            return False
        return all(pod.ip != rs.ip for pod in self.cluster.pods_on(node))

    def ipvs_pick(self, vs: VirtualServer, rules: NodeRules) -> RealServer | None:
        """`--pick`: the pinned endpoint, when it is one of `vs`'s real servers."""
        if self.pick is None:
            return None
        return next(
            (rs for rs in vs.real_servers if (rs.ip, rs.port) == self.pick and rs.weight > 0),
            None,
        )

    def reply_begins(self) -> None:
        """The reply's packets carry no KUBE-MARK-MASQ mark of their own."""
        self.inner.reply_begins()


def _undo(pkt: Packet, verdict: IpvsVerdict) -> Packet:
    """`pkt` without IPVS's rewrite: what the iptables tables alone made of it."""
    if verdict.kind == "reply":
        return pkt.model_copy(update={"src": verdict.before.src, "sport": verdict.before.sport})
    return pkt.model_copy(update={"dst": verdict.before.dst, "dport": verdict.before.dport})
