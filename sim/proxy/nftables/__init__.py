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

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from model.cluster import Cluster
from model.ipset import IpSets
from model.netfilter import Rule, Ruleset
from model.nftables import NftRuleset
from sim.collector import paused as collector_paused
from sim.kernel.rules import ForeignRules, NodeRules
from sim.proxy.base import iptables_dnat_to, node_named
from sim.proxy.nftables.interpret import NftablesInterpreter
from sim.proxy.nftables.kubelet import kubelet_iptables
from sim.proxy.nftables.sync import Transaction, sync
from sim.readers.pages import Pages

if TYPE_CHECKING:
    from sim.proxy.nftables.lazy import NodeTable

__all__ = [
    "NFTABLES",
    "NftablesMode",
    "RenderedNftRules",
    "chain_owners",
    "render_node_nft",
    "render_node_transaction",
]


def _sync(cluster: Cluster, node: str) -> Transaction:
    with collector_paused():
        return sync(cluster, node_named(cluster, node))


def render_node_nft(cluster: Cluster, node: str) -> str:
    """`nft list table ip kube-proxy` on `node`, as kube-proxy 1.31 leaves it."""
    with collector_paused():
        return sync(cluster, node_named(cluster, node)).listing()


def render_node_transaction(cluster: Cluster, node: str) -> str:
    """The transaction kube-proxy hands `nft -f` on `node` (its first sync)."""
    return _sync(cluster, node).text()


def chain_owners(cluster: Cluster, node: str) -> dict[str, str]:
    """Each per-service chain and affinity set on `node` → the Service port (or endpoint) it serves."""
    return dict(_sync(cluster, node).owners)


@dataclass(frozen=True)
class RenderedNftRules:
    """One node's rules in nftables mode: kubelet's iptables and kube-proxy's nft table.

    The nft table is rendered and parsed a Service port at a time as packets reach
    it (`lazy.NodeTable`); its whole texts are rendered when first asked for.
    """

    node: str
    """The node."""
    text: str
    """`iptables-save` of the node: kubelet's chains and the CNI's (kube-proxy writes none)."""
    ruleset: Ruleset
    """The iptables text, parsed."""
    table: NodeTable
    """kube-proxy's nft table, rendered in parts."""
    rendered: bool = True
    """Always True: kubehop wrote these from the cluster."""
    ipsets: IpSets = field(default_factory=dict)
    """nftables mode uses no ipsets."""

    @property
    def nft_text(self) -> str:
        """`nft list table ip kube-proxy`, the whole table (rendered when first asked)."""
        return self.table.listing()

    @property
    def nft(self) -> NftRuleset:
        """The nft table, each chain and element parsed when a packet first needs it."""
        return self.table.ruleset

    @property
    def transaction(self) -> str:
        """What kube-proxy handed `nft -f` to make the table (for the lab to load; rendered
        when first asked)."""
        return self.table.transaction()

    @property
    def text_rendered(self) -> bool:
        """`nft_text` returns at once: the whole table was rendered already."""
        return self.table.listed

    @property
    def held_bytes(self) -> int:
        """About how many bytes the rules hold: the parts rendered so far, the whole texts
        once rendered, and the iptables text."""
        return self.table.held_bytes + 4 * len(self.text)

    def release(self) -> None:
        """Drop every rendered part of the nft table."""
        self.table.release()

    def dnats_to(self, endpoint: tuple[IPv4Address, int]) -> bool:
        """Whether some rule DNATs to `endpoint`, rendering only the Service ports whose
        slices list it."""
        return iptables_dnat_to(endpoint).search(self.text) is not None or self.table.dnats_to(
            endpoint
        )


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
        from sim.proxy.nftables.lazy import NodeTable
        from sim.readers.iptables_save import parse_iptables_save

        text = kubelet_iptables(extra)
        return RenderedNftRules(
            node=node,
            text=text,
            ruleset=parse_iptables_save(text, source=f"{node} (rendered)", lazy=True),
            table=NodeTable(cluster, node_named(cluster, node)),
        )

    def pages(self, cluster: Cluster, rules: NodeRules) -> tuple[tuple[str, Pages], ...] | None:
        """kube-proxy's table as rows made when read (`paged.TablePages`), then kubelet's and
        the CNI's `iptables-save`, as `listings` orders them; None for a node whose table
        is not rendered in parts."""
        from sim.proxy.nftables.lazy import NodeTable
        from sim.proxy.nftables.paged import TablePages
        from sim.readers.pages import TextPages

        table = getattr(rules, "table", None)
        if not isinstance(table, NodeTable) or not rules.rendered:
            return None
        parts: list[tuple[str, Pages]] = [("nft list table ip kube-proxy", TablePages(table))]
        if rules.text:
            parts.append(("iptables-save", TextPages(rules.text)))
        return tuple(parts)

    def pages_quick(self, cluster: Cluster) -> bool:
        """Whether what every node shares is counted (`paged.shared_part_ready`)."""
        from sim.proxy.nftables.paged import shared_part_ready

        return shared_part_ready(cluster)

    def prepare(self, cluster: Cluster) -> None:
        """Which Service port owns each address, port and chain name (`lazy.port_index`)."""
        from sim.proxy.nftables.lazy import port_index

        port_index(cluster)

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
