"""The CNI: how pods are wired to their node and pod traffic crosses between nodes.

One module per CNI behind `sim.cni.base.CNI`: host-gw (`host_gw`), Flannel
with its VXLAN or host-gw backend (`flannel`), and Calico with BGP, IP-in-IP
or VXLAN between nodes (`calico`, its Felix rules in `felix`); the bridge
plugin that host-gw and Flannel use to wire pods is `bridge`.
"""

from __future__ import annotations

from model.cluster import Cluster, CNIPlugin
from sim.cni.base import CNI
from sim.cni.calico import Calico, CalicoMode
from sim.cni.flannel import Flannel
from sim.cni.host_gw import HostGw

__all__ = ["CNI", "cni_of"]

_CALICO = {
    CNIPlugin.CALICO_BGP: CalicoMode.BGP,
    CNIPlugin.CALICO_IPIP: CalicoMode.IPIP,
    CNIPlugin.CALICO_VXLAN: CalicoMode.VXLAN,
}


def cni_of(cluster: Cluster) -> CNI:
    """The CNI `cluster` runs (the loader refuses plugins not simulated yet)."""
    plugin = cluster.cni.plugin
    if plugin is CNIPlugin.FLANNEL_VXLAN:
        return Flannel(cluster, vxlan=True)
    if plugin is CNIPlugin.FLANNEL_HOST_GW:
        return Flannel(cluster, vxlan=False)
    calico = _CALICO.get(plugin)
    if calico is not None:
        return Calico(cluster, calico)
    return HostGw(cluster)
