"""A node's IPVS listings as rows spelled when read (`sim.proxy.ipvs.paged`): the same text as
the whole sync's, each row keyed as the whole text's index keys it, every virtual and real
server found by its line, and the counts the rows' places rest on checked when read."""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from model.cluster import Cluster
from model.ipvs import RealServer, VirtualServer
from model.packet import Proto
from sim.cluster import rules as node_tables
from sim.cluster.load import demo_cluster, with_mode
from sim.cluster.rules import node_listing, node_pages
from sim.proxy.ipvs import lazy, paged, save
from sim.readers.pages import ListingPages, TextPages, index_rows, pages_text
from tests.proxy.lazy_support import fresh_node_caches, pages_of
from tests.proxy.test_lazy_ipvs import CLUSTERS


@pytest.fixture(autouse=True)
def _in_parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Every cluster here is small: build their nodes in parts all the same.
    monkeypatch.setattr(lazy, "LAZY_FROM_PORTS", 0)
    lazy.ipvs_index.clear()
    paged._shared_part.clear()
    with fresh_node_caches():
        yield
    paged._shared_part.clear()


@pytest.fixture(scope="module", params=sorted(CLUSTERS))
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return CLUSTERS[request.param]()


def _nodes(cluster: Cluster) -> list[str]:
    """Every node of a small cluster; of a big one, the first and last few."""
    names = [node.name for node in cluster.nodes]
    return names if len(names) <= 6 else [*names[:3], *names[-2:]]


def test_the_rows_are_the_whole_listing(cluster: Cluster) -> None:
    for node in _nodes(cluster):
        pages = pages_of(cluster, node)
        whole = node_listing(cluster, node)
        assert isinstance(pages, ListingPages)
        assert pages_text(pages) == whole, node
        assert len(pages) == whole.count("\n")
        indexed = TextPages(whole)
        assert (pages.rule_count, pages.most_rules, pages.chain_width) == (
            indexed.rule_count,
            indexed.most_rules,
            indexed.chain_width,
        )


def test_each_row_is_keyed_as_the_whole_listing_indexes_it(cluster: Cluster) -> None:
    for node in _nodes(cluster)[-2:]:
        pages = pages_of(cluster, node)
        rows = index_rows(node_listing(cluster, node).splitlines())
        assert [pages.row(r) for r in range(len(pages))] == rows
        for r, (_, table, chain, number) in enumerate(rows):
            if number:
                assert pages.find(table, chain, number) == r
        with pytest.raises(IndexError):
            pages.row(len(pages))


def test_every_virtual_and_real_server_is_found_by_its_line(cluster: Cluster) -> None:
    for node in _nodes(cluster):
        pages = pages_of(cluster, node)
        lines = node_listing(cluster, node).splitlines()
        # As the rules pane indexes a whole text: the last row of a line that repeats.
        expected = {line: r for r, line in enumerate(lines) if line.startswith(("-A -", "-a -"))}
        assert expected
        for line, r in expected.items():
            assert pages.find_line(line) == r, (node, line)
        first = next(iter(expected))
        for missing in (
            first.replace(":", ":1", 1),
            first + " -p 10",
            "-A -t 10.0.0.1:1 -s rr",
            "-a -t nonsense",
            "-A KUBE-SERVICES -j RETURN",
        ):
            assert pages.find_line(missing) is None, missing


def test_a_miscounted_virtual_server_is_caught_when_its_line_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def one_more(ready: int, ending: int) -> int:
        return (ready or ending) + 1

    monkeypatch.setattr(paged, "_count", one_more)
    cluster = with_mode(demo_cluster(), "ipvs")
    pages = pages_of(cluster, "node-a")
    assert len(pages) > node_listing(cluster, "node-a").count("\n")
    with pytest.raises(AssertionError, match=r"real servers rendered, \d+ counted"):
        for r in range(len(pages)):
            pages.row(r)


def test_a_miscounted_local_virtual_server_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def one_more(cat: object, only_local: bool) -> int:
        return real(cat, only_local) + 1  # type: ignore[arg-type]

    real = paged._servers
    monkeypatch.setattr(paged, "_servers", one_more)
    cluster = CLUSTERS["zoo"]()
    with pytest.raises(AssertionError, match="real servers rendered"):
        for node in _nodes(cluster):
            pages = pages_of(cluster, node)
            for r in range(len(pages)):
                pages.row(r)


def test_the_shared_part_is_made_once_per_cluster() -> None:
    cluster = with_mode(demo_cluster(), "ipvs")
    assert not node_tables.pages_ready(cluster, "node-a")
    assert node_pages(cluster, "node-a") is not None
    assert node_tables.pages_ready(cluster, "node-a")
    # What every node shares is counted: another node's own part is quick to count.
    assert node_tables.pages_ready(cluster, "node-b")


def test_a_node_rendered_whole_comes_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazy, "LAZY_FROM_PORTS", 10**6)
    lazy.ipvs_index.clear()
    cluster = with_mode(demo_cluster(), "ipvs")
    assert node_pages(cluster, "node-a") is None


def _spread(cluster: Cluster, *addresses: str) -> Cluster:
    """`cluster` with its first LoadBalancer Service's LB IPs replaced by `addresses`."""
    services = list(cluster.services)
    at = next(i for i, s in enumerate(services) if s.load_balancer_ips)
    lbips = tuple(IPv4Address(a) for a in addresses)
    services[at] = services[at].model_copy(update={"load_balancer_ips": lbips})
    return cluster.model_copy(update={"services": tuple(services)})


def test_addresses_across_half_the_ring_sort_as_libipvs_sorts_them() -> None:
    # 192.168.0.10 is more than 2^31 above 10.x: libipvs sorts it first; 1.2.3.4 sorts last.
    cluster = _spread(CLUSTERS["zoo"](), "192.168.0.10", "1.2.3.4")
    for node in _nodes(cluster):
        whole = node_listing(cluster, node)
        assert pages_text(pages_of(cluster, node)) == whole
    assert whole.index("-A -t 192.168.0.10:") < whole.index("-A -t 10.")


def test_addresses_libipvs_does_not_order_are_not_paged() -> None:
    # 10.x < 100.x < 192.168.x < 10.x by signed differences: no order, no pages.
    cluster = _spread(CLUSTERS["zoo"](), "100.64.0.10", "192.168.0.10")
    assert node_pages(cluster, cluster.nodes[0].name) is None
    assert node_listing(cluster, cluster.nodes[0].name).count("-A -t 192.168.0.10:")


def test_virtual_servers_at_one_address_and_port_keep_syncs_order() -> None:
    # Two Services at one external IP and port (zoo-more), the later with session affinity:
    # libipvs's sort keeps them in the order sync adds them, and a line finds its own.
    cluster = CLUSTERS["zoo-more"]()
    services = [
        s.model_copy(update={"session_affinity_timeout": 600}) if s.name == "web-itp" else s
        for s in cluster.services
    ]
    cluster = cluster.model_copy(update={"services": tuple(services)})
    for node in _nodes(cluster):
        pages = pages_of(cluster, node)
        whole = node_listing(cluster, node)
        assert pages_text(pages) == whole
        lines = whole.splitlines()
        plain = lines.index("-A -t 10.1.0.201:80 -s rr")
        sticky = lines.index("-A -t 10.1.0.201:80 -s rr -p 600")
        assert (pages.find_line(lines[plain]), pages.find_line(lines[sticky])) == (plain, sticky)


def test_real_servers_sort_as_libipvs_compares_them() -> None:
    # By a key where the addresses fit in half the ring, by libipvs's comparison elsewhere.
    rng = random.Random(7)
    spreads = (1 << 8, 1 << 24, 1 << 31, 1 << 32)
    for spread in spreads * 50:
        base = rng.randrange(1 << 32)
        servers = tuple(
            RealServer(
                IPv4Address((base + rng.randrange(spread)) % (1 << 32)), rng.choice((80, 81))
            )
            for _ in range(rng.randrange(1, 40))
        )
        vs = VirtualServer(Proto.TCP, IPv4Address("10.0.0.1"), 80, real_servers=servers)
        expected = sorted(servers, key=functools.cmp_to_key(save._cmp_dests))
        assert save._sorted_dests(vs) == expected
