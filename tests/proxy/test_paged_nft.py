"""nftables mode: a node's listing as rows made when read (`TablePages`), the same text as the
whole render, each rule found where it is, and the shapes it rests on equal to what sync writes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from model.cluster import Cluster
from sim.cluster.load import with_mode
from sim.cluster.rules import node_listing
from sim.proxy.endpoints import categorize, port_endpoints
from sim.proxy.nftables import paged
from sim.proxy.nftables.sync import (
    PORT_SETS,
    PortShape,
    local_cidr,
    port_shape,
    setup,
    sync_ports,
    write_port,
)
from sim.readers.pages import index_rows
from tests.proxy.lazy_support import fresh_node_caches, pages_of
from tests.proxy.test_lazy_rules import CLUSTERS


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    paged._alike_shapes.clear()
    with fresh_node_caches():
        yield


@pytest.fixture(scope="module", params=sorted(CLUSTERS))
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return with_mode(CLUSTERS[request.param](), "nftables")


def test_the_rows_are_the_whole_listing_keyed_as_the_pane_keys_it(cluster: Cluster) -> None:
    for node in cluster.nodes[:4]:
        pages = pages_of(cluster, node.name)
        whole = node_listing(cluster, node.name)
        rows = [pages.row(r) for r in range(len(pages))]
        assert rows == index_rows(whole.splitlines())
        assert "".join(f"{line}\n" for line, *_ in rows) == whole
        assert pages.rule_count == sum(1 for *_, number in rows if number)
        assert pages.most_rules == max(number for *_, number in rows)
        for r, (_, table, chain, number) in enumerate(rows):
            if number:
                assert pages.find(table, chain, number) == r
        with pytest.raises(IndexError):
            pages.row(len(pages))


def test_a_rule_past_its_chains_end_or_of_no_chain_is_not_found(cluster: Cluster) -> None:
    pages = pages_of(cluster, cluster.nodes[0].name)
    rows = [pages.row(r) for r in range(len(pages))]
    longest: dict[str, int] = {}
    for _, table, chain, number in rows:
        if number and table == "ip kube-proxy":
            longest[chain] = max(longest.get(chain, 0), number)
    for chain, count in longest.items():
        assert pages.find("ip kube-proxy", chain, count + 1) is None
    assert pages.find("ip kube-proxy", "service-NOSUCHHA-default/none/tcp/p", 1) is None
    assert pages.find("ip kube-proxy", "services", 0) is None


def test_port_shape_counts_what_write_port_writes(cluster: Cluster) -> None:
    cidr = local_cidr(cluster)
    for node in cluster.nodes:
        fixed = setup(cluster, node, script=False)
        for port in sync_ports(cluster):
            tx = fixed.part()
            write_port(tx, cluster, node, port, cidr)
            endpoints = port_endpoints(cluster, port.service, port.port, node.name)
            shape = port_shape(
                cluster, node, port, cidr, categorize(endpoints, port.service, port.port)
            )
            assert shape.chains == tuple((name, len(c.rules)) for name, c in tx.chains.items())
            assert shape.affinity_sets == tuple(name for name in tx.sets if name not in fixed.sets)
            for name in PORT_SETS:
                first: dict[tuple[str, ...], tuple[str | None, str | None]] = {}
                for set_name, key, comment, value in shape.elements:
                    if set_name == name:
                        first.setdefault(key, (comment, value))
                assert first == tx.sets[name].elements, (port.name, name)


def test_a_miscounted_port_is_caught_when_its_rows_are_read(
    monkeypatch: pytest.MonkeyPatch, cluster: Cluster
) -> None:
    def one_more(*args: object) -> PortShape:
        shape = port_shape(*args)  # type: ignore[arg-type]
        chains = tuple((name, count + 1) for name, count in shape.chains)
        return PortShape(chains, shape.affinity_sets, shape.elements)

    monkeypatch.setattr(paged, "port_shape", one_more)
    pages = pages_of(cluster, cluster.nodes[0].name)
    whole = node_listing(cluster, cluster.nodes[0].name).splitlines()
    assert len(pages) > len(whole)
    with pytest.raises(AssertionError, match="counted"):
        for r in range(len(pages)):
            pages.row(r)
