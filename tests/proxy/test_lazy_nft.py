"""nftables mode renders a node's table a Service port at a time: the same chains, elements, walks.

`sim.proxy.nftables.lazy` renders and parses only what packets reach; these
tests hold it to the whole render (`nft list table ip kube-proxy`, as `kubehop
rules` prints it): every chain equal rule for rule, every element a key finds
the same, every trace's JSON equal, and the node cache bounded by what it holds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address

import pytest

from model.cluster import Cluster, CNIPlugin, ServiceType
from model.ipset import IpSets
from model.netfilter import Ruleset
from model.nftables import NftChain, NftRuleset, NftSet, NftTable
from sim.cluster import rules as node_tables
from sim.cluster.generate import generate
from sim.cluster.load import demo_cluster, with_derived_slices, with_mode
from sim.cluster.rules import node_listing, node_rules
from sim.kernel.nftables.sets import exact_key, set_index
from sim.kernel.rules import ForeignRules
from sim.proxy import dnats_to
from sim.proxy.nftables import (
    NftablesMode,
    RenderedNftRules,
    render_node_nft,
    render_node_transaction,
)
from sim.proxy.nftables import lazy as nft_lazy
from sim.proxy.nftables.kubelet import kubelet_iptables
from sim.proxy.nftables.sync import PORT_SETS
from sim.readers.cluster import parse_cluster
from sim.readers.iptables_save import parse_iptables_save
from sim.readers.nftables import parse_nft
from sim.trace.request import Request
from sim.trace.tracer import trace
from tests import paths
from tests.cni.support import with_cni
from tests.proxy.lazy_support import dnat_candidates, fresh_node_caches, walks


def _zoo(variant: str = "") -> Cluster:
    # LoadBalancer IPs with source ranges, external IPs, a health check node port,
    # Local policies, session affinity, a Service without endpoints.
    text = (paths.DATA / "lab" / "zoo.yaml").read_text()
    if variant == "shared":
        # Four Services on one external address and port: in sync's order
        # "default/mute:", "default/web-itp:", "default/web-lb-local:", "default/web:http";
        # the first to write an element to a map owns it. web-lb-local's endpoint (Local
        # policy) is on n1 only.
        text = text.replace(
            "clusterIP: 10.3.0.22\n    selector: {app: web}",
            "clusterIP: 10.3.0.22\n    selector: {app: mute}",
        )
        for cluster_ip in ("10.3.0.21", "10.3.0.22", "10.3.0.40"):
            text = text.replace(
                f"clusterIP: {cluster_ip}\n",
                f"clusterIP: {cluster_ip}\n    externalIPs: [10.1.0.201]\n",
            )
    if variant == "node-in-range":
        # The firewall chain then lets node-1's own address through: node-1's differ.
        text = text.replace("[10.1.0.100/32]", "[10.1.0.100/32, 10.1.0.11/32]")
    return with_derived_slices(parse_cluster(text, "zoo.yaml"), "zoo.yaml")


def _generated(nodes: int, pods: int, services: int) -> Cluster:
    text = generate(nodes=nodes, pods=pods, services=services, seed=11)
    return with_derived_slices(parse_cluster(text, "gen.json"), "gen.json")


CLUSTERS: dict[str, Callable[[], Cluster]] = {
    "demo": demo_cluster,
    "demo-calico": lambda: with_cni(CNIPlugin.CALICO_VXLAN),
    "zoo": _zoo,
    "zoo-shared-address": lambda: _zoo("shared"),
    "zoo-node-in-range": lambda: _zoo("node-in-range"),
    "generated": lambda: _generated(6, 120, 30),
    "generated-large": lambda: _generated(5, 1100, 300),
}


def _nft(name: str) -> Cluster:
    return with_mode(CLUSTERS[name](), "nftables")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    with fresh_node_caches():
        yield


@pytest.fixture(scope="module", params=sorted(CLUSTERS))
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return _nft(request.param)


def _plain(chain: NftChain) -> NftChain:
    # A chain rendered a port at a time is in no text: no line numbers.
    rules = tuple(r.model_copy(update={"lineno": 0}) for r in chain.rules)
    return chain.model_copy(update={"lineno": 0, "rules": rules})


def _lazy(cluster: Cluster, node: str) -> tuple[RenderedNftRules, NftTable]:
    rules = node_rules(cluster, node)
    assert isinstance(rules, RenderedNftRules)
    table = rules.nft.table("ip", "kube-proxy")
    assert table is not None
    return rules, table


def _whole(cluster: Cluster, node: str) -> NftTable:
    (table,) = parse_nft(render_node_nft(cluster, node), source="whole").tables
    return table


def test_every_chain_equals_the_whole_render(cluster: Cluster) -> None:
    for node in cluster.nodes[:3]:
        whole = _whole(cluster, node.name)
        rules, table = _lazy(cluster, node.name)
        assert [c.name for c in table.base_chains("input")] == [
            c.name for c in whole.base_chains("input")
        ]
        for name, chain in whole.chains.items():
            found = table.chains.get(name)
            assert found is not None, name
            assert _plain(found) == _plain(chain), name
        # Names no sync writes: a port's prefix and no such port, another hash, none at all.
        some = next(name for name in whole.chains if name.startswith("endpoint-"))
        for name in ("service-ABCDEFGH-default/nothing/tcp/", "endpoint-" + "X" * 8 + some[17:]):
            assert name not in whole.chains
            assert table.chains.get(name) is None and name not in table.chains
        assert table.chains.get("no-such-chain") is None
        # None of it came from the whole text.
        assert not rules.table.listed and not rules.table.whole_parsed
        assert rules.nft_text == render_node_nft(cluster, node.name)


def _keys(nft_set: NftSet) -> list[tuple[int | str | frozenset[str], ...]]:
    keys = []
    for element in nft_set.elements:
        key = exact_key(nft_set.key_type, element.key)
        assert key is not None
        keys.append(key)
    return keys


def test_every_element_a_key_finds_equals_the_whole_render(cluster: Cluster) -> None:
    for node in cluster.nodes[:3]:
        whole = _whole(cluster, node.name)
        rules, table = _lazy(cluster, node.name)
        looked = 0
        for name, nft_set in whole.sets.items():
            lazy_set = table.sets.get(name)
            assert lazy_set is not None, name
            if name not in PORT_SETS:
                assert lazy_set.model_copy(update={"lineno": 0}) == nft_set.model_copy(
                    update={"lineno": 0}
                ), name
                continue
            exact = set_index(nft_set)
            assert not exact.ranges
            keys = _keys(nft_set)
            # Keys next to every element's: another port, protocol or address.
            near = [(*k[:-1], k[-1] + 1) for k in keys if isinstance(k[-1], int)]
            near += [(k[0] + 1, *k[1:]) for k in keys if isinstance(k[0], int)]
            for key in (*keys, *near):
                assert set_index(lazy_set).lookup(key) == exact.lookup(key), (name, key)
                looked += 1
        assert looked > 0
        assert not rules.table.listed and not rules.table.whole_parsed


def test_shared_addresses_find_the_first_service_ports_element() -> None:
    cluster = _nft("zoo-shared-address")
    key = (int(IPv4Address("10.1.0.201")), 6, 80)
    dropped = 0
    for node in cluster.nodes:
        _, table = _lazy(cluster, node.name)
        element = set_index(table.sets["service-ips"]).lookup(key)
        assert element is not None and element.value is not None
        assert element.value.startswith("goto external-") and "-default/mute/tcp/" in element.value
        # Without a local endpoint, the Local-policy Service drops what comes from outside:
        # its element, though earlier Services own the address too.
        found = set_index(table.sets["no-endpoint-services"]).lookup(key)
        if found is not None:
            assert (found.comment, found.value) == ("default/web-lb-local", "drop")
            dropped += 1
    assert 0 < dropped < len(cluster.nodes)


def test_the_whole_texts_are_the_whole_render(cluster: Cluster) -> None:
    node = cluster.nodes[-1].name
    rules, table = _lazy(cluster, node)
    assert rules.transaction == render_node_transaction(cluster, node)
    assert rules.nft_text == render_node_nft(cluster, node)
    assert node_listing(cluster, node).startswith(
        "# nft list table ip kube-proxy\n" + rules.nft_text.rstrip() + "\n"
    )
    # Questions about every chain go to the whole, parsed: line numbers and all.
    whole = _whole(cluster, node)
    assert list(table.chains) == list(whole.chains)
    assert dict(table.chains.items()) == dict(whole.chains.items())
    assert list(table.sets) == list(whole.sets)
    assert table.sets["service-ips"].elements == whole.sets["service-ips"].elements
    assert rules.table.whole_parsed


@dataclass(frozen=True)
class _WholeRules:
    """A node's rules as nftables mode made them before it rendered in parts."""

    node: str
    text: str
    ruleset: Ruleset
    nft_text: str
    nft: NftRuleset
    transaction: str
    rendered: bool = True
    ipsets: IpSets = field(default_factory=dict)


def _whole_rules(
    self: NftablesMode, cluster: Cluster, node: str, extra: ForeignRules | None = None
) -> _WholeRules:
    text = kubelet_iptables(extra)
    listing = render_node_nft(cluster, node)
    return _WholeRules(
        node=node,
        text=text,
        ruleset=parse_iptables_save(text, source=f"{node} (rendered)", lazy=True),
        nft_text=listing,
        nft=parse_nft(listing, source=f"{node} (rendered nft)", lazy=True),
        transaction="",
    )


def _requests(cluster: Cluster, count: int) -> list[Request]:
    rng = random.Random(3)
    pods = [p for p in cluster.pods if not p.host_network]
    services = [s for s in cluster.services if s.cluster_ip is not None and s.ports]
    nodeports = [(s, p) for s in cluster.services for p in s.ports if p.node_port]
    external = [
        f"{ip}:{p.port}"
        for s in cluster.services
        for ip in (*s.external_ips, *s.load_balancer_ips)
        for p in s.ports
    ]
    endpoints = [
        f"{ep.ip}:{port.port}"
        for slice_ in cluster.endpoint_slices
        for port in slice_.ports
        for ep in slice_.endpoints
    ]
    sources = [*(f"{p.namespace}/{p.name}" for p in pods), *(c.name for c in cluster.clients)]
    sources += [n.name for n in cluster.nodes[:2]]
    found: list[Request] = []
    for i in range(count):
        source = rng.choice(sources)
        kind = rng.random()
        pick = None
        if kind < 0.55 or not (nodeports or external):
            svc = rng.choice(services)
            destination = f"{svc.cluster_ip}:{rng.choice(svc.ports).port}"
            if kind < 0.1 and endpoints:
                pick = rng.choice(endpoints)
        elif kind < 0.6:
            # A ClusterIP's port no Service has: cluster-ips-check rejects it.
            svc = rng.choice(services)
            destination = f"{svc.cluster_ip}:1"
        elif kind < 0.85 and nodeports:
            svc, port = rng.choice(nodeports)
            node = rng.choice(cluster.nodes)
            destination = f"{node.internal_ip}:{port.node_port}"
        else:
            destination = rng.choice(external or [f"{services[0].cluster_ip}:1"])
        found.append(Request(source, destination, seed=i, pick=pick))
    return found


@pytest.mark.parametrize(
    "name", ["demo", "demo-calico", "zoo-shared-address", "zoo-node-in-range", "generated-large"]
)
def test_traces_through_parts_equal_traces_through_the_whole(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = _nft(name)
    requests = _requests(cluster, 70)
    parts = walks(cluster, requests)
    held = [r for _, r in node_tables._CACHE.values()]
    assert held and all(isinstance(r, RenderedNftRules) for r in held)
    # The walks rendered parts only (a pinned endpoint's check included).
    assert not any(r.table.listed or r.table.whole_parsed for r in held)  # type: ignore[attr-defined]
    node_tables._CACHE.clear()
    monkeypatch.setattr(NftablesMode, "node_rules", _whole_rules)
    whole = walks(cluster, requests)
    assert not any(isinstance(r, RenderedNftRules) for _, r in node_tables._CACHE.values())
    assert sum(not w.startswith("error") for w in whole) > len(whole) // 2
    for request, a, b in zip(requests, parts, whole, strict=True):
        assert a == b, request.command


def test_a_trace_renders_a_small_part_of_the_node() -> None:
    cluster = with_mode(_generated(5, 1100, 60), "nftables")
    svc = next(s for s in cluster.services if s.type is ServiceType.CLUSTER_IP)
    pod = cluster.pods[0]
    result = trace(cluster, Request(f"{pod.namespace}/{pod.name}", f"{svc.cluster_ip}:80", seed=1))
    assert result.hops
    rules = node_tables._CACHE[id(cluster), pod.node][1]
    assert isinstance(rules, RenderedNftRules)
    assert not rules.table.listed
    assert 0 < len(rules.table._parts) < 5
    whole = render_node_nft(cluster, pod.node)
    assert 0 < rules.held_bytes < len(whole)


def test_a_pinned_endpoint_is_found_in_the_parts_as_in_the_whole_text(cluster: Cluster) -> None:
    every = dnat_candidates(cluster)
    for node in cluster.nodes[:2]:
        rules, _ = _lazy(cluster, node.name)
        chosen = random.Random(2).sample(every, min(120, len(every)))
        asked = {e: rules.dnats_to(e) for e in chosen}
        assert not rules.table.listed
        text = _WholeRules(node.name, rules.text, rules.ruleset, rules.nft_text, rules.nft, "")
        assert asked == {e: dnats_to(text, e) for e in asked}
        assert any(asked.values()) and not all(asked.values())


def test_the_cache_counts_what_each_node_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = with_mode(_generated(6, 120, 30), "nftables")
    first = node_rules(cluster, cluster.nodes[0].name)
    fresh = node_tables.held_bytes(first)
    # Listed, a node holds its whole texts (and counts them).
    listing = node_listing(cluster, cluster.nodes[0].name)
    assert node_tables.held_bytes(first) >= fresh + len(listing)
    monkeypatch.setattr(node_tables, "CACHE_BYTES", int(fresh * 2.5))
    for node in cluster.nodes[1:]:
        node_rules(cluster, node.name)
        assert node_tables.cached_bytes() <= node_tables.CACHE_BYTES
    assert [n for _, n in node_tables._CACHE] == [n.name for n in cluster.nodes[-2:]]
    # The listed node was dropped with all it held.
    assert isinstance(first, RenderedNftRules)
    assert not first.table.listed and not first.table._parts


def test_a_port_index_is_built_once_per_cluster() -> None:
    cluster = _nft("zoo")
    assert nft_lazy.port_index(cluster) is nft_lazy.port_index(cluster)
    other = _nft("zoo")
    assert nft_lazy.port_index(other) is not nft_lazy.port_index(cluster)
