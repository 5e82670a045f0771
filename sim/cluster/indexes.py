"""What every trace asks of a cluster, indexed once, right after the cluster is loaded.

A trace looks up its pods by name, the pods on the nodes it crosses, the Service
ports kube-proxy programs (each mode's `prepare`: which owns which address and
port) and what every node shares (the CNI's `prepare`: routes, VTEPs). Each is indexed on first use; on a cluster at Kubernetes' scale limits
that first use costs the first trace over half a second, against milliseconds
for every trace after. `prepare` builds them while the cluster loads, where a
person already waits for the file (and sees it said on the progress line), so
the first trace costs what the tenth does.
"""

from __future__ import annotations

from model.cluster import Cluster
from sim.cni import cni_of
from sim.proxy import mode_of
from sim.readers.cluster.load import collector_off

__all__ = ["BIG", "prepare"]

BIG = 100_000
"""Objects (pods, Services, slices) past which a cluster's indexes are frozen out of the
collector's scans as they are built."""


def prepare(cluster: Cluster) -> Cluster:
    """`cluster`, its lookup indexes built (each is built once per cluster object)."""
    # Hundreds of thousands of small tuples, none cyclic: built with the collector off
    # and, for a cluster the loader froze, frozen out of its scans as well (a few
    # thousand would otherwise cost the first trace a 35 ms scan of the next generation).
    big = len(cluster.pods) + len(cluster.endpoint_slices) + len(cluster.services) > BIG
    with collector_off(freeze_over=0 if big else BIG):
        cluster.build_indexes()
        mode_of(cluster).prepare(cluster)
        cni_of(cluster).prepare()
    return cluster
