"""What a node's real rules have that kube-proxy's should not, and the other way round.

`kubehop rules --node node-a --diff node-a.rules` compares the node's
`iptables-save` with the rules kubehop renders for it from the cluster
dump. Only kube-proxy's chains (`KUBE-*`) and the jumps into them are
compared; the CNI's, Docker's and other chains are listed, not diffed, and
the empty canary chains kubelet and kube-proxy keep (`KUBE-KUBELET-CANARY`,
`KUBE-PROXY-CANARY`, `KUBE-IPTABLES-HINT`) are nobody's drift.

Rules are compared by what they mean, not how they are spelled: as parsed,
so `--or-mark 0x4000` is `--set-xmark 0x4000/0x4000`, a comment is the same
quoted or not, default options (`--reject-with icmp-port-unreachable`,
`recent`'s `--mask 255.255.255.255 --rsource`) count as given, `-d 10.96.0.1`
is `-d 10.96.0.1/32`, a probability is compared as the kernel stores it
(0.3333333333 is 0.33333333349), and options may come in any order. Counters
and the order of a chain's identical rules do not matter either. kube-proxy's
own restore input (no built-in chains: `iptables-restore --noflush`) is
compared on the chains it declares.

What differs without being drift has groups of its own: rules that differ
only because the node runs another kube-proxy (or kubelet) version than the
1.31 kubehop renders, named with both versions; and `--random-fully`, which
kube-proxy leaves out where the node's iptables cannot do it. A KUBE-SEP chain
on the node whose endpoint no EndpointSlice lists is a stale endpoint, one
missing from the node is a missing endpoint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from model.netfilter import (
    AddrtypeMatch,
    ConntrackMatch,
    DnatTarget,
    DropTarget,
    JumpTarget,
    MarkMatch,
    MasqueradeTarget,
    Match,
    MultiportMatch,
    NfacctMatch,
    Rule,
    SnatTarget,
    StatisticMatch,
    Table,
    Target,
)
from sim.kernel.rules import NodeRules
from sim.proxy.iptables import names as n
from sim.proxy.iptables.explain import comment_of
from sim.readers.iptables_save import BUILTIN_CHAINS
from sim.readers.node_dump import NodeDump

__all__ = ["RENDERED_VERSION", "VERSION_CHANGES", "RulesDiff", "diff_rules", "diff_text"]

RENDERED_VERSION = (1, 31)
"""The Kubernetes release whose kube-proxy and kubelet kubehop renders."""

_CANARIES = frozenset({n.KUBE_KUBELET_CANARY, n.KUBE_PROXY_CANARY, n.KUBE_IPTABLES_HINT})


# --- what a rule means -------------------------------------------------------------


def _match_key(m: Match) -> Hashable:
    if isinstance(m, StatisticMatch) and m.mode == "random":
        # libxt_statistic keeps lround(p * 2^31): the digits printed are not the value.
        return ("statistic", math.floor(m.probability * 0x80000000 + 0.5), m.negate)
    if isinstance(m, ConntrackMatch):
        return m.model_copy(
            update={
                "states": None if m.states is None else tuple(sorted(m.states)),
                "statuses": None if m.statuses is None else tuple(sorted(m.statuses)),
                "addrs": tuple(sorted(m.addrs, key=repr)),
                "ports": tuple(sorted(m.ports, key=repr)),
            }
        )
    if isinstance(m, AddrtypeMatch):
        return m.model_copy(
            update={
                "src_types": tuple(sorted(m.src_types)),
                "dst_types": tuple(sorted(m.dst_types)),
            }
        )
    if isinstance(m, MultiportMatch):
        return m.model_copy(update={"ranges": tuple(sorted(m.ranges, key=lambda r: (r.lo, r.hi)))})
    return m


def _target_key(target: Target | None) -> Hashable:
    # --random-fully is the node's iptables' to support; it is reported apart.
    if isinstance(target, MasqueradeTarget | SnatTarget) and target.random_fully:
        return target.model_copy(update={"random_fully": False})
    return target


def _key(rule: Rule) -> Hashable:
    """What `rule` does, however it is spelled: matches are ANDed, so their order is not kept."""
    return (
        rule.table,
        rule.chain,
        frozenset(_match_key(m) for m in rule.matches),
        _target_key(rule.target),
    )


def _random_fully(rule: Rule) -> bool:
    target = rule.target
    return isinstance(target, MasqueradeTarget | SnatTarget) and target.random_fully


# --- what changed between kube-proxy versions ------------------------------------------


def _nfacct(rule: Rule, name: str) -> bool:
    return any(isinstance(m, NfacctMatch) and m.name == name for m in rule.matches)


def _plain_invalid_drop(rule: Rule) -> bool:
    return (
        rule.chain == n.KUBE_FORWARD
        and isinstance(rule.target, DropTarget)
        and any(isinstance(m, ConntrackMatch) and m.states == ("INVALID",) for m in rule.matches)
        and not any(isinstance(m, NfacctMatch) for m in rule.matches)
    )


def _mark_drop(rule: Rule) -> bool:
    if rule.chain == "KUBE-MARK-DROP":
        return True
    target = rule.target
    if isinstance(target, JumpTarget) and target.chain == "KUBE-MARK-DROP":
        return True
    return (
        rule.chain == n.KUBE_FIREWALL
        and isinstance(target, DropTarget)
        and any(isinstance(m, MarkMatch) and m.value == 0x8000 for m in rule.matches)
    )


def _proxy_firewall(rule: Rule) -> bool:
    target = rule.target
    return rule.chain == n.KUBE_PROXY_FIREWALL or (
        isinstance(target, JumpTarget) and target.chain == n.KUBE_PROXY_FIREWALL
    )


def _never(rule: Rule) -> bool:
    return False


@dataclass(frozen=True)
class VersionChange:
    """One change to the rules kube-proxy or kubelet writes, and the release that made it."""

    since: tuple[int, int]
    """The first release with the new rules."""
    what: str
    """The change, in a few words."""
    new: Callable[[Rule], bool]
    """A rule only releases from `since` on write."""
    old: Callable[[Rule], bool]
    """A rule only releases before `since` write."""


VERSION_CHANGES: tuple[VersionChange, ...] = (
    # kubernetes/kubernetes#125015: kubeproxy_iptables_localhost_nodeports_accepted_packets_total.
    VersionChange(
        (1, 31),
        "1.31 counts packets to localhost NodePorts with nfacct",
        lambda r: _nfacct(r, "localhost_nps_accepted_pkts"),
        _never,
    ),
    # kubernetes/kubernetes#122812: kubeproxy_iptables_ct_state_invalid_dropped_packets_total.
    VersionChange(
        (1, 30),
        "1.30 counts the conntrack-INVALID drop with nfacct",
        lambda r: _nfacct(r, "ct_state_invalid_dropped_pkts"),
        _plain_invalid_drop,
    ),
    # KEP-3178 IPTablesOwnershipCleanup, on by default in 1.27 (#114472), GA in 1.28 (#119374).
    VersionChange(
        (1, 27),
        "kubelet 1.27 no longer writes KUBE-MARK-DROP and its 0x8000 drop",
        _never,
        _mark_drop,
    ),
    # KEP-3178, kube-proxy side (#110289): LoadBalancerSourceRanges filtered in the filter table.
    VersionChange(
        (1, 25),
        "1.25 filters loadBalancerSourceRanges in KUBE-PROXY-FIREWALL",
        _proxy_firewall,
        _mark_drop,
    ),
)
"""What changed in kube-proxy's and kubelet's rules between releases, newest first."""


def parse_version(text: str | None) -> tuple[int, int] | None:
    """`v1.26.15`, `v1.28.5-eks-5e0fdde`, `v1.27.3+k3s1` → (1, 26) …; None if unreadable."""
    found = re.match(r"v?(\d+)\.(\d+)", text or "")
    return (int(found[1]), int(found[2])) if found else None


def _version_change(rule: Rule, version: tuple[int, int], missing: bool) -> VersionChange | None:
    """The change that explains `rule` on a node at `version`: missing there, or extra there."""
    for change in VERSION_CHANGES:
        if missing and version < change.since <= RENDERED_VERSION and change.new(rule):
            return change
        if not missing and version < change.since and change.old(rule):
            return change
    return None


# --- the diff -------------------------------------------------------------------------


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
    node_version: str | None = None
    """The node's kube-proxy version as its Node reports it; None when it reports none."""
    version_missing: tuple[tuple[Rule, str], ...] = ()
    """Rules kubehop's release writes and the node's release does not, each with the change."""
    version_extra: tuple[tuple[Rule, str], ...] = ()
    """Rules the node's release writes and kubehop's does not, each with the change."""
    environment: tuple[tuple[Rule, Rule], ...] = ()
    """(rendered, node's) rules that differ only in `--random-fully`."""
    partial: bool = False
    """The node's file declares no built-in chains (kube-proxy's restore input): only the
    chains it declares are compared."""
    unexplained_versions: int = 0
    """With no node version known: how many differences match a kube-proxy version change."""

    @property
    def same(self) -> bool:
        """The node's kube-proxy rules are what kube-proxy should have written (its version
        and its iptables' abilities aside)."""
        return not self.missing and not self.extra


def _kube(rule: Rule) -> bool:
    if rule.chain in _CANARIES:
        return False
    if rule.chain.startswith("KUBE-"):
        return True
    target = rule.target
    return isinstance(target, JumpTarget) and target.chain.startswith("KUBE-")


def _rules(rules: NodeRules, only: dict[Table, set[str]] | None = None) -> list[Rule]:
    return [
        rule
        for table, chains in rules.ruleset.tables.items()
        for name, chain in chains.items()
        if only is None or name in only.get(table, ())
        for rule in chain.rules
        if _kube(rule)
    ]


def _partial(real: NodeRules) -> dict[Table, set[str]] | None:
    """The chains a restore input declares, table by table; None for a whole iptables-save."""
    tables = real.ruleset.tables
    if not tables or any(
        any(name in chains for name in BUILTIN_CHAINS[table]) for table, chains in tables.items()
    ):
        return None
    return {table: set(chains) for table, chains in tables.items()}


def _endpoints(rules: list[Rule]) -> dict[str, str]:
    found: dict[str, str] = {}
    for rule in rules:
        target = rule.target
        if isinstance(target, DnatTarget) and rule.chain.startswith("KUBE-SEP-"):
            port = f":{target.ports.lo}" if target.ports is not None else ""
            found[f"{target.addr}{port}"] = comment_of(rule) or rule.chain
    return found


def _unmatched(rules: list[Rule], keys: list[Hashable], others: dict[Hashable, int]) -> list[Rule]:
    """The rules whose key the other side has fewer of, in order."""
    left = dict(others)
    out: list[Rule] = []
    for rule, key in zip(rules, keys, strict=True):
        if left.get(key, 0) > 0:
            left[key] -= 1
        else:
            out.append(rule)
    return out


def _count(keys: Iterable[Hashable]) -> dict[Hashable, int]:
    counts: dict[Hashable, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return counts


def diff_rules(
    rendered: NodeRules, real: NodeRules, *, node_version: str | None = None
) -> RulesDiff:
    """Compare `real` (a node's dump) with `rendered` (kubehop's rules for that node).

    `node_version` is the node's kube-proxy version; by default the one its
    Node reports in the cluster dump `real` was read with.
    """
    if node_version is None and isinstance(real, NodeDump):
        node_version = real.kube_proxy_version
    only = _partial(real)
    want = _rules(rendered, only)
    have = _rules(real)
    want_keys = [_key(r) for r in want]
    have_keys = [_key(r) for r in have]
    missing = _unmatched(want, want_keys, _count(have_keys))
    extra = _unmatched(have, have_keys, _count(want_keys))

    # Pairs the same in meaning but for --random-fully.
    environment: list[tuple[Rule, Rule]] = []
    waiting: dict[Hashable, list[Rule]] = {}
    for rule, key in zip(have, have_keys, strict=True):
        if _random_fully(rule) is False and isinstance(rule.target, MasqueradeTarget | SnatTarget):
            waiting.setdefault(key, []).append(rule)
    for rule, key in zip(want, want_keys, strict=True):
        if _random_fully(rule) and waiting.get(key):
            environment.append((rule, waiting[key].pop(0)))

    version = parse_version(node_version)
    version_missing: list[tuple[Rule, str]] = []
    version_extra: list[tuple[Rule, str]] = []
    unexplained = 0
    drift_missing: list[Rule] = []
    drift_extra: list[Rule] = []
    for rules, drift, grouped, is_missing in (
        (missing, drift_missing, version_missing, True),
        (extra, drift_extra, version_extra, False),
    ):
        for rule in rules:
            change = _version_change(rule, version or (0, 0), is_missing)
            if change is not None and version is not None:
                grouped.append((rule, change.what))
            else:
                unexplained += change is not None
                drift.append(rule)

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
        missing=tuple(drift_missing),
        extra=tuple(drift_extra),
        missing_endpoints=tuple(f"{e} ({want_eps[e]})" for e in want_eps if e not in have_eps),
        stale_endpoints=tuple(f"{e} ({have_eps[e]})" for e in have_eps if e not in want_eps),
        others=others,
        node_version=node_version,
        version_missing=tuple(version_missing),
        version_extra=tuple(version_extra),
        environment=tuple(environment),
        partial=only is not None,
        unexplained_versions=unexplained,
    )


def _plus(rule: Rule, real: str) -> str:
    return f"+{rule.line}" + (f"   ({real}:{rule.lineno})" if rule.lineno else "")


def diff_text(diff: RulesDiff) -> str:
    """The differences as a unified-diff-like listing, then a summary in words."""
    lines = [f"--- {diff.rendered}", f"+++ {diff.real}"]
    chains: dict[tuple[str, str], list[str]] = {}
    for rule in diff.missing:
        chains.setdefault((rule.table.value, rule.chain), []).append(f"-{rule.line}")
    for rule in diff.extra:
        chains.setdefault((rule.table.value, rule.chain), []).append(_plus(rule, diff.real))
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
    if diff.partial:
        lines.append(
            f"{diff.real} declares no built-in chain (kube-proxy's restore input, for"
            " iptables-restore --noflush): only the chains it declares are compared"
        )
    grouped = len(diff.version_missing) + len(diff.version_extra)
    if grouped:
        rendered = "v" + ".".join(map(str, RENDERED_VERSION))
        lines.append(
            f"kube-proxy {diff.node_version} on {diff.node} and {rendered} rendered by kubehop:"
            f" {grouped} rule(s) differ only by version, not by the cluster"
        )
        lines += [f"  -{rule.line}   ({what})" for rule, what in diff.version_missing]
        for rule, what in diff.version_extra:
            where = f"{diff.real}:{rule.lineno}; " if rule.lineno else ""
            lines.append(f"  +{rule.line}   ({where}{what})")
    if diff.unexplained_versions:
        lines.append(
            f"{diff.node} reports no kubeProxyVersion: {diff.unexplained_versions} of these"
            " differences match changes between kube-proxy versions (dump the Node with its"
            " status to tell)"
        )
    if diff.environment:
        lines.append(
            f"{len(diff.environment)} rule(s) differ only by --random-fully, which kube-proxy"
            " adds where the node's iptables and kernel support it: the node's environment,"
            " not drift"
        )
        for ours, theirs in diff.environment:
            lines += [f"  -{ours.line}", f"  {_plus(theirs, diff.real)}"]
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
