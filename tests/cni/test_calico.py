"""Calico on the demo cluster: proxy-ARP veths, /26 blocks, BGP, IP-in-IP and VXLAN, Felix's rules.

The article's scenario 3 (a pod calls a Service whose endpoint is on another
node) under each backend, hop by hop: the pod's default route to 169.254.1.1,
answered by proxy ARP on its host-side veth; the block route BIRD or Felix
wrote; the tunnel around the packet, if any; the /32 route to the endpoint's
veth. Felix's rules are checked against a real node's, hash for hash.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from model.cluster import Cluster, CNIPlugin, ProxyMode
from model.netfilter import Hook
from model.packet import Proto
from model.trace import Direction, Hop, HopKind, Trace, Verdict
from sim.cluster.load import demo_cluster, with_mode
from sim.cluster.network import network_of
from sim.cluster.rules import node_listing, node_rules, render_rules
from sim.cni import cni_of
from sim.cni.calico import Calico, veth_name_for_workload
from sim.cni.felix import FelixNode, FelixRule, felix_rules, rule_hashes
from sim.proxy.nftables import RenderedNftRules
from sim.trace.report import packet_line
from sim.trace.request import Request
from sim.trace.tracer import trace
from tests import paths
from tests.cni.support import calico_ipam_demo, with_cni

REAL_IPIP_NODE = paths.ROOT / "tests" / "cni" / "data" / "calico-ipip-filter.rules"
REAL_VXLAN_NODE = paths.ROOT / "tests" / "data" / "real" / "calico" / "node-3.rules"

POD1_VETH = "calice0906292e2"
"""pod1's host side on node-a: cali + SHA-1("default.pod1")[:11]."""
POD4_VETH = "cali3a3e66463d6"
"""pod4's on node-b."""


@pytest.fixture(scope="module")
def bgp() -> Cluster:
    return with_cni(CNIPlugin.CALICO_BGP)


@pytest.fixture(scope="module")
def vxlan() -> Cluster:
    return with_cni(CNIPlugin.CALICO_VXLAN)


@pytest.fixture(scope="module")
def ipip() -> Cluster:
    return with_cni(CNIPlugin.CALICO_IPIP)


def scenario_3(cluster: Cluster) -> Trace:
    return trace(cluster, Request("pod1", "svc-b:80", seed=1, pick="192.168.2.2:8080"))


def request_hops(t: Trace, kind: HopKind | None = None) -> list[Hop]:
    return [
        h for h in t.hops if h.direction is Direction.REQUEST and (kind is None or h.kind is kind)
    ]


def places(t: Trace) -> list[tuple[str, str, str | None, str | None]]:
    """Each request hop: what it did, where, on which device, at which hook."""
    return [
        (h.kind.value, h.where.netns, h.where.interface, h.where.hook and h.where.hook.value)
        for h in request_hops(t)
    ]


def route_details(t: Trace) -> list[str]:
    return [h.detail for h in request_hops(t, HopKind.ROUTE)]


# The pod's half of scenario 3, the same under every backend: its default
# route to 169.254.1.1, the veth to node-a, DNAT at PREROUTING.
_POD1_TO_NODE_A = [
    ("dns", "pod/default/pod1", None, None),
    ("send", "pod/default/pod1", None, None),
    ("route", "pod/default/pod1", "eth0", None),
    ("veth", "pod/default/pod1", "eth0", None),
    ("receive", "node-a", POD1_VETH, None),
    ("netfilter", "node-a", POD1_VETH, "PREROUTING"),
]
# ...and node-b's last hops to pod4, by its /32 route.
_NODE_B_TO_POD4 = [
    ("route", "node-b", POD4_VETH, None),
    ("netfilter", "node-b", "{in}", "FORWARD"),
    ("netfilter", "node-b", POD4_VETH, "POSTROUTING"),
    ("veth", "node-b", POD4_VETH, None),
    ("receive", "pod/default/pod4", "eth0", None),
    ("deliver", "pod/default/pod4", None, None),
]


def _to_pod4(arrived_on: str) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (kind, ns, arrived_on if iface == "{in}" else iface, hook)
        for kind, ns, iface, hook in _NODE_B_TO_POD4
    ]


def test_the_host_side_is_named_as_calicos_cni_plugin_names_it() -> None:
    # libcalico-go's conversion_test.go expects these for the same workloads.
    assert veth_name_for_workload("default", "podA") == "cali7f94ce7c295"
    assert veth_name_for_workload("namespace", "podname") == "cali82111e10a96"
    assert veth_name_for_workload("default", "pod1") == POD1_VETH


def test_pods_hang_off_proxy_arp_veths_not_a_bridge(bgp: Cluster) -> None:
    network = network_of(bgp)
    node_a = network.netns("node-a")
    assert [i.name for i in node_a.interfaces] == [
        "lo",
        "eth0",
        POD1_VETH,
        "calibd2348b4f67",
        "cali49778cadcf1",
    ]
    host_side = node_a.iface(POD1_VETH)
    assert (host_side.mac, host_side.addrs, host_side.proxy_arp, host_side.master) == (
        "ee:ee:ee:ee:ee:ee",
        (),
        True,
        None,
    )
    assert host_side.peer == ("pod/default/pod1", "eth0")
    pod1 = network.netns("pod/default/pod1")
    assert [str(a) for a in pod1.iface("eth0").addrs] == ["192.168.1.2/32"]
    assert [str(r) for r in pod1.routes.routes] == [
        "169.254.1.1 dev eth0 scope link",
        "default via 169.254.1.1 dev eth0",
    ]
    assert [str(r) for r in node_a.routes.routes] == [
        "default via 10.0.0.1 dev eth0",
        "10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.11",
        "blackhole 192.168.1.0/26 proto bird",
        f"192.168.1.2 dev {POD1_VETH} scope link",
        "192.168.1.3 dev calibd2348b4f67 scope link",
        "192.168.1.4 dev cali49778cadcf1 scope link",
        "192.168.2.0/26 via 10.0.0.12 dev eth0 proto bird",
        "192.168.3.0/26 via 10.0.0.13 dev eth0 proto bird",
    ]


def test_scenario_3_under_bgp_crosses_the_node_network_unencapsulated(bgp: Cluster) -> None:
    t = scenario_3(bgp)
    assert t.verdict is Verdict.DELIVERED
    assert t.endpoint == "192.168.2.2:8080"
    assert places(t) == [
        *_POD1_TO_NODE_A,
        ("route", "node-a", "eth0", None),
        ("netfilter", "node-a", POD1_VETH, "FORWARD"),
        ("netfilter", "node-a", "eth0", "POSTROUTING"),
        ("wire", "node-a", "eth0", None),
        ("receive", "node-b", "eth0", None),
        ("netfilter", "node-b", "eth0", "PREROUTING"),
        *_to_pod4("eth0"),
    ]
    assert route_details(t) == [
        "ip route get 10.101.100.102: default via 169.254.1.1 dev eth0",
        f"ip route get 192.168.2.2 from 192.168.1.2 iif {POD1_VETH}:"
        " 192.168.2.0/26 via 10.0.0.12 dev eth0 proto bird",
        "ip route get 192.168.2.2 from 192.168.1.2 iif eth0:"
        f" 192.168.2.2 dev {POD4_VETH} scope link",
    ]
    [_, to_pod4] = request_hops(t, HopKind.VETH)
    pod4_mac = network_of(bgp).netns("pod/default/pod4").iface("eth0").mac
    assert to_pod4.detail == (
        f"neighbour 192.168.2.2 lladdr {pod4_mac}; {POD4_VETH}@eth0 → eth0@{POD4_VETH} in"
        " pod/default/pod4"
    )
    [wire] = request_hops(t, HopKind.WIRE)
    assert "Calico (BGP): the pod packet crosses the node network as it is" in wire.sentence
    assert (str(wire.after.src), str(wire.after.dst), wire.after.inner) == (
        "192.168.1.2",
        "192.168.2.2",
        None,
    )


def test_proxy_arp_on_the_host_side_answers_for_169_254_1_1(bgp: Cluster) -> None:
    t = scenario_3(bgp)
    [to_node, _] = request_hops(t, HopKind.VETH)
    assert to_node.detail == (
        f"neighbour 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee; eth0@{POD1_VETH} →"
        f" {POD1_VETH}@eth0 in node-a; proxy ARP: net.ipv4.conf.{POD1_VETH}.proxy_arp=1"
    )
    assert to_node.sentence.endswith(
        f"no one holds 169.254.1.1: {POD1_VETH} answered the ARP for it with its own MAC"
        " ee:ee:ee:ee:ee:ee (proxy ARP), since node-a routes 169.254.1.1 out of eth0"
    )
    assert to_node.after.dst_mac == "ee:ee:ee:ee:ee:ee"
    # The reply leaves pod4 the same way: node-b's veth answers for it there.
    reply = next(h for h in t.hops if h.direction is Direction.REPLY and h.kind is HopKind.VETH)
    assert reply.detail.startswith("neighbour 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee; eth0@")
    assert reply.detail.endswith(f"proxy ARP: net.ipv4.conf.{POD4_VETH}.proxy_arp=1")


def test_scenario_3_under_vxlan_crosses_inside_vxlan_calico(vxlan: Cluster) -> None:
    network = network_of(vxlan)
    node_a, node_b = network.netns("node-a"), network.netns("node-b")
    device = node_a.iface("vxlan.calico")
    assert device.vxlan is not None
    assert (device.vxlan.vni, device.vxlan.port, device.vxlan.local, device.mtu) == (
        4096,
        4789,
        IPv4Address("10.0.0.11"),
        1450,
    )
    assert [str(a) for a in device.addrs] == ["192.168.1.0/32"]
    node_b_mac = node_b.iface("vxlan.calico").mac
    assert device.neighbours[IPv4Address("192.168.2.0")] == node_b_mac
    assert device.vxlan.fdb[node_b_mac] == IPv4Address("10.0.0.12")
    assert node_a.iface(POD1_VETH).mtu == 1450
    assert "blackhole 192.168.1.0/26 proto 80" in [str(r) for r in node_a.routes.routes]

    t = scenario_3(vxlan)
    assert t.verdict is Verdict.DELIVERED
    assert places(t) == [
        *_POD1_TO_NODE_A,
        ("route", "node-a", "vxlan.calico", None),
        ("netfilter", "node-a", POD1_VETH, "FORWARD"),
        ("netfilter", "node-a", "vxlan.calico", "POSTROUTING"),
        ("encap", "node-a", "vxlan.calico", None),
        ("route", "node-a", "eth0", None),
        ("netfilter", "node-a", "eth0", "OUTPUT"),
        ("netfilter", "node-a", "eth0", "POSTROUTING"),
        ("wire", "node-a", "eth0", None),
        ("receive", "node-b", "eth0", None),
        ("netfilter", "node-b", "eth0", "PREROUTING"),
        ("netfilter", "node-b", "eth0", "INPUT"),
        ("decap", "node-b", "vxlan.calico", None),
        ("receive", "node-b", "vxlan.calico", None),
        ("netfilter", "node-b", "vxlan.calico", "PREROUTING"),
        *_to_pod4("vxlan.calico"),
    ]
    assert route_details(t)[1:3] == [
        f"ip route get 192.168.2.2 from 192.168.1.2 iif {POD1_VETH}:"
        " 192.168.2.0/26 via 192.168.2.0 dev vxlan.calico onlink",
        "ip route get 10.0.0.12: 10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.11",
    ]
    [encap] = request_hops(t, HopKind.ENCAP)
    assert encap.detail == (
        f"neighbour 192.168.2.0 lladdr {node_b_mac} PERMANENT; fdb {node_b_mac} dev"
        " vxlan.calico dst 10.0.0.12 self permanent; vxlan id 4096 local 10.0.0.11 dstport 4789"
    )
    outer = encap.after
    assert (str(outer.src), str(outer.dst), outer.dport, outer.proto, outer.vni) == (
        "10.0.0.11",
        "10.0.0.12",
        4789,
        Proto.UDP,
        4096,
    )
    inner = outer.inner
    assert inner is not None
    assert (str(inner.src), inner.sport, str(inner.dst), inner.dport) == (
        "192.168.1.2",
        encap.before.sport,
        "192.168.2.2",
        8080,
    )
    assert (inner.src_mac, inner.dst_mac) == (device.mac, node_b_mac)
    [wire] = request_hops(t, HopKind.WIRE)
    assert wire.after.inner == inner and wire.after.dport == 4789
    assert "Calico VXLAN: the pod's frame (192.168.1.2 → 192.168.2.2) crosses" in wire.sentence
    # Felix does not track VXLAN's outer packets (raw NOTRACK on port 4789).
    outer_hooks = [h for h in request_hops(t, HopKind.NETFILTER) if h.before.inner is not None]
    assert [(h.where.node, h.where.hook and h.where.hook.value) for h in outer_hooks] == [
        ("node-a", "OUTPUT"),
        ("node-a", "POSTROUTING"),
        ("node-b", "PREROUTING"),
        ("node-b", "INPUT"),
    ]
    assert all(h.conntrack is None for h in outer_hooks)
    [decap] = request_hops(t, HopKind.DECAP)
    assert decap.after.model_copy(update={"mark": 0}) == inner.model_copy(update={"mark": 0})


def test_scenario_3_under_ipip_crosses_inside_protocol_4(ipip: Cluster) -> None:
    node_a = network_of(ipip).netns("node-a")
    tunl0 = node_a.iface("tunl0")
    assert ([str(a) for a in tunl0.addrs], tunl0.mtu) == (["192.168.1.0/32"], 1480)
    t = scenario_3(ipip)
    assert t.verdict is Verdict.DELIVERED
    assert places(t)[6:16] == [
        ("route", "node-a", "tunl0", None),
        ("netfilter", "node-a", POD1_VETH, "FORWARD"),
        ("netfilter", "node-a", "tunl0", "POSTROUTING"),
        ("encap", "node-a", "tunl0", None),
        ("route", "node-a", "eth0", None),
        ("netfilter", "node-a", "eth0", "OUTPUT"),
        ("netfilter", "node-a", "eth0", "POSTROUTING"),
        ("wire", "node-a", "eth0", None),
        ("receive", "node-b", "eth0", None),
        ("netfilter", "node-b", "eth0", "PREROUTING"),
    ]
    assert places(t)[16:18] == [
        ("netfilter", "node-b", "eth0", "INPUT"),
        ("decap", "node-b", "tunl0", None),
    ]
    assert route_details(t)[1] == (
        f"ip route get 192.168.2.2 from 192.168.1.2 iif {POD1_VETH}:"
        " 192.168.2.0/26 via 10.0.0.12 dev tunl0 proto bird onlink"
    )
    [encap] = request_hops(t, HopKind.ENCAP)
    outer = encap.after
    assert (str(outer.src), str(outer.dst), outer.proto, outer.sport, outer.dport) == (
        "10.0.0.11",
        "10.0.0.12",
        Proto.IPIP,
        0,
        0,
    )
    assert outer.inner is not None and (str(outer.inner.src), str(outer.inner.dst)) == (
        "192.168.1.2",
        "192.168.2.2",
    )
    # IP-in-IP has no ports: the report and the changed fields say none.
    assert packet_line(outer) == "10.0.0.11 → 10.0.0.12 ipencap ttl 63 mark 0x10000"
    assert encap.changed == ("src", "dst", "proto", "src_mac", "dst_mac", "inner", "length")
    # The outer packet is the host's: Felix lets IP-in-IP to and from its hosts through.
    out = next(h for h in request_hops(t, HopKind.NETFILTER) if h.where.hook is Hook.OUTPUT)
    assert '"Allow IPIP packets to other Calico hosts"' in out.detail
    into = next(h for h in request_hops(t, HopKind.NETFILTER) if h.where.hook is Hook.INPUT)
    assert '"cali:PajejrV4aFdkZojI"' in into.detail


def test_nat_outgoing_masquerades_what_leaves_the_pools(bgp: Cluster) -> None:
    t = trace(bgp, Request("pod1", "203.0.113.9:443", seed=1))
    masq = [
        h
        for h in request_hops(t, HopKind.NETFILTER)
        if h.after.src != h.before.src and h.before.inner is None
    ]
    assert [
        (h.where.node, h.where.hook and h.where.hook.value, str(h.after.src)) for h in masq
    ] == [("node-a", "POSTROUTING", "10.0.0.11")]
    assert masq[0].detail == (
        'nat: -A cali-nat-outgoing -m comment --comment "cali:flqWnvo8yq4ULQLa" -m set'
        " --match-set cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst"
        " -j MASQUERADE --random-fully"
    )
    # Inside the pools it does not: scenario 3 arrives from pod1's own address.
    delivered = scenario_3(bgp).hops
    assert next(h for h in delivered if h.kind is HopKind.DELIVER).after.src == IPv4Address(
        "192.168.1.2"
    )


@pytest.mark.parametrize("plugin", [CNIPlugin.CALICO_BGP, CNIPlugin.CALICO_VXLAN])
def test_a_pod_at_the_first_address_of_its_block_is_reachable(plugin: CNIPlugin) -> None:
    cluster = calico_ipam_demo(plugin)
    t = trace(cluster, Request("pod1", "192.168.2.1:8080", seed=1))
    assert t.verdict is Verdict.DELIVERED
    [deliver] = [h for h in request_hops(t) if h.kind is HopKind.DELIVER]
    assert deliver.where.netns == "pod/default/pod4"
    assert f"192.168.2.1 dev {POD4_VETH} scope link" in [
        str(r) for r in network_of(cluster).netns("node-b").routes.routes
    ]


def test_under_host_gw_the_bridge_shadows_the_same_address() -> None:
    # What Calico fixes: host-gw's bridge plugin holds the .1 on cni0.
    t = trace(calico_ipam_demo(CNIPlugin.HOST_GW), Request("pod1", "192.168.2.1:8080", seed=1))
    assert all(h.where.netns != "pod/default/pod4" for h in t.hops)


def test_blocks_come_from_the_pods_addresses_not_the_pod_cidrs() -> None:
    cluster = calico_ipam_demo(CNIPlugin.CALICO_BGP)
    calico = cni_of(cluster)
    assert isinstance(calico, Calico)
    assert calico.blocks == {
        "node-a": (IPv4Network("192.168.1.0/26"),),
        "node-b": (IPv4Network("192.168.2.0/26"),),
        "node-c": (IPv4Network("192.168.77.64/26"),),
    }
    assert calico.borrowed == {IPv4Address("192.168.2.9"): "node-c"}
    routes = [str(r) for r in network_of(cluster).netns("node-a").routes.routes]
    assert routes[-3:] == [
        "192.168.2.0/26 via 10.0.0.12 dev eth0 proto bird",
        "192.168.77.64/26 via 10.0.0.13 dev eth0 proto bird",
        # web-1 borrowed its address from node-b's block: node-c exports a /32.
        "192.168.2.9 via 10.0.0.13 dev eth0 proto bird",
    ]
    for dst, pod in (("192.168.77.70:8080", "myapp-2"), ("192.168.2.9:8080", "web-1")):
        t = trace(cluster, Request("pod1", dst, seed=1))
        assert t.verdict is Verdict.DELIVERED, dst
        [wire] = request_hops(t, HopKind.WIRE)
        assert wire.detail.startswith("neighbour 10.0.0.13 lladdr"), dst
        assert request_hops(t, HopKind.DELIVER)[0].where.netns == f"pod/default/{pod}"


def test_an_unused_address_of_a_block_is_blackholed(bgp: Cluster) -> None:
    t = trace(bgp, Request("pod4", "192.168.1.60:8080", seed=1))
    assert t.verdict is Verdict.DROPPED
    drop = t.hops[-1]
    assert (drop.kind, drop.where.netns, drop.detail) == (
        HopKind.DROP,
        "node-a",
        "ip route get 192.168.1.60: blackhole 192.168.1.0/26 proto bird",
    )
    assert drop.sentence == (
        "node-a drops the packet for 192.168.1.60: it matches `blackhole 192.168.1.0/26 proto"
        " bird`, which discards what it covers without an ICMP error"
    )


def test_felix_writes_what_a_real_ipip_node_shows() -> None:
    # No workloads on that node: its dispatch chains hold only "Unknown interface".
    real = [
        line
        for line in REAL_IPIP_NODE.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    pools = (IPv4Network("172.16.0.0/16"),)
    rendered = felix_rules(FelixNode(ipip=True, pools=pools, masq_pools=pools))
    ours = set(rendered.first["filter"]) | set(rendered.rules["filter"])
    assert [line for line in real if line not in ours] == []
    assert len(real) == 28


def test_felix_writes_what_a_real_vxlan_node_shows(vxlan: Cluster) -> None:
    # The rules of a real VXLAN node's iptables-save that depend on nothing but
    # the settings both share (that node runs an older Felix: where it differs,
    # as in raw's VXLAN NOTRACK and nat POSTROUTING's jump, v3.29 is followed).
    real = [
        line
        for line in REAL_VXLAN_NODE.read_text().splitlines()
        if line.startswith(
            (
                "-A cali-FORWARD ",
                "-A cali-wl-to-host ",
                "-A cali-nat-outgoing ",
                "-A cali-POSTROUTING ",
                '-A FORWARD -m comment --comment "cali:',
                '-A INPUT -m comment --comment "cali:',
                '-A OUTPUT -m comment --comment "cali:',
                '-A PREROUTING -m comment --comment "cali:',
                '-A cali-PREROUTING -m comment --comment "cali:r6XmIziWUJsdOK6Z',
                '-A cali-OUTPUT -m comment --comment "cali:GBTAv2p5CwevEyJm',
                '-A cali-OUTPUT -m comment --comment "cali:Mq1_rAdXXH3YkrzW',
            )
        )
    ]
    assert len(real) == 24
    ours = set(render_rules(vxlan, "node-a").splitlines())
    assert [line for line in real if line not in ours] == []


def test_felix_hashes_each_rule_with_its_place() -> None:
    assert rule_hashes("PREROUTING", [FelixRule(action="--jump cali-PREROUTING")]) == [
        "6gwbT8clXdHdC1b1"
    ]
    # The same rule later in a chain hashes differently: its place is in it.
    twice = rule_hashes("cali-x", [FelixRule(action="--jump ACCEPT")] * 2)
    assert twice[0] != twice[1]


def test_felixs_jumps_come_first_but_nat_postrouting_last(bgp: Cluster) -> None:
    lines = render_rules(bgp, "node-a").splitlines()

    def chain(table: str, name: str) -> list[str]:
        start = lines.index(f"*{table}")
        end = lines.index("COMMIT", start)
        return [line for line in lines[start:end] if line.startswith(f"-A {name} ")]

    for table, builtin in (
        ("raw", "PREROUTING"),
        ("raw", "OUTPUT"),
        ("mangle", "PREROUTING"),
        ("mangle", "POSTROUTING"),
        ("filter", "INPUT"),
        ("filter", "FORWARD"),
        ("filter", "OUTPUT"),
        ("nat", "PREROUTING"),
        ("nat", "OUTPUT"),
    ):
        assert chain(table, builtin)[0].endswith(f"-j cali-{builtin}"), (table, builtin)
    postrouting = chain("nat", "POSTROUTING")
    assert postrouting[0].endswith("-j KUBE-POSTROUTING")
    assert (
        postrouting[-1]
        == '-A POSTROUTING -m comment --comment "cali:0i8pjzKKPyA34aQD" -j cali-POSTROUTING'
    )
    assert chain("filter", "FORWARD")[-2:] == [
        '-A FORWARD -m comment --comment "cali:S93hcgKJrXEqnTfs" -m comment --comment "Policy'
        ' explicitly accepted packet." -m mark --mark 0x10000/0x10000 -j ACCEPT',
        '-A FORWARD -m comment --comment "cali:mp77cMpurHhyjLrM" -j MARK --set-xmark'
        " 0x10000/0x10000",
    ]
    # Tables come in iptables-nft-save's order; raw is Felix's alone here.
    assert [line for line in lines if line.startswith("*")] == [
        "*mangle",
        "*raw",
        "*filter",
        "*nat",
    ]
    assert f"-A cali-from-wl-dispatch -i {POD1_VETH} -m comment" in "\n".join(lines)


def test_each_workload_gets_felixs_chains_and_its_profiles(bgp: Cluster) -> None:
    text = render_rules(bgp, "node-a")
    for chain in (
        f"cali-fw-{POD1_VETH}",
        f"cali-tw-{POD1_VETH}",
        "cali-pro-kns.default",
        "cali-pri-kns.default",
        "cali-pro-ksa.default.default",
        "cali-pri-ksa.default.default",
    ):
        assert f":{chain} - [0:0]" in text.splitlines(), chain
    assert (
        '-m comment --comment "Profile kns.default ingress" -j MARK --set-xmark 0x10000/0x10000'
        in text
    )


def test_the_rules_carry_the_ipsets_they_match(vxlan: Cluster) -> None:
    sets = node_rules(vxlan, "node-a").ipsets
    assert {name: s.members for name, s in sets.items()} == {
        "cali40all-ipam-pools": ((IPv4Network("192.168.0.0/16"),),),
        "cali40masq-ipam-pools": ((IPv4Network("192.168.0.0/16"),),),
        "cali40all-vxlan-net": ((IPv4Network("10.0.0.12/32"),), (IPv4Network("10.0.0.13/32"),)),
    }
    assert all(s.type == "hash:net" for s in sets.values())


def test_felixs_rules_are_placed_once_whichever_mode_renders_kube_proxys() -> None:
    # nftables mode's iptables text is kubelet's, with the CNI's mangle rules in
    # it already; Felix's must be neither lost nor doubled, and the rules stay
    # nftables mode's.
    demo = demo_cluster()
    nft = demo.model_copy(
        update={
            "kube_proxy": demo.kube_proxy.model_copy(update={"mode": ProxyMode.NFTABLES}),
            "service_cidrs": (IPv4Network("10.101.100.0/24"),),
        }
    )
    rules = node_rules(with_cni(CNIPlugin.CALICO_VXLAN, nft), "node-a")
    assert isinstance(rules, RenderedNftRules)
    iptables = node_rules(with_cni(CNIPlugin.CALICO_VXLAN), "node-a")
    for table in ("mangle", "raw", "filter", "nat"):
        here = _table_lines(rules.text, table)
        assert len(here) == len(set(here)), table
        felix = [line for line in _table_lines(iptables.text, table) if "cali" in line]
        assert [line for line in felix if line not in here] == [], table
    assert sorted(rules.ipsets) == [
        "cali40all-ipam-pools",
        "cali40all-vxlan-net",
        "cali40masq-ipam-pools",
    ]


@pytest.mark.parametrize("mode", ["nftables", "ipvs"])
def test_the_node_shows_the_iptables_text_it_walks_felixs_rules_placed(mode: str) -> None:
    # Felix keeps its jumps first in built-in chains and writes a raw table; in IPVS
    # mode the listing once printed the text before they were placed.
    cluster = with_mode(with_cni(CNIPlugin.CALICO_VXLAN), mode)
    rules = node_rules(cluster, "node-a")
    listing = node_listing(cluster, "node-a")
    shown = listing[listing.index("# iptables-save\n") + len("# iptables-save\n") :]
    assert shown.split("\n\n# ")[0].rstrip() == rules.text.rstrip()
    assert "*raw" in shown
    assert '-A PREROUTING -m comment --comment "cali:6gwbT8clXdHdC1b1" -j cali-PREROUTING' in shown


def _table_lines(text: str, table: str) -> list[str]:
    """The chain declarations and rules of one table of an iptables-save text."""
    lines = text.splitlines()
    start = lines.index(f"*{table}")
    return lines[start + 1 : lines.index("COMMIT", start)]


@pytest.mark.parametrize("mode", ["nftables", "ipvs"])
def test_ip_in_ip_crosses_kube_proxys_other_modes(ipip: Cluster, mode: str) -> None:
    # nftables mode's table matches `meta l4proto` on the outer packet too: protocol 4,
    # which nft (as /etc/protocols) calls ipencap.
    t = scenario_3(with_mode(ipip, mode))
    assert t.verdict is Verdict.DELIVERED
    [encap] = request_hops(t, HopKind.ENCAP)
    assert (str(encap.after.src), str(encap.after.dst), encap.after.proto) == (
        "10.0.0.11",
        "10.0.0.12",
        Proto.IPIP,
    )
