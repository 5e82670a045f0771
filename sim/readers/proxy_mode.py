"""Which mode a node's kube-proxy runs in, from what its dumps and the cluster's config show.

kube-proxy's IPVS mode leaves its mark in `iptables-save` (a nat table of
`KUBE-NODE-PORT`, `KUBE-LOAD-BALANCER`, `KUBE-IPVS-FILTER` chains and
`-m set --match-set KUBE-CLUSTER-IP` rules instead of `KUBE-SVC-*` chains) and
in `ipset list` (`KUBE-CLUSTER-IP`, `KUBE-LOOP-BACK`, `KUBE-NODE-PORT-TCP`, …);
its KubeProxyConfiguration may say `mode: ipvs`. `infer_proxy_mode` weighs
them in that order — what the node held, then what the cluster says — and
names what it went by, so a caller can say it plainly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from model.cluster import ProxyMode
from model.netfilter import Ruleset, Table, UnknownMatch

__all__ = ["IPVS_CHAINS", "IPVS_SETS", "ModeInference", "infer_proxy_mode"]

IPVS_CHAINS = (
    "KUBE-NODE-PORT", "KUBE-LOAD-BALANCER", "KUBE-IPVS-FILTER", "KUBE-IPVS-OUT-FILTER",
    "KUBE-FIRE-WALL",
)  # fmt: skip
"""Chains only kube-proxy's IPVS mode writes (iptables mode has KUBE-NODEPORTS instead),
the most telling first."""

IPVS_SETS = frozenset(
    {"KUBE-CLUSTER-IP", "KUBE-LOOP-BACK", "KUBE-EXTERNAL-IP", "KUBE-EXTERNAL-IP-LOCAL",
     "KUBE-LOAD-BALANCER", "KUBE-LOAD-BALANCER-LOCAL", "KUBE-LOAD-BALANCER-FW",
     "KUBE-LOAD-BALANCER-SOURCE-IP", "KUBE-LOAD-BALANCER-SOURCE-CIDR", "KUBE-NODE-PORT-TCP",
     "KUBE-NODE-PORT-LOCAL-TCP", "KUBE-NODE-PORT-UDP", "KUBE-NODE-PORT-LOCAL-UDP",
     "KUBE-NODE-PORT-SCTP-HASH", "KUBE-NODE-PORT-LOCAL-SCTP-HASH",
     "KUBE-HEALTH-CHECK-NODE-PORT", "KUBE-IPVS-IPS"}
)  # fmt: skip
"""The ipsets kube-proxy's IPVS mode keeps (pkg/proxy/ipvs/ipset.go)."""


@dataclass(frozen=True)
class ModeInference:
    """A node's kube-proxy mode and what showed it."""

    mode: ProxyMode
    """The mode."""
    shown_by: tuple[tuple[str, str], ...]
    """What showed it: (the file, what in it), such as ("node-b.rules", "chains KUBE-NODE-PORT")."""
    assumed: bool = False
    """Nothing showed a mode; kube-proxy's default (iptables on Linux) is assumed."""

    def said(self, about: str | None = None) -> str:
        """What showed the mode, in words; files other than `about` named."""
        return "; ".join(
            what if source == about else f"{source}: {what}" for source, what in self.shown_by
        )

    def __str__(self) -> str:
        return self.said()


def infer_proxy_mode(
    ruleset: Ruleset | None = None,
    ipsets: Mapping[str, object] | None = None,
    *,
    ipset_source: str | None = None,
    configured: ProxyMode | None = None,
    config_source: str = "the cluster's KubeProxyConfiguration",
) -> ModeInference:
    """The mode a node's kube-proxy runs in, from its rules, its ipsets and the configuration.

    `ruleset` is the node's `iptables-save`, `ipsets` its sets by name (read
    from `ipset_source`), `configured` the mode a KubeProxyConfiguration
    states (None when there is none). What the node held decides over the
    configuration, which may be another node's or out of date.
    """
    shown: list[tuple[str, str]] = []
    if ruleset is not None:
        declared = {name for chains in ruleset.tables.values() for name in chains}
        chains = [name for name in IPVS_CHAINS if name in declared]
        if chains:
            shown.append((ruleset.source, f"chains {_some(chains, 2)}"))
        rule = _ipvs_set_rule(ruleset)
        if rule is not None:
            shown.append((ruleset.source, f"line {rule[0]}: -m set --match-set {rule[1]}"))
    if ipsets:
        sets = sorted(name for name in ipsets if name in IPVS_SETS)
        if sets:
            sets.sort(key=lambda name: name != "KUBE-CLUSTER-IP")
            shown.append((ipset_source or "the ipsets", f"sets {_some(sets, 2)}"))
    if shown:
        return ModeInference(ProxyMode.IPVS, tuple(shown))
    if configured is not None:
        return ModeInference(configured, ((config_source, f"mode {configured.value}"),))
    if ruleset is not None and any(
        name.startswith(("KUBE-SVC-", "KUBE-SEP-")) for name in ruleset.tables.get(Table.NAT, {})
    ):
        return ModeInference(ProxyMode.IPTABLES, ((ruleset.source, "KUBE-SVC-/KUBE-SEP- chains"),))
    return ModeInference(
        ProxyMode.IPTABLES,
        (("kube-proxy's default", "nothing shows another mode"),),
        assumed=True,
    )


def _ipvs_set_rule(ruleset: Ruleset) -> tuple[int, str] | None:
    """The line and set of the first `-m set` rule that looks an IPVS set up, KUBE-CLUSTER-IP's
    if there is one."""
    found: tuple[int, str] | None = None
    for chains in ruleset.tables.values():
        for name in list(chains):
            if not name.startswith("KUBE-"):
                continue
            for rule in chains[name].rules:
                for match in rule.matches:
                    if not isinstance(match, UnknownMatch) or match.module != "set":
                        continue
                    args = match.args
                    for at, arg in enumerate(args[:-1]):
                        if arg == "--match-set" and args[at + 1] in IPVS_SETS:
                            if args[at + 1] == "KUBE-CLUSTER-IP":
                                return rule.lineno, args[at + 1]
                            found = found or (rule.lineno, args[at + 1])
    return found


def _some(names: list[str], most: int) -> str:
    """Up to `most` names, and an ellipsis for more."""
    return ", ".join(names[:most]) + (" …" if len(names) > most else "")
