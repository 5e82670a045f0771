"""kube-proxy in IPVS mode (Kubernetes 1.31): the virtual servers, sets and rules it leaves.

`IPVS` is the mode behind `sim.proxy.base.ProxyMode`. One model of kube-proxy's
sync (`sync.py`) gives everything a person sees on the node (`save.py`:
`ipvsadm-save -n`, `ipset save`, `iptables-save`, `ip addr show kube-ipvs0`)
and what the kernel holds: the iptables rules, parsed; the ipsets they match;
the virtual servers IPVS walks (`sim.kernel.ipvs`). `interpret.py` puts
IPVS's decisions in words.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from model.cluster import Cluster, Node
from model.errors import RequestError
from model.ipset import IpSets
from model.ipvs import IpvsTable
from model.netfilter import Rule, Ruleset
from sim.kernel.rules import ForeignRules
from sim.proxy.ipvs.interpret import IpvsInterpreter
from sim.proxy.ipvs.save import ip_addr, ipset_save, iptables_save, ipvsadm_save
from sim.proxy.ipvs.sync import IpvsSync, sync

__all__ = [
    "IPVS",
    "IpvsListing",
    "IpvsMode",
    "RenderedIpvsRules",
    "listings_of",
    "render_node_ipvs",
]


@dataclass(frozen=True)
class IpvsListing:
    """One command a person runs on the node, and what it prints."""

    command: str
    """`ipvsadm-save -n`, `ipset save`, `iptables-save`, `ip addr show kube-ipvs0`."""
    text: str
    """Its output."""


def _node(cluster: Cluster, node: str) -> Node:
    found = cluster.node(node)
    if found is None:
        raise RequestError(f"node '{node}' is not in the cluster")
    return found


def _sync(cluster: Cluster, node: str) -> IpvsSync:
    collecting = gc.isenabled()
    gc.disable()  # a big node builds millions of short strings and tuples, none cyclic
    try:
        return sync(cluster, _node(cluster, node))
    finally:
        if collecting:
            gc.enable()


def listings_of(
    cluster: Cluster, node: str, synced: IpvsSync, iptables: str
) -> tuple[IpvsListing, ...]:
    """The node's IPVS view, command by command."""
    table = synced.table(f"{node} (rendered)", cluster)
    # kube-ipvs0 comes after lo, eth0 and the CNI's bridge as kube-proxy creates it late.
    return (
        IpvsListing("ipvsadm-save -n", ipvsadm_save(table)),
        IpvsListing("ipset save", ipset_save(synced)),
        IpvsListing("iptables-save", iptables),
        IpvsListing("ip addr show kube-ipvs0", ip_addr(node, table, 4)),
    )


def render_node_ipvs(cluster: Cluster, node: str, extra: ForeignRules | None = None) -> str:
    """Every command's output on `node`, each under a `# COMMAND` line."""
    synced = _sync(cluster, node)
    found = listings_of(cluster, node, synced, iptables_save(synced, extra))
    return "\n".join(f"# {item.command}\n{item.text.rstrip()}\n" for item in found)


@dataclass(frozen=True)
class RenderedIpvsRules:
    """One node's rules in IPVS mode: the iptables rules, the sets, the virtual servers."""

    node: str
    """The node."""
    text: str
    """`iptables-save` of the node: kubelet's chains, kube-proxy's, the CNI's."""
    ruleset: Ruleset
    """The text, parsed chain by chain as a packet first visits each."""
    ipvs: IpvsTable
    """The virtual servers and the addresses on kube-ipvs0."""
    listings: tuple[IpvsListing, ...] = ()
    """What a person sees on the node, command by command (`ipvsadm-save -n` first)."""
    rendered: bool = True
    """Always True: kubehop wrote these from the cluster."""
    ipsets: IpSets = field(default_factory=dict)
    """kube-proxy's sets (and the CNI's), which the rules match with `-m set`."""


@dataclass(frozen=True)
class IpvsMode:
    """kube-proxy's IPVS mode."""

    name: str = "ipvs"
    """As KubeProxyConfiguration spells it."""

    def render(self, cluster: Cluster, node: str, extra: ForeignRules | None = None) -> str:
        """What a person sees on `node`: ipvsadm-save, ipset save, iptables-save, kube-ipvs0."""
        return render_node_ipvs(cluster, node, extra)

    def node_rules(
        self, cluster: Cluster, node: str, extra: ForeignRules | None = None
    ) -> RenderedIpvsRules:
        """The node's rules, rendered, then the iptables part read back as the kernel holds it."""
        from sim.readers.iptables_save import parse_iptables_save

        synced = _sync(cluster, node)
        text = iptables_save(synced, extra)
        sets = {**synced.ipsets(), **(extra.ipsets if extra is not None else {})}
        return RenderedIpvsRules(
            node=node,
            text=text,
            ruleset=parse_iptables_save(text, source=f"{node} (rendered)", lazy=True),
            ipvs=synced.table(f"{node} (rendered)", cluster),
            listings=listings_of(cluster, node, synced, text),
            ipsets=sets,
        )

    def interpreter(
        self,
        cluster: Cluster,
        *,
        pick: tuple[IPv4Address, int] | None = None,
        choose: Callable[[Rule], bool | None] | None = None,
    ) -> IpvsInterpreter:
        """A fresh reader of the node's rules and IPVS's decisions for one trace."""
        return IpvsInterpreter(cluster, pick, choose)


IPVS = IpvsMode()
"""The IPVS mode (it holds no state; IPVS's own lives in each netns's NetfilterState)."""
