"""What the tests of nodes built in parts share: empty node caches, and traces as JSON."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address

from model.cluster import Cluster
from model.errors import KubehopError
from sim.cluster import rules as node_tables
from sim.proxy.iptables import paged
from sim.proxy.ipvs import paged as ipvs_paged
from sim.proxy.nftables import paged as nft_paged
from sim.readers.pages import Pages
from sim.trace.report import trace_json
from sim.trace.request import Request
from sim.trace.tracer import trace

__all__ = ["dnat_candidates", "fresh_node_caches", "pages_of", "walks"]


def _clear() -> None:
    node_tables._CACHE.clear()
    node_tables._LISTED.clear()
    node_tables._PAGED.clear()
    paged._alike_chains.clear()
    nft_paged._alike_shapes.clear()
    ipvs_paged._shared_part.clear()


@contextmanager
def fresh_node_caches() -> Iterator[None]:
    """No node's rules, listing or pages cached before, nor left cached after."""
    _clear()
    yield
    _clear()


def walks(cluster: Cluster, requests: list[Request]) -> list[str]:
    """Each request's trace as JSON, or the error it ends in."""
    out: list[str] = []
    for request in requests:
        try:
            out.append(trace_json(trace(cluster, request)))
        except KubehopError as err:
            out.append(f"error: {err}")
    return out


def pages_of(cluster: Cluster, node: str) -> Pages:
    """`node`'s listing as pages (the test fails where the mode gives none)."""
    pages = node_tables.node_pages(cluster, node)
    assert pages is not None
    return pages


def dnat_candidates(cluster: Cluster) -> list[tuple[IPv4Address, int]]:
    """What a pinned endpoint may be asked for: every endpoint the slices list, each address
    on the next port (an endpoint of no Service port there), and an address no slice lists."""
    endpoints = {
        (ep.ip, port.port)
        for slice_ in cluster.endpoint_slices
        for port in slice_.ports
        for ep in slice_.endpoints
    }
    others = {(ip, port + 1) for ip, port in endpoints}
    return sorted({*endpoints, *others, (IPv4Address("10.99.99.99"), 80)})
