"""The CNI: how pods are wired to their node and pod traffic crosses between nodes.

One module per CNI behind `sim.cni.base.CNI`: host-gw (`host_gw`) now.
"""

from __future__ import annotations

from model.cluster import Cluster
from sim.cni.base import CNI
from sim.cni.host_gw import HostGw

__all__ = ["CNI", "cni_of"]


def cni_of(cluster: Cluster) -> CNI:
    """The CNI `cluster` runs (the loader refuses plugins not simulated yet)."""
    return HostGw(cluster)
