"""What a node's real rules have that kube-proxy's should not, and the other way round.

`kubehop rules --node node-a --diff node-a.rules` compares the node's
`iptables-save` with the rules kubehop renders for it from the cluster
dump. Only kube-proxy's chains (`KUBE-*`) and the jumps into them are
compared; the CNI's, Docker's and other chains are listed, not diffed.
Counters and rule order within a chain's identical lines do not matter; a
KUBE-SEP chain on the node whose endpoint no EndpointSlice lists is a stale
endpoint, one missing from the node is a missing endpoint.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from model.netfilter import DnatTarget, JumpTarget, Rule, Table
from sim.kernel.rules import NodeRules
from sim.proxy.iptables.explain import comment_of

__all__ = ["RulesDiff", "diff_rules", "diff_text"]


@dataclass(frozen=True)
class RulesDiff:
    """The differences in kube-proxy's rules between rendered and real."""

    node: str
    """The node."""
    rendered: str
    """Where the expected rules came from."""
    real: str
    """The node's dump."""
    missing: tuple[Rule, ...]
    """Rules kube-proxy should have written that the node lacks."""
    extra: tuple[Rule, ...]
    """kube-proxy rules the node has that the cluster does not explain."""
    missing_endpoints: tuple[str, ...]
    """`ip:port (service)` DNAT endpoints only the rendered rules have."""
    stale_endpoints: tuple[str, ...]
    """`ip:port (service)` DNAT endpoints only the node has."""
    others: tuple[tuple[Table, str, int], ...]
    """Chains not kube-proxy's on the node: (table, chain, rules)."""

    @property
    def same(self) -> bool:
        """The node's kube-proxy rules are what kube-proxy should have written."""
        return not self.missing and not self.extra


def _kube(rule: Rule) -> bool:
    if rule.chain.startswith("KUBE-"):
        return True
    target = rule.target
    return isinstance(target, JumpTarget) and target.chain.startswith("KUBE-")


def _rules(rules: NodeRules) -> list[Rule]:
    return [
        rule
        for chains in rules.ruleset.tables.values()
        for chain in chains.values()
        for rule in chain.rules
        if _kube(rule)
    ]


def _key(rule: Rule) -> tuple[str, str]:
    # Tokens normalise spacing (iptables-nft and -legacy print the same rule alike
    # but for whitespace in a few places).
    return rule.table.value, " ".join(rule.line.split())


def _endpoints(rules: list[Rule]) -> dict[str, str]:
    found: dict[str, str] = {}
    for rule in rules:
        target = rule.target
        if isinstance(target, DnatTarget) and rule.chain.startswith("KUBE-SEP-"):
            port = f":{target.ports.lo}" if target.ports is not None else ""
            found[f"{target.addr}{port}"] = comment_of(rule) or rule.chain
    return found


def diff_rules(rendered: NodeRules, real: NodeRules) -> RulesDiff:
    """Compare `real` (a node's dump) with `rendered` (kubehop's rules for that node)."""
    want = _rules(rendered)
    have = _rules(real)
    want_count = Counter(_key(r) for r in want)
    have_count = Counter(_key(r) for r in have)
    missing: list[Rule] = []
    extra: list[Rule] = []
    left = want_count - have_count
    for rule in want:
        if left[_key(rule)] > 0:
            left[_key(rule)] -= 1
            missing.append(rule)
    right = have_count - want_count
    for rule in have:
        if right[_key(rule)] > 0:
            right[_key(rule)] -= 1
            extra.append(rule)
    want_eps, have_eps = _endpoints(want), _endpoints(have)
    others = tuple(
        (table, name, len(chain.rules))
        for table, chains in real.ruleset.tables.items()
        for name, chain in chains.items()
        if not name.startswith("KUBE-") and chain.policy is None
    )
    return RulesDiff(
        node=real.node,
        rendered=f"kube-proxy's rules for {rendered.node}, rendered from the cluster",
        real=real.ruleset.source,
        missing=tuple(missing),
        extra=tuple(extra),
        missing_endpoints=tuple(f"{e} ({want_eps[e]})" for e in want_eps if e not in have_eps),
        stale_endpoints=tuple(f"{e} ({have_eps[e]})" for e in have_eps if e not in want_eps),
        others=others,
    )


def diff_text(diff: RulesDiff) -> str:
    """The differences as a unified-diff-like listing, then a summary in words."""
    lines = [f"--- {diff.rendered}", f"+++ {diff.real}"]
    chains: dict[tuple[str, str], list[str]] = {}
    for rule in diff.missing:
        chains.setdefault((rule.table.value, rule.chain), []).append(f"-{rule.line}")
    for rule in diff.extra:
        chains.setdefault((rule.table.value, rule.chain), []).append(
            f"+{rule.line}" + (f"   ({diff.real}:{rule.lineno})" if rule.lineno else "")
        )
    for (table, chain), changed in chains.items():
        lines.append(f"@@ *{table} {chain} @@")
        lines += changed
    lines.append("")
    if diff.same:
        lines.append(
            f"{diff.node}: kube-proxy's rules are what kube-proxy should have written for this"
            " cluster"
        )
    else:
        lines.append(
            f"{diff.node}: {len(diff.missing)} kube-proxy rule(s) missing, {len(diff.extra)}"
            " the cluster does not explain"
        )
    for endpoint in diff.missing_endpoints:
        lines.append(
            f"missing endpoint: {endpoint} (in the EndpointSlices, not in the node's rules)"
        )
    for endpoint in diff.stale_endpoints:
        lines.append(
            f"stale endpoint: {endpoint} (in the node's rules, in no EndpointSlice: kube-proxy"
            " has not synced, or the dump is older than the rules)"
        )
    if diff.others:
        shown = ", ".join(f"{t.value}/{chain} ({count})" for t, chain, count in diff.others[:12])
        more = f" and {len(diff.others) - 12} more" if len(diff.others) > 12 else ""
        lines.append(f"not kube-proxy's, not compared: {shown}{more}")
    return "\n".join(lines) + "\n"
