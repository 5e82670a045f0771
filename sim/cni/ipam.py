"""IPAM: the address a CNI's IPAM plugin gives the next pod on a node.

host-local (the bridge CNIs: host-gw, Flannel) hands out a node's podCIDR in
order; calico-ipam hands out the node's blocks (`sim.cni.calico`). Each CNI's
`next_pod_ip` says which applies; a cluster edit (a scaled ReplicaSet) asks it.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from ipaddress import IPv4Address, IPv4Network

from model.cluster import Cluster, Node
from model.errors import KubehopError

__all__ = ["IpamError", "first_free", "host_local_next"]


class IpamError(KubehopError):
    """No address is left to give (a full podCIDR, IP pools with no free block)."""


def first_free(blocks: Iterable[IPv4Network], taken: Container[int]) -> int | None:
    """The lowest address of `blocks`, in order, not in `taken` (addresses as ints)."""
    for block in blocks:
        first = int(block.network_address)
        free = next((a for a in range(first, first + block.num_addresses) if a not in taken), None)
        if free is not None:
            return free
    return None


def host_local_next(cluster: Cluster, node: Node) -> IPv4Address:
    """The address host-local IPAM would give the next pod on `node`.

    host-local hands out addresses in order after the last one it reserved,
    skipping the network, the bridge's gateway (.1), the broadcast address and
    addresses in use, and wraps round. kubehop does not keep host-local's
    last-reserved file, so the highest address in use stands in for it.
    """
    if node.pod_cidr is None:
        raise IpamError(f"node {node.name} has no podCIDR to allocate from")
    network = node.pod_cidr
    first = int(network.network_address) + 2
    last = int(network.broadcast_address) - 1
    if last < first:
        raise IpamError(f"podCIDR {network} of node {node.name} is too small for pods")
    in_use = {int(p.ip) for p in cluster.pods} | {int(n.internal_ip) for n in cluster.nodes}
    mine = [ip for ip in in_use if first <= ip <= last]
    start = max(mine) + 1 if mine else first
    size = last - first + 1
    for step in range(size):
        candidate = first + (start - first + step) % size
        if candidate not in in_use:
            return IPv4Address(candidate)
    raise IpamError(f"podCIDR {network} of node {node.name} has no free address")
