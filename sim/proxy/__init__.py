"""kube-proxy: which mode a cluster runs, and the rules it leaves on each node.

One package per mode behind `sim.proxy.base.ProxyMode`: `sim.proxy.iptables`
now. What every mode shares lives beside them: which endpoints a node uses
for a Service port (`endpoints`), and which Service answers at an address
(`services`). A node's whole rule set, the CNI's included, is
`sim.cluster.rules`.
"""

from __future__ import annotations

from model.cluster import Cluster
from sim.proxy.base import ProxyMode
from sim.proxy.iptables import IPTABLES

__all__ = ["ProxyMode", "mode_of"]


def mode_of(cluster: Cluster) -> ProxyMode:
    """The mode `cluster`'s kube-proxy runs (the loader refuses modes not simulated yet)."""
    return IPTABLES
