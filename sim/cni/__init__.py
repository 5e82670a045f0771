"""The CNI: how pods are wired to their node and pod traffic crosses between nodes.

One module per CNI behind `sim.cni.base.CNI`: host-gw (`host_gw`) and Flannel
with its VXLAN or host-gw backend (`flannel`); the bridge plugin that both
use to wire pods is `bridge`.
"""

from __future__ import annotations

from model.cluster import Cluster, CNIPlugin
from sim.cni.base import CNI
from sim.cni.flannel import Flannel
from sim.cni.host_gw import HostGw

__all__ = ["CNI", "cni_of"]


def cni_of(cluster: Cluster) -> CNI:
    """The CNI `cluster` runs (the loader refuses plugins not simulated yet)."""
    plugin = cluster.cni.plugin
    if plugin is CNIPlugin.FLANNEL_VXLAN:
        return Flannel(cluster, vxlan=True)
    if plugin is CNIPlugin.FLANNEL_HOST_GW:
        return Flannel(cluster, vxlan=False)
    return HostGw(cluster)
