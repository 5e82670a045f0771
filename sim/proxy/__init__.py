"""kube-proxy: which mode a cluster runs, and the rules it leaves on each node.

One package per mode behind `sim.proxy.base.ProxyMode`: `sim.proxy.iptables`,
`sim.proxy.nftables` and `sim.proxy.ipvs`. What every mode shares lives beside them: which endpoints a node uses
for a Service port (`endpoints`), and which Service answers at an address
(`services`). A node's whole rule set, the CNI's included, is
`sim.cluster.rules`.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from model.cluster import Cluster
from model.cluster import ProxyMode as ProxyModeName
from sim.kernel.rules import NodeRules, nft_of
from sim.proxy.base import ProxyMode, iptables_dnat_to, nft_dnat_to

__all__ = ["ProxyMode", "dnats_to", "mode_of"]


def mode_of(cluster: Cluster) -> ProxyMode:
    """The mode `cluster`'s kube-proxy runs (the loader refuses modes not simulated yet).

    Each mode's package is imported when a cluster first asks for it: the app's
    first screen needs only the mode it shows.
    """
    if cluster.kube_proxy.mode is ProxyModeName.NFTABLES:
        from sim.proxy.nftables import NFTABLES

        return NFTABLES
    if cluster.kube_proxy.mode is ProxyModeName.IPVS:
        from sim.proxy.ipvs import IPVS

        return IPVS
    from sim.proxy.iptables import IPTABLES

    return IPTABLES


def dnats_to(rules: NodeRules, endpoint: tuple[IPv4Address, int]) -> bool:
    """Whether some rule of the node DNATs to `endpoint`, in whichever mode wrote them.

    One search of the text, not a walk of every parsed rule: a big node has
    hundreds of thousands of rules and parses its chains only when a packet
    visits them. iptables: `-j DNAT … --to-destination IP:PORT`; nftables:
    `dnat to IP:PORT` in the node's nft table; IPVS: a real server of one of the node's
    virtual servers.
    """
    own = getattr(rules, "dnats_to", None)
    if callable(own):
        # Lazily rendered rules know their DNATs without spelling the whole text.
        return bool(own(endpoint))
    ipvs = getattr(rules, "ipvs", None)
    if ipvs is not None:
        from model.ipvs import IpvsTable  # IPVS mode only

        if isinstance(ipvs, IpvsTable) and any(
            (rs.ip, rs.port) == endpoint for vs in ipvs.services for rs in vs.real_servers
        ):
            return True
    if iptables_dnat_to(endpoint).search(rules.text):
        return True
    if nft_of(rules) is None:
        return False
    return nft_dnat_to(endpoint).search(getattr(rules, "nft_text", "")) is not None
