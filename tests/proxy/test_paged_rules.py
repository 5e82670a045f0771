"""A node's iptables-save text as rows spelled when read (`NodePages`): the same text, each
rule found where it is, and the counts it rests on equal to what sync writes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from model.cluster import Cluster
from sim.cluster import rules as node_tables
from sim.cluster.load import demo_cluster
from sim.cluster.rules import node_pages, node_rules, render_rules
from sim.proxy.endpoints import categorize, port_endpoints
from sim.proxy.iptables import lazy, paged
from sim.proxy.iptables.lazy import LazyRules, service_table
from sim.proxy.iptables.sync import Restore, port_chains, sync_context, write_port
from tests.proxy.lazy_support import fresh_node_caches, pages_of
from tests.proxy.test_lazy_rules import CLUSTERS


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    lazy._common.clear()
    with fresh_node_caches():
        yield


@pytest.fixture(scope="module", params=sorted(CLUSTERS))
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return CLUSTERS[request.param]()


def test_the_rows_are_the_whole_text(cluster: Cluster) -> None:
    for node in cluster.nodes[:4]:
        pages = pages_of(cluster, node.name)
        whole = render_rules(cluster, node.name)
        assert "".join(f"{pages.row(r)[0]}\n" for r in range(len(pages))) == whole
        assert len(pages) == whole.count("\n")
        assert pages.rule_count == sum(line.startswith("-A ") for line in whole.splitlines())


def test_each_rule_is_numbered_in_its_chain_and_found_there(cluster: Cluster) -> None:
    node = cluster.nodes[-1].name
    pages = pages_of(cluster, node)
    counted: dict[tuple[str, str], int] = {}
    table = ""
    for r, line in enumerate(render_rules(cluster, node).splitlines()):
        if line.startswith("*"):
            table = line[1:]
        found_line, found_table, chain, number = pages.row(r)
        assert (found_line, found_table) == (line, table)
        if line.startswith("-A "):
            key = (table, line.split()[1])
            counted[key] = counted.get(key, 0) + 1
            assert (chain, number) == (key[1], counted[key])
            assert pages.find(table, chain, number) == r
        else:
            assert (chain, number) == ("", 0)
    assert pages.most_rules == max(counted.values())
    assert pages.chain_width == max(len(chain) for _, chain in counted)
    assert pages.find("nat", "KUBE-SERVICES", counted["nat", "KUBE-SERVICES"] + 1) is None
    assert pages.find("nat", "KUBE-NO-SUCH-CHAIN", 1) is None
    with pytest.raises(IndexError):
        pages.row(len(pages))


def test_port_chains_counts_what_write_port_writes(cluster: Cluster) -> None:
    services = service_table(cluster)
    for node in cluster.nodes:
        ctx = sync_context(cluster, node, large=services.large)
        for name, svc, port in services.ports:
            endpoints = port_endpoints(cluster, svc, port, node.name)
            out = Restore()
            write_port(out, ctx, name, svc, port, endpoints)
            written = dict.fromkeys(out.nat_chains, 0)
            for rule in out.nat_rules:
                if rule[1] in written:
                    written[rule[1]] += 1
            counted = port_chains(ctx, name, svc, port, categorize(endpoints, svc, port))
            assert counted == written, name


def test_a_miscounted_chain_is_caught_when_its_line_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def one_more(*args: object) -> dict[str, int]:
        counted = port_chains(*args)  # type: ignore[arg-type]
        return {chain: rules + chain.startswith("KUBE-SEP-") for chain, rules in counted.items()}

    monkeypatch.setattr(paged, "port_chains", one_more)
    cluster = demo_cluster()
    pages = pages_of(cluster, "node-a")
    assert len(pages) > render_rules(cluster, "node-a").count("\n")
    sep = next(
        r for r in range(len(pages)) if pages.row(r)[0].startswith(":KUBE-SEP-")
    )  # the first SEP chain's declaration
    name = pages.row(sep)[0][1:].split()[0]
    at = pages.find("nat", name, 1)
    assert at is not None
    with pytest.raises(AssertionError, match="rules rendered"):
        pages.row(at)


def test_pages_are_quick_once_what_every_node_shares_is_counted() -> None:
    cluster = demo_cluster()
    assert isinstance(node_rules(cluster, "node-a"), LazyRules)
    assert not node_tables.pages_ready(cluster, "node-a")
    assert node_pages(cluster, "node-a") is not None
    assert node_tables.pages_ready(cluster, "node-a")
    # What every node shares is counted: another node's own part is quick to count.
    assert node_tables.pages_ready(cluster, "node-b")
