"""Plain sentences for netfilter hops, naming the rule that caused what happened."""

from __future__ import annotations

from model.netfilter import (
    AddrMatch,
    Chain,
    CommentMatch,
    ConntrackMatch,
    DnatTarget,
    DropTarget,
    Hook,
    JumpTarget,
    MasqueradeTarget,
    RecentMatch,
    RejectTarget,
    Rule,
    Ruleset,
    SnatTarget,
    StatisticMatch,
    Table,
)
from model.packet import Packet
from model.trace import TableWalk
from sim.proxy.sentences import capitalised, conntrack_destination, conntrack_source

MARK_MASQ = "KUBE-MARK-MASQ"


def comment_of(rule: Rule) -> str | None:
    """The rule's `-m comment --comment` text."""
    return next((m.comment for m in rule.matches if isinstance(m, CommentMatch)), None)


def rule_name(rule: Rule) -> str:
    """`KUBE-SEP-… #2`: how a person finds the rule with `iptables -t nat -L --line-numbers`."""
    return f"{rule.chain} #{rule.index}"


_BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})


def rule_detail(rule: Rule, rules_source: str | None = None) -> str:
    """`nat: -A KUBE-SEP-… -j DNAT …`, prefixed `file:line:` for a real node's dump."""
    text = f"{rule.table.value}: {rule.line}"
    if rules_source is not None and rule.lineno:
        return f"{rules_source}:{rule.lineno}: {text}"
    return text


def _stop_reason(stop: Rule, node: str | None) -> str:
    """Why a DROP or REJECT rule fired, from kube-proxy's comment when it has one."""
    comment = comment_of(stop)
    invalid = any(
        isinstance(m, ConntrackMatch) and m.states == ("INVALID",) and not m.states_negate
        for m in stop.matches
    )
    if invalid:
        return (
            f"conntrack calls the packet INVALID ({rule_name(stop)}): it belongs to no "
            "connection this node has seen, typically a reply that skipped the node which "
            "rewrote the request"
        )
    if comment is None:
        if stop.chain.startswith("KUBE-"):
            return f"{rule_name(stop)} (no comment on the rule)"
        return f"{rule_name(stop)}, a rule kube-proxy did not write (no comment on it)"
    service = comment.split(" ")[0]
    on = f" on {node}" if node else ""
    if comment.endswith(" has no local endpoints"):
        policy = "internal" if stop.chain == "KUBE-SERVICES" else "external"
        return (
            f"{policy}TrafficPolicy Local and no local endpoint{on} ({service},"
            f" {rule_name(stop)}): the node drops it rather than send it to another node"
        )
    if comment.endswith(" has no endpoints"):
        return (
            f"{service} has no endpoints ({rule_name(stop)}): no ready pod backs it, so"
            " kube-proxy rejects its traffic"
        )
    if " traffic not accepted by " in comment:
        return f"{service}'s loadBalancerSourceRanges leave this source out ({rule_name(stop)})"
    return f"{comment} ({rule_name(stop)})"


def masq_reason(matched: tuple[Rule, ...]) -> str | None:
    """Why a rule among `matched` jumped to KUBE-MARK-MASQ, in plain words; None if none did."""
    for rule in matched:
        target = rule.target
        if not (isinstance(target, JumpTarget) and target.chain == MARK_MASQ):
            continue
        sources = [m for m in rule.matches if isinstance(m, AddrMatch) and m.field == "src"]
        if rule.chain.startswith("KUBE-SEP-") and sources and not sources[0].negate:
            return (
                f"hairpin: the endpoint {sources[0].net.network_address} reached itself through "
                f"its Service ({rule_name(rule)}), so the reply must come back through the node"
            )
        if rule.chain.startswith(("KUBE-EXT-", "KUBE-FW-", "KUBE-NODEPORTS")):
            return (
                f"the request came in through an external address or NodePort ({rule_name(rule)}): "
                "the source is replaced so the endpoint's reply returns through this node, "
                "where conntrack can undo the DNAT"
            )
        if sources and sources[0].negate:
            return f"the source is outside the cluster CIDR {sources[0].net}: {rule_name(rule)}"
        if rule.chain.startswith("KUBE-SVC-") or rule.chain == "KUBE-SERVICES":
            return (
                f"masqueradeAll is set, so every Service packet is masqueraded ({rule_name(rule)})"
            )
        return f"{rule_name(rule)} sent it to {MARK_MASQ}" + (
            f" ({comment_of(rule)})" if comment_of(rule) else ""
        )
    return None


def _endpoint_choice(matched: tuple[Rule, ...], picked: bool, ruleset: Ruleset) -> str:
    for rule in matched:
        if any(isinstance(m, RecentMatch) and m.command == "rcheck" for m in rule.matches):
            return (
                f"session affinity: {rule_name(rule)} found this client in the recent list "
                "and sent it to the same endpoint again"
            )
    for rule in matched:
        stat = next((m for m in rule.matches if isinstance(m, StatisticMatch)), None)
        if stat is not None:
            how = (
                "the endpoint chosen in advance"
                if picked
                else f"probability {stat.probability:.4f}"
            )
            return f"chosen by {rule_name(rule)} ({how})"
    svc_rules = [r for r in matched if r.chain.startswith(("KUBE-SVC-", "KUBE-SVL-"))]
    if not svc_rules:
        return ""
    last = svc_rules[-1]
    chain = ruleset.chain(last.table, last.chain)
    earlier = chain.rules[: last.index - 1] if chain is not None else ()
    if any(isinstance(m, StatisticMatch) for r in earlier for m in r.matches):
        because = (
            "taken because the endpoint was chosen in advance (every random rule before it said no)"
            if picked
            else "taken because every random rule before it said no"
        )
        return f"by {rule_name(last)}, the last endpoint rule, {because}"
    return f"the only endpoint ({rule_name(last)})"


def explain_hook(
    hook: Hook,
    before: Packet,
    after: Packet,
    verdict: str,
    tables: tuple[TableWalk, ...],
    matched: tuple[Rule, ...],
    *,
    out_iface: str | None,
    masq_because: str | None,
    picked: bool,
    ruleset: Ruleset,
    node: str | None = None,
    rules_source: str | None = None,
    original: bool = False,
) -> tuple[str, str]:
    """One sentence for what `hook` did to the packet, and the decisive rule's line.

    `rules_source` names a real node's iptables-save file: the rule is then
    given as `file:line` so a person finds it in their dump.
    """
    decisive: Rule | None = None
    clauses: list[str] = []
    if verdict in ("REJECT", "DROP"):
        stop = next(
            (r for r in reversed(matched) if isinstance(r.target, RejectTarget | DropTarget)),
            None,
        )
        if stop is None:
            walk = next((t for t in tables if t.verdict == verdict), None)
            table = walk.table.value if walk is not None else "filter"
            return (
                f"{verdict}: the {table} table's {hook.value} policy is {verdict} and no rule"
                " accepted the packet",
                f"{table}: :{hook.value} {verdict}",
            )
        extra = ""
        if isinstance(stop.target, RejectTarget):
            extra = f"; the kernel answers with {stop.target.reject_with}"
        return (
            f"{verdict} in {stop.chain}: {_stop_reason(stop, node)}{extra}",
            rule_detail(stop, rules_source),
        )
    if (after.dst, after.dport) != (before.dst, before.dport):
        dnat = next((r for r in matched if isinstance(r.target, DnatTarget)), None)
        if dnat is not None:
            decisive = dnat
            service = comment_of(dnat)
            choice = _endpoint_choice(matched, picked, ruleset)
            clauses.append(
                f"DNAT in {rule_name(dnat)}: destination {before.dst}:{before.dport} → "
                f"{after.dst}:{after.dport}"
                + (f", an endpoint of {service}" if service else "")
                + (f", {choice}" if choice else "")
            )
        else:
            clauses.append(conntrack_destination(before, after, original=original))
    # The mark after the DNAT: the rewrite is what the hop is about, and the
    # mark only matters later, at POSTROUTING.
    marked = after.mark & 0x4000 and not before.mark & 0x4000
    if marked:
        clauses.append(
            "KUBE-MARK-MASQ sets mark 0x4000, to masquerade the packet on its way out"
            + (f": {masq_because}" if masq_because else "")
        )
    if (after.src, after.sport) != (before.src, before.sport):
        snat = next(
            (r for r in matched if isinstance(r.target, MasqueradeTarget | SnatTarget)), None
        )
        if snat is not None:
            decisive = decisive or snat
            target = snat.target
            assert isinstance(target, MasqueradeTarget | SnatTarget)
            kind = "MASQUERADE" if isinstance(target, MasqueradeTarget) else "SNAT"
            where = f", the address of {out_iface}" if kind == "MASQUERADE" and out_iface else ""
            # Why the source port changed too: a flag of the rule, or a clash.
            flag = ""
            if after.sport != before.sport:
                if target.random_fully or target.random:
                    flag = "--random-fully" if target.random_fully else "--random"
                    where += " with a random port" if where else ", a random source port"
                elif target.ports is None:
                    where += (
                        " and another port, the old one being taken"
                        if where
                        else ", another source port, the old one being taken"
                    )
            because = (
                f", because KUBE-MARK-MASQ set 0x4000 ({masq_because})" if masq_because else ""
            )
            if flag:
                where += f" ({flag})"
            if not snat.chain.startswith("KUBE-"):
                # Not kube-proxy's: the CNI's or Docker's masquerade rule.
                note = comment_of(snat)
                if note and flag:
                    where = where.removesuffix(f" ({flag})")
                    because = f" ({flag}; {note})"
                elif note:
                    because = f" ({note})"
                else:
                    because = f", by a rule in {snat.chain}, not kube-proxy's"
            clauses.append(
                f"{kind} in {rule_name(snat)}: source {before.src}:{before.sport} → "
                f"{after.src}:{after.sport}{where}{because}"
            )
        else:
            clauses.append(conntrack_source(before, after, original=original))
    if not clauses:
        skipped = next((t.skipped for t in tables if t.skipped), None)
        # An ACCEPT in a user chain is worth a sentence (kube-proxy's, or on
        # a real node the CNI's under a FORWARD policy of DROP).
        accept = next(
            (
                r
                for r in reversed(matched)
                if r.target is not None
                and r.target.kind == "ACCEPT"
                and r.chain not in _BUILTIN_CHAINS
            ),
            None,
        )
        if accept is not None:
            decisive = accept
            note = comment_of(accept)
            clauses.append(
                f"{rule_name(accept)} accepts the packet" + (f" ({note})" if note else "")
            )
        elif not tables:
            clauses.append(f"no table has rules at {hook.value}; the packet passes")
        else:
            clauses.append(f"no {hook.value} rule changes or stops the packet")
        if skipped:
            clauses.append(skipped)
    detail = rule_detail(decisive, rules_source) if decisive is not None else ""
    sentence = "; ".join(clauses)
    return capitalised(sentence), detail


_EXTERNAL_CHAINS = ("KUBE-EXT-", "KUBE-FW-", "KUBE-NODEPORTS")
_NO_CHAIN = Chain.model_construct(name="", policy=None, rules=())
"""A chain with no rules, made without validating (the netfilter models build their validators
when first used, and a trace on the first screen need not)."""


def masq_is_external(matched: tuple[Rule, ...]) -> bool:
    """KUBE-MARK-MASQ was reached from a NodePort, external IP or load balancer chain."""
    return any(
        isinstance(r.target, JumpTarget)
        and r.target.chain == MARK_MASQ
        and r.chain.startswith(_EXTERNAL_CHAINS)
        for r in matched
    )


def article_notes(
    before: Packet,
    after: Packet,
    matched: tuple[Rule, ...],
    ruleset: Ruleset,
    *,
    external_masq: bool,
) -> list[str]:
    """Where the article this project started from describes this hop otherwise (Linux wins)."""
    notes: list[str] = []
    dnat = any(isinstance(r.target, DnatTarget) for r in matched)
    if dnat and any(r.chain.startswith(_EXTERNAL_CHAINS) for r in matched):
        notes.append(
            "The article sends a NodePort request to the ClusterIP first; kube-proxy DNATs "
            "NodeIP:NodePort straight to an endpoint, so the ClusterIP never appears in the packet"
        )
    balancing = {r.chain for r in matched if r.chain.startswith(("KUBE-SVC-", "KUBE-SVL-"))}
    random_choice = any(
        isinstance(m, StatisticMatch)
        for name in balancing
        for r in (ruleset.chain(Table.NAT, name) or _NO_CHAIN).rules
        for m in r.matches
    )
    if dnat and random_choice:
        notes.append(
            "The article speaks of round-robin; iptables mode picks at random "
            "(-m statistic --mode random)"
        )
    masq = any(isinstance(r.target, MasqueradeTarget) for r in matched)
    if masq and external_masq and after.src != before.src:
        notes.append(
            "The article says the source becomes the Service's ClusterIP; MASQUERADE takes the "
            f"address of the interface the packet leaves by ({after.src}), so the pod sees "
            "the node, not the ClusterIP"
        )
    return notes
