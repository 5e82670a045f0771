"""Clients outside the cluster, the node network and its router, as kubehop infers them.

A dump holds neither the node network's prefix nor its router: kubehop takes
the prefix from the nodes' InternalIPs alone and assumes the router, and every
hop that rests on that says so, as do the JSON warnings.
"""

from __future__ import annotations

import json

import pytest

from model.cluster import Cluster
from model.errors import RequestError
from model.trace import Direction, HopKind, Verdict
from sim.cluster.load import demo_cluster as demo
from sim.cluster.load import load, with_derived_slices
from sim.cluster.network import network_of
from sim.readers.cluster import parse_cluster
from sim.trace.report import trace_json
from sim.trace.request import Request
from sim.trace.tracer import trace
from tests import paths

DEMO_TEXT = paths.DEMO.read_text()

ROUTER_ON_DEMO = (
    "kubehop assumes the node network 10.0.0.0/24 (from the nodes' InternalIPs) has its router"
    " at 10.0.0.1, the network's first address: a dump names no gateway"
)


@pytest.fixture(scope="module")
def demo_cluster() -> Cluster:
    return demo()


def demo_with(old: str, new: str) -> Cluster:
    assert old in DEMO_TEXT
    text = DEMO_TEXT.replace(old, new)
    return with_derived_slices(parse_cluster(text, "demo.yaml"), "demo.yaml")


@pytest.mark.parametrize("client_ip", ["172.20.0.5", "203.0.113.5"])
def test_a_client_beyond_the_node_network_reaches_a_nodeport_through_the_router(
    client_ip: str,
) -> None:
    cluster = demo_with("ip: 10.0.0.100", f"ip: {client_ip}")
    assert network_of(cluster).node_network.compressed == "10.0.0.0/24"
    t = trace(cluster, Request("client", "10.0.0.12:30080", seed=1))
    assert t.verdict is Verdict.DELIVERED
    assert t.endpoint == "192.168.3.3:8080"
    request = [h for h in t.hops if h.direction is Direction.REQUEST]
    router = [h for h in request if h.where.netns == "router"]
    assert [h.kind for h in router] == [HopKind.RECEIVE, HopKind.ROUTE, HopKind.WIRE]
    assert router[-1].after.ttl == 63  # the router forwarded it
    first_route = next(h for h in request if h.kind is HopKind.ROUTE)
    assert first_route.detail == "ip route get 10.0.0.12: default via 10.0.0.1 dev eth0 onlink"
    assert first_route.note == (
        f"client is not on the node network 10.0.0.0/24, so it reaches the nodes through"
        f" their router; {ROUTER_ON_DEMO}"
    )
    # The answer finds its way back: node-b's default route, the router, the client.
    reply = [h for h in t.hops if h.direction is Direction.REPLY]
    assert any(h.where.netns == "router" for h in reply)
    assert reply[-1].kind is HopKind.DELIVER
    assert reply[-1].after.src.compressed == "10.0.0.12"
    assert ROUTER_ON_DEMO in json.loads(trace_json(t))["warnings"]


def test_an_address_the_file_does_not_list_is_a_client_outside_the_cluster(
    demo_cluster: Cluster,
) -> None:
    t = trace(demo_cluster, Request("203.0.113.9", "10.0.0.12:30080", seed=1))
    assert t.verdict is Verdict.DELIVERED
    send = t.hops[0]
    assert send.where.netns == "client/203.0.113.9"
    note = (
        "203.0.113.9 is no pod's, node's or listed client's address: kubehop takes it for a"
        " machine outside the cluster, beyond the node network, so it reaches the nodes"
        " through their router"
    )
    assert send.note == note
    assert note in t.warnings


def test_an_unlisted_address_on_the_node_network_is_the_nodes_neighbour(
    demo_cluster: Cluster,
) -> None:
    t = trace(demo_cluster, Request("10.0.0.77", "10.0.0.12:30080", seed=1))
    assert t.verdict is Verdict.DELIVERED
    assert not any(h.where.netns == "router" for h in t.hops)
    assert t.hops[0].note == (
        "10.0.0.77 is no pod's, node's or listed client's address: kubehop takes it for a"
        " machine outside the cluster, on the node network 10.0.0.0/24, a neighbour of the nodes"
    )


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("192.168.1.99", "it is in node-a's podCIDR 192.168.1.0/24"),
        ("10.101.100.102", "it is an address of Service default/svc-b"),
        ("127.0.0.5", "a loopback address is no machine's on a network"),
        ("224.0.0.1", "a multicast address is never a source"),
    ],
)
def test_an_address_inside_the_cluster_is_not_taken_for_a_client(
    source: str, why: str, demo_cluster: Cluster
) -> None:
    with pytest.raises(RequestError) as err:
        trace(demo_cluster, Request(source, "10.0.0.12:30080", seed=1))
    assert str(err.value) == (
        f"source {source}: no pod, node or external client has this address ({why})"
    )


def test_a_node_at_the_first_address_keeps_the_router_off_it() -> None:
    cluster = demo_with("address: 10.0.0.11", "address: 10.0.0.1")
    network = network_of(cluster)
    assert network.gateway[0].compressed == "10.0.0.254"
    t = trace(cluster, Request("node-b", "10.101.100.102:80", seed=1))
    assert t.verdict is Verdict.DELIVERED
    route = next(h for h in t.hops if h.kind is HopKind.ROUTE)
    assert route.detail.endswith("default via 10.0.0.254 dev eth0")
    assert route.note == (
        "kubehop assumes the node network 10.0.0.0/24 (from the nodes' InternalIPs) has its"
        " router at 10.0.0.254, its last usable address (10.0.0.1 is node-a's): a dump names"
        " no gateway"
    )


def test_the_node_network_comes_from_the_nodes_not_the_clients() -> None:
    cluster = demo_with("ip: 10.0.0.100", "ip: 203.0.113.5")
    assert cluster.node_network is not None
    assert cluster.node_network.compressed == "10.0.0.0/24"


ZOO = paths.DATA / "lab" / "zoo.yaml"


def test_a_load_balancer_ip_on_the_node_network_is_announced_by_one_node() -> None:
    cluster = load(ZOO)
    t = trace(cluster, Request("laptop", "10.1.0.200:80", seed=1))
    assert t.verdict is Verdict.DELIVERED
    wire = next(h for h in t.hops if h.kind is HopKind.WIRE)
    assert wire.detail.startswith("neighbour 10.1.0.200 lladdr ")
    assert wire.where.netns == "client/laptop"
    announced = (
        "kubehop assumes n1 answers ARP for default/web's LoadBalancer IP 10.1.0.200 on the node"
        " network (a layer-2 load balancer such as MetalLB elects one node to announce it, among"
        " all nodes (externalTrafficPolicy Cluster))"
    )
    assert wire.note == announced
    assert announced in t.warnings
    dnat = next(h for h in t.hops if h.kind is HopKind.NETFILTER and h.after.dst != h.before.dst)
    assert dnat.where.node == "n1" and dnat.before.dst.compressed == "10.1.0.200"


def test_a_load_balancer_ip_elsewhere_arrives_from_the_router_at_one_node_per_client() -> None:
    text = ZOO.read_text().replace("ingress: [{ip: 10.1.0.200}]", "ingress: [{ip: 198.51.100.7}]")
    cluster = with_derived_slices(parse_cluster(text, "zoo.yaml"), "zoo.yaml")
    reached = set()
    for seed in range(12):
        t = trace(cluster, Request("laptop", "198.51.100.7:80", seed=seed))
        assert t.verdict is Verdict.DELIVERED
        router = next(h for h in t.hops if h.where.netns == "router" and h.kind is HopKind.ROUTE)
        assert router.note is not None and router.note.startswith(
            "kubehop stands in for the cloud load balancer in front of default/web: 198.51.100.7"
            " goes to one of all nodes (externalTrafficPolicy Cluster) (n1 or n2), chosen by"
            " the flow hash of the source and destination addresses"
        )
        wire = next(h for h in t.hops if h.where.netns == "router" and h.kind is HopKind.WIRE)
        reached.add(wire.after.dst_mac)
    # The laptop's address and the LB IP decide the node: the same for every flow.
    assert len(reached) == 1
