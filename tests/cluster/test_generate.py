"""The scale generator writes clusters kubehop loads, the same for the same seed."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from model.cluster import Cluster, ServiceType
from model.errors import KubehopError
from sim.cluster.endpointslices import endpoint_ports, selected_pods
from sim.cluster.generate import generate
from sim.readers.cluster import parse_cluster


@pytest.fixture(scope="module")
def small() -> Cluster:
    return parse_cluster(generate(nodes=4, pods=60, services=10, seed=7), "gen.json")


def test_round_trip_counts(small: Cluster) -> None:
    assert (len(small.nodes), len(small.pods), len(small.services)) == (4, 60, 10)
    assert [c.name for c in small.clients] == ["client"]
    assert not small.kube_proxy.inferred and not small.cni.inferred
    assert small.warnings == ()


def test_addresses_follow_the_plan(small: Cluster) -> None:
    assert str(small.kube_proxy.cluster_cidr) == "10.128.0.0/9"
    assert [str(n.pod_cidr) for n in small.nodes] == [
        "10.128.0.0/24",
        "10.128.1.0/24",
        "10.128.2.0/24",
        "10.128.3.0/24",
    ]
    assert all(str(n.internal_ip).startswith("172.16.") for n in small.nodes)
    for pod in small.pods:
        node = small.node(pod.node)
        assert node is not None and node.pod_cidr is not None and pod.ip in node.pod_cidr


def test_pods_are_spread_over_nodes(small: Cluster) -> None:
    per_node = Counter(p.node for p in small.pods)
    assert sorted(per_node.values()) == [15, 15, 15, 15]


def test_explicit_slices_are_what_the_controller_would_write(small: Cluster) -> None:
    for service in small.services:
        written = {
            (str(e.ip), tuple((p.name, p.port) for p in s.ports), e.ready)
            for s in small.slices_of(service)
            for e in s.endpoints
        }
        expected = {
            (str(p.ip), tuple((q.name, q.port) for q in endpoint_ports(service, p)), p.ready)
            for p in selected_pods(service, small.pods)
        }
        assert written == expected, service.name


def test_big_services_are_cut_at_100_endpoints() -> None:
    cluster = parse_cluster(generate(nodes=3, pods=250, services=1, seed=1), "gen.json")
    assert [len(s.endpoints) for s in cluster.endpoint_slices] == [100, 100, 50]


def test_some_services_are_node_ports() -> None:
    cluster = parse_cluster(generate(nodes=2, pods=20, services=20, seed=3), "gen.json")
    node_ports = [s for s in cluster.services if s.type is ServiceType.NODE_PORT]
    assert [p.node_port for s in node_ports for p in s.ports if p.node_port] == [30000]


def test_pods_without_services() -> None:
    cluster = parse_cluster(generate(nodes=2, pods=5, services=0, seed=3), "gen.json")
    assert (len(cluster.pods), cluster.services) == (5, ())


def test_same_seed_same_file_other_seed_other_file() -> None:
    first = generate(nodes=5, pods=40, services=6, seed=11)
    assert generate(nodes=5, pods=40, services=6, seed=11) == first
    assert generate(nodes=5, pods=40, services=6, seed=12) != first


def test_output_is_a_kubectl_list_one_object_a_line() -> None:
    text = generate(nodes=2, pods=4, services=2, seed=1)
    document = json.loads(text)
    assert (document["apiVersion"], document["kind"]) == ("v1", "List")
    assert len(text.splitlines()) == len(document["items"]) + 2


@pytest.mark.parametrize(
    ("nodes", "pods", "message"),
    [
        (0, 1, "--nodes 0: must be 1-32768 (a /24 each in 10.128.0.0/9)"),
        (
            2,
            600,
            "--pods 600: 2 nodes hold at most 506 (253 a /24 podCIDR; Kubernetes' default is"
            " 110 a node)",
        ),
    ],
)
def test_impossible_sizes_are_refused(nodes: int, pods: int, message: str) -> None:
    with pytest.raises(KubehopError) as caught:
        generate(nodes=nodes, pods=pods, services=1, seed=1)
    assert str(caught.value) == message
