"""A node's or pod's netns built from indexes equals the one built from the whole cluster.

`sim.cluster.network` answers which EndpointSlices list an address and which node
announces a LoadBalancer IP from indexes built once per cluster, and keeps the
namespaces it built in a cache bounded by what they hold. These tests hold it
against the whole-cluster computation it replaced (written out here, as it was),
on a generated cluster with LoadBalancer IPs on and off the node network and
both externalTrafficPolicies.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network

import pytest

from model.cluster import (
    Cluster,
    CNIPlugin,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Node,
    Service,
    ServiceType,
    TrafficPolicy,
)
from model.packet import Proto
from sim.cluster import network as network_module
from sim.cluster.generate import generate
from sim.cluster.load import with_derived_slices
from sim.cluster.network import ClusterNetwork, node_ns_name, pod_ns_name
from sim.kernel.route import NodeRouteTable, Route, RouteTable, SharedRoutes
from sim.readers.cluster import parse_cluster


def _awkward(cluster: Cluster) -> Cluster:
    """Every third Service made a LoadBalancer (as far as the network sees one): an IP on the
    node network for odd ones, elsewhere for even ones; every third externalTrafficPolicy
    Local."""
    services = list(cluster.services)
    top = max(int(n.internal_ip) for n in cluster.nodes)
    made = 0
    for i, service in enumerate(services):
        if i % 3:
            continue
        made += 1
        ip = IPv4Address(top + 10 + made) if made % 2 else IPv4Address(f"203.0.113.{made}")
        policy = TrafficPolicy.LOCAL if made % 3 == 0 else service.external_traffic_policy
        services[i] = service.model_copy(
            update={
                "type": ServiceType.LOAD_BALANCER,
                "load_balancer_ips": (ip,),
                "external_traffic_policy": policy,
            }
        )
    assert made >= 6, "the generated cluster has too few Services to test with"
    # A second Service listing a pod that a first one lists, on a port of its own and on one
    # the first lists: the first slice in the cluster's order names the shared port.
    first = next(s for s in cluster.endpoint_slices if s.endpoints and s.ports)
    extra = EndpointSlice(
        name="extra-1",
        namespace=first.namespace,
        service="extra",
        ports=(EndpointPort(port=9999), first.ports[0]),
        endpoints=(Endpoint(ip=IPv4Address("10.255.0.9")), first.endpoints[-1]),
    )
    slices = (*cluster.endpoint_slices, extra)
    return cluster.model_copy(update={"services": tuple(services), "endpoint_slices": slices})


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    parsed = parse_cluster(generate(nodes=12, pods=200, services=40, seed=3), "gen.json")
    return _awkward(with_derived_slices(parsed, "gen.json"))


def _whole_listed(cluster: Cluster) -> dict[IPv4Address, dict[tuple[Proto, int], str]]:
    """Per address, the ports some EndpointSlice lists there: every slice, every endpoint."""
    found: dict[IPv4Address, dict[tuple[Proto, int], str]] = {}
    for slice_ in cluster.endpoint_slices:
        ports = [(p.protocol, p.port) for p in slice_.ports]
        for endpoint in slice_.endpoints:
            at = found.setdefault(endpoint.ip, {})
            for port in ports:
                at.setdefault(port, f"{slice_.namespace}/{slice_.service}")
    return found


def _whole_load_balanced(cluster: Cluster, service: Service) -> list[Node]:
    if service.external_traffic_policy is TrafficPolicy.LOCAL:
        ready = {
            e.node
            for s in cluster.endpoint_slices
            if (s.namespace, s.service) == (service.namespace, service.name)
            for e in s.endpoints
            if e.ready
        }
        return [n for n in cluster.nodes if n.name in ready]
    return list(cluster.nodes)


def _whole_announced(cluster: Cluster, network: ClusterNetwork) -> dict[IPv4Address, str]:
    """Each LoadBalancer IP on the node network → the first node that may take its traffic."""
    found: dict[IPv4Address, str] = {}
    for service in cluster.services:
        addrs = [ip for ip in service.load_balancer_ips if ip in network.node_network]
        nodes = _whole_load_balanced(cluster, service)
        for ip in addrs if nodes else []:
            found[ip] = nodes[0].name
    return found


def test_every_address_lists_the_ports_the_whole_cluster_lists(cluster: Cluster) -> None:
    network = ClusterNetwork(cluster)
    whole = _whole_listed(cluster)
    addrs = {p.ip for p in cluster.pods} | {n.internal_ip for n in cluster.nodes} | set(whole)
    assert any(len(ports) > 1 for ports in whole.values())
    for addr in sorted(addrs):
        assert list(network.listed_at(addr).items()) == list(whole.get(addr, {}).items()), addr


def test_a_pod_and_a_node_netns_list_what_the_slices_list_there(cluster: Cluster) -> None:
    network = ClusterNetwork(cluster)
    whole = _whole_listed(cluster)
    pod = next(p for p in cluster.pods if not p.host_network and whole.get(p.ip))
    listed = network.netns(pod_ns_name(pod)).listed
    assert dict(listed) == whole[pod.ip]
    assert listed.get(next(iter(whole[pod.ip]))) == next(iter(whole[pod.ip].values()))
    assert listed.get((Proto.UDP, 1)) is None
    node = cluster.nodes[0]
    assert dict(network.netns(node_ns_name(node.name)).listed) == whole.get(node.internal_ip, {})


def test_the_node_that_announces_each_load_balancer_ip_is_the_first_that_may_take_it(
    cluster: Cluster,
) -> None:
    network = ClusterNetwork(cluster)
    whole = _whole_announced(cluster, network)
    local = [
        s
        for s in cluster.services
        if s.external_traffic_policy is TrafficPolicy.LOCAL
        and any(ip in network.node_network for ip in s.load_balancer_ips)
    ]
    assert whole and local, "the cluster has no LoadBalancer IP on the node network to test"
    # Local policy elects a node with a ready endpoint, not simply the first node.
    assert any(whole[s.load_balancer_ips[0]] != cluster.nodes[0].name for s in local)
    for ip, name in whole.items():
        assert network.segment_owner(ip) == (node_ns_name(name), "eth0")
        note = network.arp_note(ip)
        assert note is not None and note.startswith(f"kubehop assumes {name} answers ARP")
    for node in cluster.nodes:
        ns = network.netns(node_ns_name(node.name))
        assert ns.proxy_arp == tuple(ip for ip, n in whole.items() if n == node.name)


def test_the_router_sends_each_load_balancer_ip_elsewhere_to_the_nodes_that_may_take_it(
    cluster: Cluster,
) -> None:
    network = ClusterNetwork(cluster)
    routes = {r.dst.network_address: r for r in network.netns("router").routes.routes}
    checked = 0
    for service in cluster.services:
        for ip in service.load_balancer_ips:
            if ip in network.node_network:
                continue
            nodes = tuple(n.internal_ip for n in _whole_load_balanced(cluster, service))
            route = routes.get(ip)
            assert (route is not None) == bool(nodes), ip
            if route is not None:
                assert (route.nexthops or (route.via,)) == nodes
                checked += 1
    assert checked


def test_the_cache_holds_no_more_than_its_bound_and_rebuilds_what_it_dropped(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = ClusterNetwork(cluster)
    first = network.netns(node_ns_name(cluster.nodes[0].name))
    one_node = network_module.held_entries(first)
    monkeypatch.setattr(network_module, "CACHE_ENTRIES", 3 * one_node)
    for node in cluster.nodes:
        network.netns(node_ns_name(node.name))
        assert network.cached_entries() <= 3 * one_node + one_node
    for pod in cluster.pods[:50]:
        network.netns(pod_ns_name(pod))
        assert network.cached_entries() <= 3 * one_node + one_node
    again = network.netns(node_ns_name(cluster.nodes[0].name))
    assert again is not first
    assert again.interfaces == first.interfaces
    assert again.routes == first.routes
    assert dict(again.listed) == dict(first.listed)


@pytest.mark.parametrize("plugin", list(CNIPlugin), ids=str)
def test_a_node_routes_each_address_as_its_whole_table_would(
    cluster: Cluster, plugin: CNIPlugin
) -> None:
    wired = cluster.model_copy(update={"cni": cluster.cni.model_copy(update={"plugin": plugin})})
    network = ClusterNetwork(wired)
    rng = random.Random(1)
    addrs = [p.ip for p in wired.pods[::7]] + [n.internal_ip for n in wired.nodes]
    for node in wired.nodes:
        if node.pod_cidr is not None:
            addrs += [node.pod_cidr.network_address, node.pod_cidr.broadcast_address]
    addrs += [IPv4Address(rng.getrandbits(32)) for _ in range(100)]
    for node in wired.nodes:
        table = network.netns(node_ns_name(node.name)).routes
        assert isinstance(table, NodeRouteTable)
        looked_up = [table.lookup(a) for a in addrs]
        assert "routes" not in table.__dict__, "a lookup listed the node's whole table"
        whole = RouteTable(table.routes)
        assert looked_up == [whole.lookup(a) for a in addrs], node.name
        # Every other node's pods are routed, none of the node's own through another node.
        others = [p for p in wired.pods if p.node != node.name and not p.host_network]
        assert all(whole.lookup(p.ip) is not None for p in others)
        own = [p for p in wired.pods if p.node == node.name and not p.host_network]
        assert all(not (r := whole.lookup(p.ip)) or r.via != node.internal_ip for p in own)


def test_shared_routes_leave_out_their_owner_and_the_first_for_a_prefix_wins() -> None:
    net = IPv4Network("10.9.0.0/24")
    other = IPv4Network("10.9.1.0/24")
    vias = (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), IPv4Address("10.0.0.3"))
    shared = SharedRoutes(
        ("a", "b", "c"),
        (net, net, other),
        lambda i: Route((net, net, other)[i], "eth0", via=vias[i]),
    )
    own = (Route(other, "cni0", scope="link"),)
    for owner, want in (("a", vias[1]), ("b", vias[0]), ("z", vias[0])):
        table = NodeRouteTable(own, shared, owner)
        found = table.lookup(IPv4Address("10.9.0.7"))
        assert found is not None and found.via == want
        assert table.lookup(IPv4Address("10.9.1.7")) == own[0]
        assert table.lookup(IPv4Address("10.9.2.7")) is None
        whole = RouteTable(table.routes)
        assert whole.lookup(IPv4Address("10.9.0.7")) == found
    assert [r.via for r in NodeRouteTable(own, shared, "c").routes] == [None, *vias[:2]]
