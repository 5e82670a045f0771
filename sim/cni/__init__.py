"""The CNI: how pods are wired to their node and pod traffic crosses between nodes.

One module per CNI behind `sim.cni.base.CNI`: host-gw (`host_gw`), Flannel
with its VXLAN or host-gw backend (`flannel`), and Calico with BGP, IP-in-IP
or VXLAN between nodes (`calico`, its Felix rules in `felix`); the bridge
plugin that host-gw and Flannel use to wire pods is `bridge`.
"""

from __future__ import annotations

from collections import OrderedDict

from model.cluster import Cluster, CNIPlugin
from sim.cni.base import CNI

__all__ = ["CNI", "cni_of"]

_CALICO = {
    CNIPlugin.CALICO_BGP: "bgp",
    CNIPlugin.CALICO_IPIP: "ipip",
    CNIPlugin.CALICO_VXLAN: "vxlan",
}


_CNIS: OrderedDict[int, tuple[Cluster, CNI]] = OrderedDict()


def cni_of(cluster: Cluster) -> CNI:
    """The CNI `cluster` runs (the loader refuses plugins not simulated yet), one object per
    cluster object: what it infers from the whole cluster (Calico's IPAM blocks, the routes
    every node shares) is worked out once, not again for a node's rules and its netns.

    Each CNI's module is imported when a cluster first asks for it: the app's
    first screen needs only the CNI it shows.
    """
    key = id(cluster)
    hit = _CNIS.get(key)
    if hit is not None and hit[0] is cluster:
        _CNIS.move_to_end(key)
        return hit[1]
    cni = _new_cni(cluster)
    _CNIS[key] = (cluster, cni)
    while len(_CNIS) > 8:
        _CNIS.popitem(last=False)
    return cni


def _new_cni(cluster: Cluster) -> CNI:
    plugin = cluster.cni.plugin
    if plugin in (CNIPlugin.FLANNEL_VXLAN, CNIPlugin.FLANNEL_HOST_GW):
        from sim.cni.flannel import Flannel

        return Flannel(cluster, vxlan=plugin is CNIPlugin.FLANNEL_VXLAN)
    calico = _CALICO.get(plugin)
    if calico is not None:
        from sim.cni.calico import Calico, CalicoMode

        return Calico(cluster, CalicoMode(calico))
    from sim.cni.host_gw import HostGw

    return HostGw(cluster)
