"""kube-proxy in nftables mode (Kubernetes 1.31): the table it leaves on a node.

`NFTABLES` is the mode behind `sim.proxy.base.ProxyMode`. `render_node_nft`
gives what `nft list table ip kube-proxy` prints on the node and
`render_node_transaction` what kube-proxy hands `nft -f`; both come from one
model of kube-proxy's sync (`sync.py`). `names.py` names chains as kube-proxy
does, `kubelet.py` gives the iptables rules that remain on such a node
(kubelet's and the CNI's), `explain.py` and `interpret.py` say in words what
a hook's rules did.

Service CIDRs: kube-proxy 1.31 knows them only from ServiceCIDR objects
(MultiCIDRServiceAllocator, beta and off by default), so the rule dropping
traffic to unallocated ClusterIPs is written only for a cluster that has
them (`Cluster.service_cidrs`); otherwise the interpreter infers the range
from the ClusterIPs to explain such a packet, and says so.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from model.cluster import Cluster, Node
from model.errors import RequestError
from model.ipset import IpSets
from model.netfilter import Rule, Ruleset
from model.nftables import NftRuleset
from sim.kernel.rules import ForeignRules
from sim.proxy.nftables.interpret import NftablesInterpreter
from sim.proxy.nftables.kubelet import kubelet_iptables
from sim.proxy.nftables.sync import Transaction, sync

__all__ = [
    "NFTABLES",
    "NftablesMode",
    "RenderedNftRules",
    "chain_owners",
    "render_node_nft",
    "render_node_transaction",
]


def _node(cluster: Cluster, node: str) -> Node:
    found = cluster.node(node)
    if found is None:
        raise RequestError(f"node '{node}' is not in the cluster")
    return found


@contextmanager
def _collector_paused() -> Iterator[None]:
    # A big node builds millions of short strings and tuples, none cyclic.
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _sync(cluster: Cluster, node: str) -> Transaction:
    with _collector_paused():
        return sync(cluster, _node(cluster, node))


def render_node_nft(cluster: Cluster, node: str) -> str:
    """`nft list table ip kube-proxy` on `node`, as kube-proxy 1.31 leaves it."""
    with _collector_paused():
        return sync(cluster, _node(cluster, node)).listing()


def render_node_transaction(cluster: Cluster, node: str) -> str:
    """The transaction kube-proxy hands `nft -f` on `node` (its first sync)."""
    return _sync(cluster, node).text()


def chain_owners(cluster: Cluster, node: str) -> dict[str, str]:
    """Each per-service chain and affinity set on `node` → the Service port (or endpoint) it serves."""
    return dict(_sync(cluster, node).owners)


@dataclass(frozen=True)
class RenderedNftRules:
    """One node's rules in nftables mode: kubelet's iptables and kube-proxy's nft table."""

    node: str
    """The node."""
    text: str
    """`iptables-save` of the node: kubelet's chains and the CNI's (kube-proxy writes none)."""
    ruleset: Ruleset
    """The iptables text, parsed."""
    nft_text: str
    """`nft list table ip kube-proxy`."""
    nft: NftRuleset
    """The nft text, parsed chain by chain as a packet first visits each."""
    transaction: str
    """What kube-proxy handed `nft -f` to make the table (for the lab to load)."""
    rendered: bool = True
    """Always True: kubehop wrote these from the cluster."""
    ipsets: IpSets = field(default_factory=dict)
    """nftables mode uses no ipsets."""


@dataclass(frozen=True)
class NftablesMode:
    """kube-proxy's nftables mode (beta in 1.31)."""

    name: str = "nftables"
    """As KubeProxyConfiguration spells it."""

    def render(self, cluster: Cluster, node: str, extra: ForeignRules | None = None) -> str:
        """`nft list table ip kube-proxy` of the node (the CNI's rules are in iptables)."""
        return render_node_nft(cluster, node)

    def node_rules(
        self, cluster: Cluster, node: str, extra: ForeignRules | None = None
    ) -> RenderedNftRules:
        """The node's rules, rendered, then read back as the kernel would hold them."""
        from sim.readers.iptables_save import parse_iptables_save
        from sim.readers.nftables import parse_nft

        tx = _sync(cluster, node)
        listing = tx.listing()
        text = kubelet_iptables(extra)
        return RenderedNftRules(
            node=node,
            text=text,
            ruleset=parse_iptables_save(text, source=f"{node} (rendered)", lazy=True),
            nft_text=listing,
            nft=parse_nft(listing, source=f"{node} (rendered nft)", lazy=True),
            transaction=tx.text(),
        )

    def interpreter(
        self,
        cluster: Cluster,
        *,
        pick: tuple[IPv4Address, int] | None = None,
        choose: Callable[[Rule], bool | None] | None = None,
    ) -> NftablesInterpreter:
        """A fresh reader of kube-proxy's nft table for one trace."""
        return NftablesInterpreter(cluster, pick, choose)


NFTABLES = NftablesMode()
"""The nftables mode (it holds no state)."""
