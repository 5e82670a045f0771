"""iptables mode renders a node a Service port at a time: the same chains, the same walks.

`sim.proxy.iptables.lazy` renders and parses only what packets reach; these
tests hold it to the whole render (`kubehop rules`, `render_rules`): every chain
equal rule for rule, every trace's JSON equal, and the node cache bounded by
the bytes it holds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from model.cluster import Cluster, CNIPlugin, ProxyMode, ServiceType
from model.netfilter import RejectTarget, Rule, Table
from sim.cluster import rules as node_tables
from sim.cluster.generate import generate
from sim.cluster.load import demo_cluster, with_derived_slices
from sim.cluster.rules import node_rules, render_rules
from sim.proxy.iptables import lazy
from sim.proxy.iptables.lazy import SHARED, LazyRules
from sim.proxy.iptables.names import KUBE_SERVICES
from sim.readers.cluster import parse_cluster
from sim.readers.iptables_save import parse_iptables_save
from sim.trace.request import Request
from sim.trace.tracer import trace
from tests import paths
from tests.cni.support import with_cni
from tests.proxy.lazy_support import dnat_candidates, fresh_node_caches, walks


def _zoo(node_in_range: bool = False) -> Cluster:
    # LoadBalancer IPs with source ranges, external IPs, a health check node port.
    text = (paths.DATA / "lab" / "zoo.yaml").read_text()
    if node_in_range:
        # The firewall chain then lets node-1's own address through: node-1's differ.
        text = text.replace("[10.1.0.100/32]", "[10.1.0.100/32, 10.1.0.11/32]")
    return with_derived_slices(parse_cluster(text, "zoo.yaml"), "zoo.yaml")


def _generated(nodes: int, pods: int, services: int) -> Cluster:
    text = generate(nodes=nodes, pods=pods, services=services, seed=11)
    return with_derived_slices(parse_cluster(text, "gen.json"), "gen.json")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    lazy._common.clear()
    with fresh_node_caches():
        yield


CLUSTERS: dict[str, Callable[[], Cluster]] = {
    "demo": demo_cluster,
    "demo-calico": lambda: with_cni(CNIPlugin.CALICO_VXLAN),
    "demo-flannel": lambda: with_cni(CNIPlugin.FLANNEL_VXLAN),
    "zoo": _zoo,
    "zoo-node-in-range": lambda: _zoo(node_in_range=True),
    # Under 1,000 endpoints: per-endpoint comments; over: none (kube-proxy's large mode).
    "generated": lambda: _generated(6, 120, 30),
    "generated-large": lambda: _generated(5, 1100, 700),
}


@pytest.fixture(scope="module", params=sorted(CLUSTERS))
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return CLUSTERS[request.param]()


def _plain(rules: object) -> list[Rule]:
    # A rule rendered a port at a time has no line in a text: no line number.
    return [r.model_copy(update={"lineno": 0}) for r in rules]  # type: ignore[attr-defined]


def test_every_chain_equals_the_whole_render(cluster: Cluster) -> None:
    for node in cluster.nodes[:3]:
        whole = parse_iptables_save(render_rules(cluster, node.name), source="whole")
        parts = node_rules(cluster, node.name)
        assert isinstance(parts, LazyRules)
        # Reading the shared chains renders every Service port (each has a rule in
        # one of the KUBE-SERVICES chains), so every port's own chain comes from its part.
        for table, name in SHARED:
            chain = parts.ruleset.tables[table][name]
            assert _plain(chain.rules) == _plain(whole.tables[table][name].rules), name
        for table, chains in whole.tables.items():
            for name, chain in chains.items():
                lazy_chain = parts.ruleset.tables[table][name]
                assert lazy_chain.policy == chain.policy
                assert _plain(lazy_chain.rules) == _plain(chain.rules), f"{table.value}/{name}"
        # None of it came from the whole text.
        assert parts._parts.text is None and parts._parts.whole is None
        assert parts.text == render_rules(cluster, node.name)
        for table, chains in whole.tables.items():
            assert set(parts.ruleset.tables[table]) == set(chains)


def _requests(cluster: Cluster, count: int) -> list[Request]:
    rng = random.Random(3)
    pods = [p for p in cluster.pods if not p.host_network]
    services = [s for s in cluster.services if s.cluster_ip is not None and s.ports]
    nodeports = [
        (s, p) for s in cluster.services for p in s.ports if p.node_port and s.type is not None
    ]
    external = [
        f"{ip}:{p.port}"
        for s in cluster.services
        for ip in (*s.external_ips, *s.load_balancer_ips)
        for p in s.ports
    ]
    sources = [*(f"{p.namespace}/{p.name}" for p in pods), *(c.name for c in cluster.clients)]
    found: list[Request] = []
    for i in range(count):
        source = rng.choice(sources)
        kind = rng.random()
        if kind < 0.6 or not (nodeports or external):
            svc = rng.choice(services)
            destination = f"{svc.cluster_ip}:{rng.choice(svc.ports).port}"
        elif kind < 0.85 and nodeports:
            svc, port = rng.choice(nodeports)
            node = rng.choice(cluster.nodes)
            destination = f"{node.internal_ip}:{port.node_port}"
        else:
            destination = rng.choice(external or [f"{services[0].cluster_ip}:1"])
        found.append(Request(source, destination, seed=i))
    return found


@pytest.mark.parametrize("name", ["demo", "demo-calico", "zoo-node-in-range", "generated-large"])
def test_traces_through_parts_equal_traces_through_the_whole(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = CLUSTERS[name]()
    requests = _requests(cluster, 80)
    parts = walks(cluster, requests)
    assert any(isinstance(r, LazyRules) for _, r in node_tables._CACHE.values())
    node_tables._CACHE.clear()
    monkeypatch.setattr(lazy, "renders_in_parts", lambda extra: False)
    whole = walks(cluster, requests)
    assert not any(isinstance(r, LazyRules) for _, r in node_tables._CACHE.values())
    assert sum(not w.startswith("error") for w in whole) > len(whole) // 2
    for request, a, b in zip(requests, parts, whole, strict=True):
        assert a == b, request.command


def test_a_trace_renders_a_small_part_of_the_node() -> None:
    cluster = _generated(5, 1100, 60)
    svc = next(s for s in cluster.services if s.type is ServiceType.CLUSTER_IP)
    pod = cluster.pods[0]
    result = trace(cluster, Request(f"{pod.namespace}/{pod.name}", f"{svc.cluster_ip}:80", seed=1))
    assert result.hops
    rules = node_tables._CACHE[id(cluster), pod.node][1]
    assert isinstance(rules, LazyRules)
    assert rules._parts.text is None
    assert len(rules._parts.lines) < 10
    whole = render_rules(cluster, pod.node)
    assert 0 < rules.held_bytes < len(whole)


def test_a_trace_past_a_long_chain_of_rejects_renders_only_its_own_port() -> None:
    # 40 Services without endpoints: 40 REJECT rules in filter's KUBE-SERVICES, which
    # every new connection walks; 60 with: as many jumps in nat's. Both chains are long
    # enough to be indexed, so only the destination's port is rendered for the walk.
    whole = _generated(5, 400, 100)
    empty = {s.key for s in whole.services[:40]}
    cluster = whole.model_copy(
        update={
            "endpoint_slices": tuple(
                s for s in whole.endpoint_slices if f"{s.namespace}/{s.service}" not in empty
            )
        }
    )
    svc = next(
        s
        for s in cluster.services[40:]
        if s.type is ServiceType.CLUSTER_IP and cluster.slices_of(s)
    )
    pod = cluster.pods[0]
    result = trace(cluster, Request(f"{pod.namespace}/{pod.name}", f"{svc.cluster_ip}:80", seed=1))
    assert result.hops
    rules = node_tables._CACHE[id(cluster), pod.node][1]
    assert isinstance(rules, LazyRules)
    assert len(lazy._common(cluster).lines) < 10
    # (Reading the whole chain renders every port with a rule in it.)
    filter_services = rules.ruleset.tables[Table.FILTER][KUBE_SERVICES]
    assert sum(isinstance(r.target, RejectTarget) for r in filter_services.rules) >= 40


def test_the_cache_stays_under_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = _generated(30, 600, 60)
    monkeypatch.setattr(node_tables, "CACHE_BYTES", 600_000)
    monkeypatch.setattr(lazy, "COMMON_BYTES", 200_000)
    pods = [p for p in cluster.pods if not p.host_network]
    services = [s for s in cluster.services if s.cluster_ip is not None]
    rng = random.Random(5)
    seen: dict[int, LazyRules] = {}
    peak = common = 0
    for i in range(100):
        pod, svc = rng.choice(pods), rng.choice(services)
        trace(
            cluster,
            Request(f"{pod.namespace}/{pod.name}", f"{svc.cluster_ip}:{svc.ports[0].port}", seed=i),
        )
        # A node coming in brings the total back under the bound.
        node = rng.choice(
            [n.name for n in cluster.nodes if (id(cluster), n.name) not in node_tables._CACHE]
        )
        node_rules(cluster, node)
        assert node_tables.cached_bytes() <= node_tables.CACHE_BYTES
        # The Service ports whose rules every node shares, parsed once for all.
        assert lazy.common_bytes() <= lazy.COMMON_BYTES
        common = max(common, lazy.common_bytes())
        peak = max(peak, len(node_tables._CACHE))
        seen.update((id(r), r) for _, r in node_tables._CACHE.values() if isinstance(r, LazyRules))
    # It kept several nodes and dropped others: the bound decided, not a count.
    assert 1 < peak < len(cluster.nodes)
    assert common > lazy.COMMON_BYTES // 2
    kept = {id(r) for _, r in node_tables._CACHE.values()}
    dropped = [r for key, r in seen.items() if key not in kept]
    # What it dropped holds nothing more, though a walk's chains may still refer to it.
    assert dropped and all(not r._parts.lines and not r._parts.runs for r in dropped)
    assert not any(dict.__len__(c) for r in dropped for c in r.ruleset.tables.values())


def test_a_traced_node_is_listed_when_asked_not_before() -> None:
    cluster = demo_cluster()
    trace(cluster, Request("pod1", "10.101.100.102:80", seed=1))
    traced = next(iter(node_tables._CACHE))[1]
    # The rules pane asks before it reads the text on the event loop.
    assert not node_tables.listing_ready(cluster, traced)
    assert node_tables.node_listing(cluster, traced) == render_rules(cluster, traced)
    assert node_tables.listing_ready(cluster, traced)
    assert not node_tables.listing_ready(cluster, "no-such-node")


def test_a_pinned_endpoint_is_found_in_the_parts_as_in_the_whole_text(cluster: Cluster) -> None:
    from sim.proxy import dnats_to

    every = dnat_candidates(cluster)
    for node in cluster.nodes[:2]:
        rules = node_rules(cluster, node.name)
        assert isinstance(rules, LazyRules)
        chosen = random.Random(2).sample(every, min(120, len(every)))
        asked = {e: rules.dnats_to(e) for e in chosen}
        assert rules._parts.text is None
        assert asked == {e: dnats_to(rules, e) for e in asked}
        assert any(asked.values()) and not all(asked.values())


# nftables mode renders its table in parts too: tests/proxy/test_lazy_nft.py bounds it.
@pytest.mark.parametrize("mode", [ProxyMode.IPVS])
def test_nodes_rendered_whole_are_bounded_by_their_size(
    mode: ProxyMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = _generated(6, 120, 30)
    fields = {name: getattr(base, name) for name in Cluster.model_fields}
    fields["kube_proxy"] = base.kube_proxy.model_copy(update={"mode": mode})
    cluster = Cluster(**fields)
    first = node_rules(cluster, cluster.nodes[0].name)
    # The texts a person sees (nft list, ipvsadm-save, ipset save, iptables-save) and more.
    size = node_tables.held_bytes(first)
    assert size >= len(node_tables.node_listing(cluster, cluster.nodes[0].name))
    monkeypatch.setattr(node_tables, "CACHE_BYTES", int(size * 2.5))
    for node in cluster.nodes[1:]:
        node_rules(cluster, node.name)
        assert node_tables.cached_bytes() <= node_tables.CACHE_BYTES
    assert [n for _, n in node_tables._CACHE] == [n.name for n in cluster.nodes[-2:]]
