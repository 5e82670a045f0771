"""Flannel on the demo cluster: VXLAN between nodes, its devices and entries, its own rules.

The article's scenario 3 (a pod calls a Service whose endpoint is on another
node) under Flannel's VXLAN backend: the pod's frame crosses the node network
inside a UDP packet between the nodes' addresses.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from model.cluster import Cluster, CNIPlugin
from model.packet import Proto
from model.trace import Direction, Hop, HopKind, Trace, Verdict
from sim.cluster.load import demo_cluster
from sim.cluster.network import network_of
from sim.cluster.rules import render_rules
from sim.trace.request import Request
from sim.trace.tracer import trace


def with_cni(plugin: CNIPlugin) -> Cluster:
    demo = demo_cluster()
    fields = {name: getattr(demo, name) for name in Cluster.model_fields}
    fields["cni"] = demo.cni.model_copy(update={"plugin": plugin})
    return Cluster(**fields)


@pytest.fixture(scope="module")
def vxlan() -> Cluster:
    return with_cni(CNIPlugin.FLANNEL_VXLAN)


def scenario_3(cluster: Cluster) -> Trace:
    return trace(cluster, Request("pod1", "svc-b:80", seed=1, pick="192.168.2.2:8080"))


def request_hops(t: Trace, kind: HopKind) -> list[Hop]:
    return [h for h in t.hops if h.kind is kind and h.direction is Direction.REQUEST]


def test_node_a_has_flannel_1_with_an_entry_for_every_other_node(vxlan: Cluster) -> None:
    node_a = network_of(vxlan).netns("node-a")
    device = node_a.iface("flannel.1")
    assert [str(a) for a in device.addrs] == ["192.168.1.0/32"]
    assert device.mtu == 1450
    assert device.vxlan is not None
    assert (device.vxlan.vni, device.vxlan.port) == (1, 8472)
    assert device.vxlan.local == IPv4Address("10.0.0.11")
    node_b_mac = network_of(vxlan).netns("node-b").iface("flannel.1").mac
    assert device.neighbours[IPv4Address("192.168.2.0")] == node_b_mac
    assert device.vxlan.fdb[node_b_mac] == IPv4Address("10.0.0.12")
    # Every other node's entry, and none of its own.
    node_c_mac = network_of(vxlan).netns("node-c").iface("flannel.1").mac
    assert dict(device.neighbours) == {
        IPv4Address("192.168.2.0"): node_b_mac,
        IPv4Address("192.168.3.0"): node_c_mac,
    }
    assert dict(device.vxlan.fdb) == {
        node_b_mac: IPv4Address("10.0.0.12"),
        node_c_mac: IPv4Address("10.0.0.13"),
    }
    assert IPv4Address("192.168.1.0") not in device.neighbours
    routes = [str(r) for r in node_a.routes.routes]
    assert "192.168.2.0/24 via 192.168.2.0 dev flannel.1 onlink" in routes
    assert "192.168.3.0/24 via 192.168.3.0 dev flannel.1 onlink" in routes
    assert node_a.iface("cni0").mtu == 1450


def test_scenario_3_crosses_the_node_network_inside_vxlan(vxlan: Cluster) -> None:
    t = scenario_3(vxlan)
    assert t.verdict is Verdict.DELIVERED
    assert t.endpoint == "192.168.2.2:8080"
    [encap] = request_hops(t, HopKind.ENCAP)
    assert (encap.where.node, encap.where.interface) == ("node-a", "flannel.1")
    outer = encap.after
    assert (str(outer.src), str(outer.dst), outer.dport, outer.proto) == (
        "10.0.0.11",
        "10.0.0.12",
        8472,
        Proto.UDP,
    )
    assert outer.vni == 1
    assert outer.inner is not None
    assert (str(outer.inner.src), str(outer.inner.dst)) == ("192.168.1.2", "192.168.2.2")
    node_b_mac = network_of(vxlan).netns("node-b").iface("flannel.1").mac
    assert outer.inner.dst_mac == node_b_mac
    assert encap.detail == (
        f"neighbour 192.168.2.0 lladdr {node_b_mac} PERMANENT; fdb {node_b_mac} dev flannel.1"
        " dst 10.0.0.12 self permanent; vxlan id 1 local 10.0.0.11 dstport 8472"
    )
    [wire] = request_hops(t, HopKind.WIRE)
    assert wire.after.inner is not None and wire.after.dport == 8472
    assert "Flannel VXLAN: the pod's frame (192.168.1.2 → 192.168.2.2) crosses" in wire.sentence
    # The outer packet is the host's own: it passes OUTPUT and POSTROUTING on
    # node-a and PREROUTING and INPUT on node-b before its socket unwraps it.
    hooks = [
        (h.where.node, h.where.hook.value)
        for h in t.hops
        if h.kind is HopKind.NETFILTER
        and h.direction is Direction.REQUEST
        and h.where.hook is not None
        and h.before.inner is not None
    ]
    assert hooks == [
        ("node-a", "OUTPUT"),
        ("node-a", "POSTROUTING"),
        ("node-b", "PREROUTING"),
        ("node-b", "INPUT"),
    ]
    [decap] = request_hops(t, HopKind.DECAP)
    assert (decap.where.node, decap.where.interface) == ("node-b", "flannel.1")
    assert decap.after == outer.inner
    # The reply's outer packet goes back with the same source port: the flow
    # hash is the same both ways.
    [reply_encap] = [
        h for h in t.hops if h.kind is HopKind.ENCAP and h.direction is Direction.REPLY
    ]
    assert reply_encap.after.sport == outer.sport
    assert (str(reply_encap.after.src), str(reply_encap.after.dst)) == ("10.0.0.12", "10.0.0.11")


def test_a_node_reaches_another_nodes_pod_from_its_flannel_address(vxlan: Cluster) -> None:
    t = trace(vxlan, Request("node-a", "192.168.2.2:8080", seed=1))
    assert t.verdict is Verdict.DELIVERED
    assert str(t.hops[0].after.src) == "192.168.1.0"  # flannel.1's /32, the route's source


def test_flannel_masquerades_pod_traffic_leaving_the_pod_network(vxlan: Cluster) -> None:
    t = trace(vxlan, Request("pod1", "203.0.113.9:443", seed=1))
    masq = [
        h
        for h in t.hops
        if h.kind is HopKind.NETFILTER
        and h.direction is Direction.REQUEST
        and h.after.src != h.before.src
    ]
    assert [(h.where.node, str(h.after.src)) for h in masq] == [("node-a", "10.0.0.11")]
    assert "FLANNEL-POSTRTG" in masq[0].detail


def test_the_nodes_tables_hold_flannels_chains_after_kube_proxys(vxlan: Cluster) -> None:
    text = render_rules(vxlan, "node-a")
    lines = text.splitlines()
    postrouting = [line for line in lines if line.startswith("-A POSTROUTING")]
    assert postrouting[-1] == (
        '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG'
    )
    assert ":FLANNEL-POSTRTG - [0:0]" in lines and ":FLANNEL-FWD - [0:0]" in lines
    assert (
        "-A FLANNEL-POSTRTG -s 192.168.0.0/16 ! -d 224.0.0.0/4 -m comment --comment"
        ' "flanneld masq" -j MASQUERADE --random-fully'
    ) in lines
    assert (
        '-A FLANNEL-FWD -s 192.168.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT'
    ) in lines


def test_flannel_host_gw_routes_by_node_address_with_flannels_rules() -> None:
    cluster = with_cni(CNIPlugin.FLANNEL_HOST_GW)
    node_a = network_of(cluster).netns("node-a")
    assert not node_a.has_iface("flannel.1")
    assert "192.168.2.0/24 via 10.0.0.12 dev eth0" in [str(r) for r in node_a.routes.routes]
    t = scenario_3(cluster)
    assert t.verdict is Verdict.DELIVERED
    assert not request_hops(t, HopKind.ENCAP)
    [wire] = request_hops(t, HopKind.WIRE)
    assert "Flannel host-gw: the pod packet crosses the node network as it is" in wire.sentence
    assert "FLANNEL-FWD" in render_rules(cluster, "node-a")
