"""kube-ipvs0's addresses: every ClusterIP, and each external IP a node does not have already."""

from __future__ import annotations

from ipaddress import IPv4Address

from sim.cluster.load import demo_cluster, with_mode
from sim.cluster.network import network_of, node_ns_name


def _bound(cluster: object, node: str) -> list[str]:
    ns = network_of(cluster).netns(node_ns_name(node))  # type: ignore[arg-type]
    return [str(a.ip) for a in ns.iface("kube-ipvs0").addrs]


def test_an_external_ip_a_node_has_is_not_bound_there_but_everywhere_else() -> None:
    demo = demo_cluster()
    node_a = demo.node("node-a")
    assert node_a is not None
    svc = demo.services[0]
    shared = svc.model_copy(
        update={"external_ips": (node_a.internal_ip, IPv4Address("203.0.113.7"))}
    )
    cluster = with_mode(demo.model_copy(update={"services": (shared, *demo.services[1:])}), "ipvs")
    on_a, on_b = _bound(cluster, "node-a"), _bound(cluster, "node-b")
    assert str(node_a.internal_ip) not in on_a
    assert str(node_a.internal_ip) in on_b
    assert "203.0.113.7" in on_a and "203.0.113.7" in on_b
    # The same addresses otherwise, in the same order.
    assert [a for a in on_b if a != str(node_a.internal_ip)] == on_a
    assert str(svc.cluster_ip) in on_a
