"""What every trace asks of a cluster, indexed once, right after the cluster is loaded.

A trace looks up its pods by name, the pods on the nodes it crosses, the Service
ports kube-proxy programs (in iptables mode, which owns which address and port,
and how many rules each adds to the shared chains) and the routes every node
shares. Each is indexed on first use; on a cluster at Kubernetes' scale limits
that first use costs the first trace over half a second, against milliseconds
for every trace after. `prepare` builds them while the cluster loads, where a
person already waits for the file (and sees it said on the progress line), so
the first trace costs what the tenth does.
"""

from __future__ import annotations

import gc

from model.cluster import Cluster, ProxyMode
from sim.cni import cni_of

__all__ = ["prepare"]


def prepare(cluster: Cluster) -> Cluster:
    """`cluster`, its lookup indexes built (each is built once per cluster object)."""
    collecting = gc.isenabled()
    gc.disable()  # hundreds of thousands of small tuples, none cyclic
    try:
        cluster.node("")
        cluster.pod("", "")
        cluster.service("", "")
        cluster.pods_on("")
        for service in cluster.services[:1]:
            cluster.slices_of(service)
        if cluster.kube_proxy.mode is ProxyMode.IPTABLES:
            # Imported here: the other modes index what they need themselves.
            from sim.proxy.iptables.lazy import service_table

            service_table(cluster)
        cni_of(cluster).shared_routes.lengths  # noqa: B018 (built on first read)
    finally:
        if collecting:
            gc.enable()
    return cluster
