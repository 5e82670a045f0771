"""Cluster edits (sim/edits.py): what the controllers and host-local IPAM would do."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network

import pytest

from model.cluster import Cluster, Node
from model.errors import KubehopError, RequestError
from sim.cluster import edits
from sim.cluster.load import demo_cluster, with_cni
from sim.cluster.rules import node_rules
from sim.trace.request import Request
from sim.trace.tracer import trace

GENERATED = re.compile(r"^backend-5d8f7b-[bcdfghjklmnpqrstvwxz2456789]{5}$")


@pytest.fixture
def cluster() -> Cluster:
    return demo_cluster()


def svc_b_ips(cluster: Cluster) -> set[str]:
    service = cluster.service("default", "svc-b")
    assert service is not None
    return {str(e.ip) for s in cluster.slices_of(service) for e in s.endpoints}


def test_deleting_an_owned_pod_makes_a_replacement_on_its_node(cluster: Cluster) -> None:
    result = edits.delete_pod(cluster, "default", "pod4", seed=3)
    after = result.cluster
    assert after.pod("default", "pod4") is None
    (new,) = result.added
    assert GENERATED.match(new.name), new.name
    assert new.node == "node-b"
    # node-b holds pod4 (.2, now gone) and myapp-1 (.3): host-local goes on after
    # the last address it handed out instead of reusing the one just freed.
    assert new.ip == IPv4Address("192.168.2.4")
    assert after.pod("default", new.name) == new
    assert new.owner == cluster.pod("default", "pod4").owner  # type: ignore[union-attr]


def test_deleting_a_pod_updates_its_services_endpoints(cluster: Cluster) -> None:
    before = svc_b_ips(cluster)
    result = edits.delete_pod(cluster, "default", "pod4", seed=3)
    after = svc_b_ips(result.cluster)
    assert "192.168.2.2" in before and "192.168.2.2" not in after
    assert str(result.added[0].ip) in after
    assert len(after) == len(before)


def test_deleting_a_pod_changes_the_rules_and_the_diff_shows_it(cluster: Cluster) -> None:
    result = edits.delete_pod(cluster, "default", "pod4", seed=3)
    old = node_rules(cluster, "node-a").text
    new = node_rules(result.cluster, "node-a").text
    diff = edits.rules_diff(old, new)
    removed = [line for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line for line in diff if line.startswith("+") and not line.startswith("+++")]
    assert any("192.168.2.2" in line for line in removed)
    assert any("192.168.2.4" in line for line in added)
    assert not any("192.168.2.2" in line for line in added)


def test_the_next_trace_reaches_the_replacement_not_the_deleted_pod(cluster: Cluster) -> None:
    result = edits.delete_pod(cluster, "default", "pod4", seed=3)
    reached = trace(result.cluster, Request("pod1", "svc-b:80", seed=1, pick="192.168.2.4:8080"))
    assert reached.endpoint == "192.168.2.4:8080"
    with pytest.raises(KubehopError):
        trace(result.cluster, Request("pod1", "svc-b:80", seed=1, pick="192.168.2.2:8080"))


def test_deleting_an_unowned_pod_leaves_no_replacement(cluster: Cluster) -> None:
    result = edits.delete_pod(cluster, "default", "pod1")
    assert result.added == ()
    assert [p.name for p in result.removed] == ["pod1"]
    assert len(result.cluster.pods) == len(cluster.pods) - 1
    with pytest.raises(RequestError):
        trace(result.cluster, Request("pod1", "svc-b:80", seed=1))


def test_deleting_an_unknown_pod_is_a_one_line_error(cluster: Cluster) -> None:
    with pytest.raises(edits.EditError, match="no pod default/nope"):
        edits.delete_pod(cluster, "default", "nope")


def test_scale_up_spreads_new_replicas_and_gives_each_a_fresh_ip(cluster: Cluster) -> None:
    before = edits.owned_pods(cluster, "default", "backend-5d8f7b")
    result = edits.scale(cluster, "default", "backend-5d8f7b", delta=2, seed=1)
    after = edits.owned_pods(result.cluster, "default", "backend-5d8f7b")
    assert len(after) == len(before) + 2
    # node-a already runs two replicas and node-b one: node-c, then node-b.
    assert [p.node for p in result.added] == ["node-c", "node-b"]
    ips = [p.ip for p in result.cluster.pods]
    assert len(ips) == len(set(ips))
    for pod in result.added:
        node = result.cluster.node(pod.node)
        assert node is not None and node.pod_cidr is not None and pod.ip in node.pod_cidr
    assert {str(p.ip) for p in result.added} <= svc_b_ips(result.cluster)


def test_scale_by_deployment_name_finds_its_replicaset(cluster: Cluster) -> None:
    result = edits.scale(cluster, "default", "backend", replicas=4)
    assert len(edits.owned_pods(result.cluster, "default", "backend")) == 4


def test_scale_down_removes_replicas_from_the_busiest_node_first(cluster: Cluster) -> None:
    result = edits.scale(cluster, "default", "backend-5d8f7b", delta=-1)
    assert [p.node for p in result.removed] == ["node-a"]
    assert str(result.removed[0].ip) not in svc_b_ips(result.cluster)
    to_zero = edits.scale(cluster, "default", "backend-5d8f7b", replicas=0)
    assert svc_b_ips(to_zero.cluster) == set()


def test_scale_below_zero_or_without_an_owner_is_refused(cluster: Cluster) -> None:
    with pytest.raises(edits.EditError, match="cannot scale to -1"):
        edits.scale(cluster, "default", "backend-5d8f7b", replicas=-1)
    with pytest.raises(edits.EditError, match="no pods owned"):
        edits.scale(cluster, "default", "nobody", delta=1)


def test_names_are_reproducible_from_the_seed(cluster: Cluster) -> None:
    one = edits.delete_pod(cluster, "default", "pod4", seed=9).added[0].name
    two = edits.delete_pod(cluster, "default", "pod4", seed=9).added[0].name
    assert one == two


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        ((), "10.1.0.2"),  # .0 is the network, .1 the bridge's gateway
        (("10.1.0.2", "10.1.0.3"), "10.1.0.4"),
        (("10.1.0.2", "10.1.0.5"), "10.1.0.6"),  # after the last one handed out
        (("10.1.0.6",), "10.1.0.2"),  # .7 is the broadcast: wrap round
        (("10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.6"), "10.1.0.5"),
    ],
)
def test_next_free_ip_follows_host_local(
    cluster: Cluster, used: tuple[str, ...], expected: str
) -> None:
    node = Node(
        name="tiny", internal_ip=IPv4Address("10.0.9.9"), pod_cidr=IPv4Network("10.1.0.0/29")
    )
    template = cluster.pods[0]
    pods = tuple(
        template.model_copy(update={"name": f"p{i}", "ip": IPv4Address(ip), "node": "tiny"})
        for i, ip in enumerate(used)
    )
    small = Cluster(nodes=(node,), pods=pods)
    assert edits.next_free_ip(small, node) == IPv4Address(expected)


def test_a_full_pod_cidr_is_an_error(cluster: Cluster) -> None:
    node = Node(
        name="tiny", internal_ip=IPv4Address("10.0.9.9"), pod_cidr=IPv4Network("10.1.0.0/30")
    )
    pod = cluster.pods[0].model_copy(update={"ip": IPv4Address("10.1.0.2"), "node": "tiny"})
    with pytest.raises(edits.EditError, match="no free address"):
        edits.next_free_ip(Cluster(nodes=(node,), pods=(pod,)), node)


def test_rules_diff_is_empty_for_equal_texts_and_has_no_context() -> None:
    assert edits.rules_diff("a\nb\n", "a\nb\n") == ()
    diff = edits.rules_diff("a\nb\nc\n", "a\nB\nc\n")
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-b",
        "+B",
    ]


def test_under_calico_a_new_pod_takes_the_lowest_free_address_of_its_nodes_block() -> None:
    cluster = with_cni(demo_cluster(), "calico-ipip")
    node_b = cluster.node("node-b")
    assert node_b is not None
    # node-b's block is 192.168.2.0/26: tunl0 has .0, pod4 and myapp-1 .2 and .3.
    assert edits.next_free_ip(cluster, node_b) == IPv4Address("192.168.2.1")


def test_under_calico_a_full_block_makes_the_node_claim_the_pools_first_free_block() -> None:
    cluster = with_cni(demo_cluster(), "calico-bgp")
    node_b = cluster.node("node-b")
    assert node_b is not None
    template = next(p for p in cluster.pods if p.node == "node-b")
    taken = {int(p.ip) for p in cluster.pods}
    block = int(IPv4Address("192.168.2.0"))
    filler = tuple(
        template.model_copy(update={"name": f"fill-{i}", "ip": IPv4Address(block + i)})
        for i in range(64)
        if block + i not in taken
    )
    full = cluster.model_copy(update={"pods": cluster.pods + filler})
    # No node holds 192.168.0.0/26, the first block of the pool (the cluster CIDR).
    assert edits.next_free_ip(full, node_b) == IPv4Address("192.168.0.0")
