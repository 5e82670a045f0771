"""kube-proxy in IPVS mode (Kubernetes 1.31): the virtual servers, sets and rules it leaves.

`IPVS` is the mode behind `sim.proxy.base.ProxyMode`. One model of kube-proxy's
sync (`sync.py`) gives everything a person sees on the node (`save.py`:
`ipvsadm-save -n`, `ipset save`, `iptables-save`, `ip addr show kube-ipvs0`)
and what the kernel holds: the iptables rules, parsed; the ipsets they match;
the virtual servers IPVS walks (`sim.kernel.ipvs`). `interpret.py` puts
IPVS's decisions in words. On a big cluster a node's virtual servers and sets
are built as packets reach them (`lazy.py`), its listings when first read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from model.cluster import Cluster
from model.ipset import IpSets
from model.ipvs import IpvsTable
from model.netfilter import Rule, Ruleset
from sim.kernel.rules import ForeignRules, NodeRules
from sim.proxy.base import iptables_dnat_to, node_named
from sim.proxy.ipvs import lazy
from sim.proxy.ipvs.interpret import IpvsInterpreter
from sim.proxy.ipvs.save import IpvsListing, iptables_save, listings_of
from sim.proxy.ipvs.sync import sync
from sim.readers.pages import Pages

__all__ = [
    "IPVS",
    "IpvsListing",
    "IpvsMode",
    "RenderedIpvsRules",
    "listings_of",
    "render_node_ipvs",
]


def render_node_ipvs(cluster: Cluster, node: str, extra: ForeignRules | None = None) -> str:
    """Every command's output on `node`, each under a `# COMMAND` line."""
    synced = sync(cluster, node_named(cluster, node))
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
    listings: Sequence[IpvsListing] = ()
    """What a person sees on the node, command by command (`ipvsadm-save -n` first)."""
    rendered: bool = True
    """Always True: kubehop wrote these from the cluster."""
    ipsets: IpSets = field(default_factory=dict)
    """kube-proxy's sets (and the CNI's), which the rules match with `-m set`."""

    @property
    def held_bytes(self) -> int | None:
        """About how many bytes a node built as packets reach it holds (None for a node
        rendered whole: the cache counts its texts)."""
        return self.ipvs.state.held_bytes if isinstance(self.ipvs, lazy.LazyIpvsTable) else None

    @property
    def text_rendered(self) -> bool:
        """`listings` return at once: the node is rendered whole, or was when first read."""
        return not isinstance(self.ipvs, lazy.LazyIpvsTable) or self.ipvs.state.whole_rendered

    def release(self) -> None:
        """Drop what a node built as packets reached it holds (it is built anew if asked)."""
        if isinstance(self.ipvs, lazy.LazyIpvsTable):
            self.ipvs.state.release()

    def dnats_to(self, endpoint: tuple[IPv4Address, int]) -> bool:
        """Whether IPVS (or an iptables DNAT rule of the CNI's) sends to `endpoint`."""
        if self.ipvs.serves(endpoint):
            return True
        return iptables_dnat_to(endpoint).search(self.text) is not None


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

        foreign = extra.ipsets if extra is not None else {}
        if lazy.renders_in_parts(cluster):
            state = lazy.NodeIpvs(cluster, node_named(cluster, node), extra)
            return RenderedIpvsRules(
                node=node,
                text=state.text,
                ruleset=parse_iptables_save(state.text, source=f"{node} (rendered)", lazy=True),
                ipvs=lazy.LazyIpvsTable(state),
                listings=lazy.LazyListings(state),
                ipsets={**lazy.lazy_sets(state), **foreign},
            )
        synced = sync(cluster, node_named(cluster, node))
        text = iptables_save(synced, extra)
        sets = {**synced.ipsets(), **foreign}
        return RenderedIpvsRules(
            node=node,
            text=text,
            ruleset=parse_iptables_save(text, source=f"{node} (rendered)", lazy=True),
            ipvs=synced.table(f"{node} (rendered)", cluster),
            listings=listings_of(cluster, node, synced, text),
            ipsets=sets,
        )

    def pages(self, cluster: Cluster, rules: NodeRules) -> tuple[tuple[str, Pages], ...] | None:
        """`listings`' commands as rows spelled when read, for a node built as packets reach
        it (`paged.node_pages`); None for one rendered whole, or whose virtual servers
        libipvs's comparison does not order (their addresses span half the address space)."""
        from sim.proxy.ipvs.paged import node_pages

        table = getattr(rules, "ipvs", None)
        if not isinstance(table, lazy.LazyIpvsTable):
            return None
        # The listing's iptables-save is the text the kernel walks: the node's own, the CNI's
        # rules placed in it where the CNI keeps some first (`sim.cluster.rules`).
        return node_pages(table.state, rules.text)

    def pages_quick(self, cluster: Cluster) -> bool:
        """Whether what every node shares is sorted and counted (`paged.shared_part_ready`)."""
        from sim.proxy.ipvs.paged import shared_part_ready

        return shared_part_ready(cluster)

    def prepare(self, cluster: Cluster) -> None:
        """Which Service port owns each address and port, each node's endpoints
        (KUBE-LOOP-BACK's members), and kube-ipvs0's addresses, the same on every node."""
        from sim.proxy.ipvs.sync import bind_candidates

        lazy.ipvs_index(cluster).local(cluster, "")
        bind_candidates(cluster)

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
