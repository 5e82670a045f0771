"""IPVS mode builds a node's virtual servers and answers its sets a Service port at a time.

`sim.proxy.ipvs.lazy` builds what packets ask for from indexes kept per
cluster; these tests hold it to the whole sync (what `kubehop rules` prints and
parses): every virtual server equal (real servers, scheduler, persistence,
flags, owner), every set-membership answer equal, the iptables text equal, and
traces' JSON equal, `rr`'s spread over many requests included.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Network

import pytest

from model.cluster import Cluster, CNIPlugin, ProxyMode
from model.ipset import IPSET_DIMENSIONS, IpSet
from model.ipvs import VirtualServer
from model.packet import Proto
from sim.cluster import rules as node_tables
from sim.cluster.generate import generate
from sim.cluster.load import demo_cluster, with_derived_slices
from sim.cluster.rules import node_listing, node_rules
from sim.cni import cni_of
from sim.proxy import dnats_to
from sim.proxy.ipvs import IPVS, RenderedIpvsRules, lazy, render_node_ipvs
from sim.proxy.ipvs.lazy import LazyIpvsTable, NodeIpvs
from sim.proxy.ipvs.save import iptables_save
from sim.proxy.ipvs.sync import IPSETS, sync
from sim.readers.cluster import parse_cluster
from sim.trace.report import trace_json
from sim.trace.request import Request
from sim.trace.tracer import repeat, trace
from tests import paths
from tests.cni.support import with_cni
from tests.proxy.lazy_support import dnat_candidates, fresh_node_caches, walks
from tests.proxy.test_lazy_rules import _requests

SCTP_SERVICE = """\
- apiVersion: v1
  kind: Service
  metadata: {name: sctp-np}
  spec:
    type: NodePort
    externalTrafficPolicy: Local
    clusterIP: 10.3.0.60
    selector: {app: web}
    ports:
    - {port: 9000, protocol: SCTP, targetPort: 8080, nodePort: 30600}
"""


def _ipvs(cluster: Cluster, **config: object) -> Cluster:
    fields = {name: getattr(cluster, name) for name in Cluster.model_fields}
    fields["kube_proxy"] = cluster.kube_proxy.model_copy(update={"mode": ProxyMode.IPVS, **config})
    return Cluster(**fields)


def _zoo(variant: str = "") -> Cluster:
    # LB IPs with source ranges, an external IP, eTP and iTP Local, a health check node port,
    # session affinity, UDP.
    text = (paths.DATA / "lab" / "zoo.yaml").read_text()
    if variant == "node-in-range":
        # node-1's own address is in the source range: node-1's sets and filter differ.
        text = text.replace("[10.1.0.100/32]", "[10.1.0.100/32, 10.1.0.11/32]")
    if variant == "more":
        # An external IP that is node-1's own address (not bound there), two Services at one
        # external IP and port (the later virtual server replaces the earlier), SCTP NodePorts.
        text = text.replace("externalIPs: [10.1.0.201]", "externalIPs: [10.1.0.201, 10.1.0.11]")
        text = text.replace(
            "internalTrafficPolicy: Local\n",
            "internalTrafficPolicy: Local\n    externalIPs: [10.1.0.201]\n",
        )
        marker = "- apiVersion: v1\n  kind: Service\n  metadata: {name: sticky-dns"
        text = text.replace(marker, SCTP_SERVICE + marker)
    return with_derived_slices(parse_cluster(text, "zoo.yaml"), "zoo.yaml")


def _generated(nodes: int, pods: int, services: int) -> Cluster:
    text = generate(nodes=nodes, pods=pods, services=services, seed=11)
    return with_derived_slices(parse_cluster(text, "gen.json"), "gen.json")


CLUSTERS: dict[str, Callable[[], Cluster]] = {
    "demo": lambda: _ipvs(demo_cluster()),
    "demo-sh-strict": lambda: _ipvs(demo_cluster(), ipvs_scheduler="sh", ipvs_strict_arp=True),
    "demo-calico": lambda: _ipvs(with_cni(CNIPlugin.CALICO_VXLAN)),
    "demo-flannel": lambda: _ipvs(with_cni(CNIPlugin.FLANNEL_VXLAN)),
    "zoo": lambda: _ipvs(_zoo()),
    "zoo-node-in-range": lambda: _ipvs(_zoo("node-in-range")),
    "zoo-more": lambda: _ipvs(_zoo("more")),
    # NodePorts on the InternalIP only; and on no address at all (no NodePort sets).
    "zoo-npa": lambda: _ipvs(_zoo("more"), node_port_addresses=(IPv4Network("10.1.0.0/24"),)),
    "zoo-npa-none": lambda: _ipvs(_zoo(), node_port_addresses=(IPv4Network("192.0.2.0/24"),)),
    "generated": lambda: _ipvs(_generated(6, 120, 30)),
    "generated-large": lambda: _ipvs(_generated(5, 1100, 700)),
}


@pytest.fixture(autouse=True)
def _in_parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Every cluster here is small: build their nodes in parts all the same.
    monkeypatch.setattr(lazy, "LAZY_FROM_PORTS", 0)
    lazy.ipvs_index.clear()
    with fresh_node_caches():
        yield


@pytest.fixture(scope="module", params=sorted(CLUSTERS))
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return CLUSTERS[request.param]()


def _state(cluster: Cluster, name: str) -> NodeIpvs:
    node = cluster.node(name)
    assert node is not None
    return NodeIpvs(cluster, node, cni_of(cluster).iptables_rules(node))


def _probes(whole: list[VirtualServer], cluster: Cluster) -> set[tuple[Proto, IPv4Address, int]]:
    """Every virtual server's key, and near misses: another port, protocol or address."""
    keys = {vs.key for vs in whole}
    near = set()
    for proto, ip, port in keys:
        near |= {(proto, ip, port + 1), (Proto.UDP if proto is Proto.TCP else Proto.TCP, ip, port)}
        near.add((proto, IPv4Address(int(ip) + 1), port))
    for node in cluster.nodes:
        near.add((Proto.TCP, node.internal_ip, 22))
    return keys | near


def test_each_virtual_server_equals_the_whole_sync(cluster: Cluster) -> None:
    for node in cluster.nodes[:3]:
        whole = sync(cluster, node)
        table = whole.table(f"{node.name} (rendered)", cluster)
        state = _state(cluster, node.name)
        lazy_table = LazyIpvsTable(state)
        probes = _probes(whole.services, cluster)
        found = 0
        for proto, ip, port in sorted(probes, key=str):
            expected = table.lookup(proto, ip, port)
            # Whole: real servers, scheduler, persistence, flags, owner and how, all equal.
            assert lazy_table.lookup(proto, ip, port) == expected, (node.name, proto, ip, port)
            found += expected is not None
            assert lazy_table.has_address(ip) == table.has_address(ip), ip
        assert found == len(table._by_key) > 0
        endpoints = {(rs.ip, rs.port) for vs in whole.services for rs in vs.real_servers}
        endpoints |= {(ip, port + 1) for ip, port in endpoints}
        endpoints |= {(pod.ip, 8080) for pod in cluster.pods if pod.ip is not None}
        for endpoint in sorted(endpoints):
            assert lazy_table.serves(endpoint) == table.serves(endpoint), endpoint
        # None of it came from the whole sync.
        assert not state.whole_rendered
        assert lazy_table.timeouts == table.timeouts
        assert lazy_table.strict_arp == table.strict_arp
        assert lazy_table.source == table.source
        # Asked for all, it gives the whole sync's.
        assert lazy_table.services == table.services
        assert lazy_table.bound == table.bound


def test_the_iptables_text_equals_the_whole_sync(cluster: Cluster) -> None:
    for node in cluster.nodes:
        extra = cni_of(cluster).iptables_rules(node)
        state = _state(cluster, node.name)
        assert state.text == iptables_save(sync(cluster, node), extra), node.name
        assert not state.whole_rendered


def _values(kind: str, member: tuple[object, ...]) -> list[tuple[object, ...]]:
    """A member as a packet's looked-up values, and values near it that are not."""
    exact: list[object] = []
    for part in member:
        if isinstance(part, IPv4Network):
            exact.append(part.network_address)
        else:
            assert isinstance(part, tuple)
            proto, port = part
            exact.append((proto or "tcp", port))
    found = [tuple(exact)]
    for at, part in enumerate(exact):
        for other in _near(part):
            found.append((*exact[:at], other, *exact[at + 1 :]))
    return found


def _near(part: object) -> list[object]:
    if isinstance(part, IPv4Address):
        return [IPv4Address(int(part) + 1), IPv4Address(int(part) - 1)]
    assert isinstance(part, tuple)
    proto, port = part
    other = "udp" if proto != "udp" else "sctp"
    return [(proto, port + 1), (other, port), ("sctp", port)]


def test_each_set_answers_as_the_whole_sync(cluster: Cluster) -> None:
    addresses = [n.internal_ip for n in cluster.nodes] + [p.ip for p in cluster.pods if p.ip]
    for node in cluster.nodes[:3]:
        parsed = sync(cluster, node).ipsets()
        state = _state(cluster, node.name)
        rules = node_rules(cluster, node.name)
        assert isinstance(rules, RenderedIpvsRules)
        probes: dict[str, set[tuple[object, ...]]] = {}
        for name, kind, _ in IPSETS:
            whole = parsed[name]
            assert state.filled(name) == bool(whole.members), (node.name, name)
            values: set[tuple[object, ...]] = set()
            for member in whole.members:
                values.update(_values(kind, member))
            # Values shaped as the set's, from addresses and ports no member has.
            dims = IPSET_DIMENSIONS[kind]
            rng = random.Random(name)
            for _ in range(20):
                values.add(
                    tuple(
                        (rng.choice(["tcp", "udp", "sctp"]), rng.choice([53, 80, 30500, 32000]))
                        if dim == "port"
                        else rng.choice(addresses)
                        for dim in dims
                    )
                )
            probes[name] = values
        asked = 0
        for name, values in probes.items():
            whole = parsed[name]
            lazy_set = rules.ipsets[name]
            assert (lazy_set.name, lazy_set.type, lazy_set.ipv6) == (name, whole.type, False)
            for value in sorted(values, key=str):
                expected = whole.contains(value)  # type: ignore[arg-type]
                assert state.contains(name, value) == expected, (node.name, name, value)  # type: ignore[arg-type]
                assert lazy_set.contains(value) == expected  # type: ignore[arg-type]
                asked += expected
        assert asked > 0
        assert not state.whole_rendered
        # Every member, when asked, as `ipset save` parses.
        for name, _, _ in IPSETS:
            assert rules.ipsets[name].members == parsed[name].members


def test_the_listings_are_the_whole_render(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = cluster.nodes[-1].name
    extra = cni_of(cluster).iptables_rules(cluster.nodes[-1])
    rules = node_rules(cluster, node)
    assert isinstance(rules, RenderedIpvsRules) and isinstance(rules.ipvs, LazyIpvsTable)
    before = rules.held_bytes
    assert before is not None and not rules.ipvs.state.whole_rendered
    # The rules pane renders in a worker what is not rendered yet.
    assert not node_tables.listing_ready(cluster, node)
    listed = node_listing(cluster, node)
    assert node_tables.listing_ready(cluster, node)
    monkeypatch.setattr(lazy, "LAZY_FROM_PORTS", 1 << 30)
    whole = IPVS.node_rules(cluster, node, extra)

    def walked(command: str, text: str) -> str:
        # The node shows the iptables text it walks: with Calico, Felix's rules placed.
        return rules.text if command == "iptables-save" else text

    # `kubehop rules`: the same text as a node rendered whole.
    rendered = render_node_ipvs(cluster, node, extra)
    assert listed == rendered.replace(whole.text.rstrip(), rules.text.rstrip())
    assert [(i.command, i.text) for i in rules.listings] == [
        (i.command, walked(i.command, i.text)) for i in whole.listings
    ]
    after = rules.held_bytes
    assert after is not None and after > before + len(listed)
    rules.release()
    assert not rules.ipvs.state.whole_rendered


def _built_in_parts() -> bool:
    return any(
        isinstance(getattr(r, "ipvs", None), LazyIpvsTable) for _, r in node_tables._CACHE.values()
    )


@pytest.mark.parametrize(
    ("name", "count"),
    [("demo", 60), ("demo-calico", 40), ("zoo-more", 60), ("zoo-node-in-range", 40),
     ("generated-large", 60)],
)  # fmt: skip
def test_traces_through_parts_equal_traces_through_the_whole(
    name: str, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = CLUSTERS[name]()
    requests = _requests(cluster, count)
    parts = walks(cluster, requests)
    assert _built_in_parts()
    assert not any(
        r.ipvs.state.whole_rendered  # type: ignore[attr-defined]
        for _, r in node_tables._CACHE.values()
    )
    node_tables._CACHE.clear()
    monkeypatch.setattr(lazy, "LAZY_FROM_PORTS", 1 << 30)
    whole = walks(cluster, requests)
    assert not _built_in_parts()
    assert sum(not w.startswith("error") for w in whole) > len(whole) // 2
    for request, a, b in zip(requests, parts, whole, strict=True):
        assert a == b, request.command


@pytest.mark.parametrize("scheduler", ["rr", "wrr", "lc", "sh"])
def test_many_requests_spread_as_through_the_whole(
    scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = _ipvs(demo_cluster(), ipvs_scheduler=scheduler)
    asked = [Request("pod1", "svc-b:80", seed=5), Request("client", "10.0.0.12:30080", seed=3)]
    parts = [[trace_json(t) for t in repeat(cluster, r, 12)] for r in asked]
    assert _built_in_parts()
    node_tables._CACHE.clear()
    monkeypatch.setattr(lazy, "LAZY_FROM_PORTS", 1 << 30)
    whole = [[trace_json(t) for t in repeat(cluster, r, 12)] for r in asked]
    assert not _built_in_parts()
    assert parts == whole
    if scheduler == "rr":
        endpoints = [t.endpoint for t in repeat(cluster, asked[0], 9)]
        assert len(set(endpoints)) == 3 and endpoints == endpoints[:3] * 3


def test_a_pinned_endpoint_is_found_without_the_whole(cluster: Cluster) -> None:
    node = cluster.nodes[0].name
    rules = node_rules(cluster, node)
    assert isinstance(rules, RenderedIpvsRules) and isinstance(rules.ipvs, LazyIpvsTable)
    asked = {e: dnats_to(rules, e) for e in dnat_candidates(cluster)}
    assert not rules.ipvs.state.whole_rendered
    whole = rules.ipvs.state.whole().table
    assert asked == {e: whole.serves(e) for e in asked}
    assert any(asked.values()) and not all(asked.values())


def test_a_trace_builds_a_small_part_of_the_node() -> None:
    cluster = CLUSTERS["generated-large"]()
    pod = next(p for p in cluster.pods if not p.host_network)
    svc = next(s for s in cluster.services if s.cluster_ip is not None and s.ports)
    result = trace(cluster, Request(f"{pod.namespace}/{pod.name}", f"{svc.cluster_ip}:80", seed=1))
    assert result.hops
    rules = node_tables._CACHE[id(cluster), pod.node][1]
    assert isinstance(rules, RenderedIpvsRules) and isinstance(rules.ipvs, LazyIpvsTable)
    state = rules.ipvs.state
    assert not state.whole_rendered
    assert 0 < len(state._built) < 10
    assert len(lazy.ipvs_index(cluster).ports) > 700


def test_small_clusters_are_rendered_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazy, "LAZY_FROM_PORTS", 1000)
    cluster = CLUSTERS["generated"]()
    rules = node_rules(cluster, cluster.nodes[0].name)
    assert isinstance(rules, RenderedIpvsRules)
    assert not isinstance(rules.ipvs, LazyIpvsTable) and rules.held_bytes is None
    assert node_tables.listing_ready(cluster, cluster.nodes[0].name)


def test_an_ipset_of_exact_members_answers_as_a_scan() -> None:
    members = (
        (IPv4Network("10.0.0.1/32"), ("tcp", 80)),
        (IPv4Network("10.0.0.2/32"), ("udp", 53)),
    )
    hashed = IpSet("s", "hash:ip,port", members)
    ports = IpSet("p", "bitmap:port", ((("", 30080),),))
    wide = IpSet("n", "hash:net", ((IPv4Network("10.0.0.0/24"),),))
    assert hashed._exact is not None and wide._exact is None
    assert hashed.contains((IPv4Address("10.0.0.1"), ("tcp", 80)))
    assert not hashed.contains((IPv4Address("10.0.0.1"), ("udp", 80)))
    assert not hashed.contains((IPv4Address("10.0.0.1"),))
    assert not hashed.contains((("tcp", 80), IPv4Address("10.0.0.1")))
    assert ports.contains((("udp", 30080),)) and not ports.contains((("udp", 30081),))
    assert wide.contains((IPv4Address("10.0.0.77"),))
