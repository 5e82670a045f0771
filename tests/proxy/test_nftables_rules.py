"""kube-proxy's nftables table, rendered for one node, checked chain by chain.

Expected text is `nft list table ip kube-proxy`'s spelling (nft 1.0.6), what a
user sees on the node. The `lab` tests prove it against the real kernel: they
load the transaction kube-proxy would hand `nft -f` into a scratch network
namespace and compare `nft list table ip kube-proxy` with the rendering.
"""

# nft lists a set's further elements after tabs and then spaces, so the text does too.

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from model.cluster import (
    Cluster,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    KubeProxyConfig,
    Node,
    ProxyMode,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
)
from model.nftables import NftNat, NftVmap
from sim.cluster.load import demo_cluster
from sim.cluster.rules import node_rules, render_rules
from sim.kernel.rules import nft_of
from sim.proxy import dnats_to, mode_of
from sim.proxy.nftables import (
    NFTABLES,
    chain_owners,
    render_node_nft,
    render_node_transaction,
)
from sim.proxy.nftables.kubelet import kubelet_iptables
from sim.proxy.nftables.names import endpoint_base, hash_and_truncate, service_port_base
from sim.readers.nft_listing import nft_list_text
from sim.readers.nftables import parse_nft

NODE = "node-a"
OTHER = "node-b"
CIDR = IPv4Network("10.244.0.0/16")
NFT = KubeProxyConfig(mode=ProxyMode.NFTABLES, cluster_cidr=CIDR)

WEB = service_port_base("default", "web", "tcp", "http")
SVC = f"service-{WEB}"
LOCAL = f"local-{WEB}"
EXT = f"external-{WEB}"
FW = f"firewall-{WEB}"


def ep_chain(ip: str) -> str:
    return "endpoint-" + endpoint_base("default", "web", "tcp", "http", f"{ip}:8080")


def affinity(ip: str) -> str:
    return "affinity-" + endpoint_base("default", "web", "tcp", "http", f"{ip}:8080")


@dataclass(frozen=True)
class Ep:
    ip: str
    node: str = OTHER
    ready: bool = True


def web(*eps: Ep, kp: KubeProxyConfig = NFT, **svc: Any) -> Cluster:
    """Two nodes in nftables mode and the Service default/web (port "http" 80 → 8080)."""
    port = {"node_port": svc.pop("node_port")} if "node_port" in svc else {}
    cidrs = svc.pop("service_cidrs", ())
    service = Service.model_validate(
        {
            "name": "web",
            "cluster_ip": IPv4Address("10.96.0.10"),
            "ports": (ServicePort(name="http", port=80, target_port=8080, **port),),
            **svc,
        }
    )
    slice_ = EndpointSlice(
        name="web-abc",
        service="web",
        ports=(EndpointPort(name="http", port=8080),),
        endpoints=tuple(Endpoint(ip=IPv4Address(e.ip), node=e.node, ready=e.ready) for e in eps),
    )
    return Cluster(
        nodes=(
            Node(
                name=NODE,
                internal_ip=IPv4Address("192.168.0.2"),
                pod_cidr=IPv4Network("10.244.1.0/24"),
            ),
            Node(
                name=OTHER,
                internal_ip=IPv4Address("192.168.0.3"),
                pod_cidr=IPv4Network("10.244.2.0/24"),
            ),
        ),
        services=(service,),
        endpoint_slices=(slice_,) if eps else (),
        kube_proxy=kp,
        service_cidrs=cidrs,
    )


def chain(text: str, name: str) -> list[str]:
    """The rules of chain `name`, as listed (without the declaration and comment lines)."""
    head = f"\tchain {name} {{\n"
    if head not in text:
        raise AssertionError(f"no chain {name}")
    body = text.split(head, 1)[1].split("\n\t}\n", 1)[0].splitlines()
    return [line.strip() for line in body if not line.strip().startswith(("type ", "comment "))]


def elements(text: str, name: str) -> list[str]:
    """The elements of set or map `name`, as listed, one per entry."""
    block = text.split(f" {name} {{\n", 1)[1].split("\n\t}\n", 1)[0]
    if "elements = { " not in block:
        return []
    listed = block.split("elements = { ", 1)[1].rsplit(" }", 1)[0]
    return [e.strip() for e in listed.replace("\n", " ").split(",")]


def chains(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if line.startswith("\tchain ")]


# --- names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # Names from kube-proxy's own nftables tests (pkg/proxy/nftables/proxier_test.go).
        (service_port_base("ns1", "svc1", "tcp", "p80"), "ULMVA6XW-ns1/svc1/tcp/p80"),
        (service_port_base("ns5", "svc5", "tcp", "p80"), "HVFWP5L3-ns5/svc5/tcp/p80"),
        (
            endpoint_base("ns1", "svc1", "tcp", "p80", "10.180.0.1:80"),
            "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80",
        ),
        (
            endpoint_base("ns2", "svc2", "tcp", "p80", "10.180.0.2:80"),
            "SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80",
        ),
    ],
)
def test_chain_names_hash_as_kube_proxy_hashes_them(name: str, expected: str) -> None:
    assert name == expected


def test_a_name_too_long_for_nft_is_cut() -> None:
    long = "x" * 300
    cut = hash_and_truncate(long)
    assert len(cut) == 240 and cut.endswith("...")


# --- the whole table --------------------------------------------------------------------

# Two endpoints, one on each node, NodePort 30080, externalTrafficPolicy Cluster, seen on node-a.
WHOLE = f"""\
table ip kube-proxy {{
	comment "rules for kube-proxy"
	set cluster-ips {{
		type ipv4_addr
		comment "Active ClusterIPs"
		elements = {{ 10.96.0.10 }}
	}}

	set nodeport-ips {{
		type ipv4_addr
		comment "IPs that accept NodePort traffic"
		elements = {{ 192.168.0.2 }}
	}}

	map no-endpoint-services {{
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "vmap to drop or reject packets to services with no endpoints"
	}}

	map no-endpoint-nodeports {{
		type inet_proto . inet_service : verdict
		comment "vmap to drop or reject packets to service nodeports with no endpoints"
	}}

	map firewall-ips {{
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "destinations that are subject to LoadBalancerSourceRanges"
	}}

	map service-ips {{
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
		elements = {{ 10.96.0.10 . tcp . 80 : goto {SVC} }}
	}}

	map service-nodeports {{
		type inet_proto . inet_service : verdict
		comment "NodePort traffic"
		elements = {{ tcp . 30080 : goto {EXT} }}
	}}

	chain filter-prerouting {{
		type filter hook prerouting priority dstnat - 10; policy accept;
		ct state new jump firewall-check
	}}

	chain filter-input {{
		type filter hook input priority -110; policy accept;
		ct state new jump nodeport-endpoints-check
		ct state new jump service-endpoints-check
	}}

	chain filter-forward {{
		type filter hook forward priority -110; policy accept;
		ct state new jump service-endpoints-check
		ct state new jump cluster-ips-check
	}}

	chain filter-output {{
		type filter hook output priority -110; policy accept;
		ct state new jump service-endpoints-check
		ct state new jump firewall-check
	}}

	chain filter-output-post-dnat {{
		type filter hook output priority -90; policy accept;
		ct state new jump cluster-ips-check
	}}

	chain nat-prerouting {{
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}}

	chain nat-output {{
		type nat hook output priority -100; policy accept;
		jump services
	}}

	chain nat-postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		jump masquerading
	}}

	chain nodeport-endpoints-check {{
		ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports
	}}

	chain service-endpoints-check {{
		ip daddr . meta l4proto . th dport vmap @no-endpoint-services
	}}

	chain firewall-check {{
		ip daddr . meta l4proto . th dport vmap @firewall-ips
	}}

	chain services {{
		ip daddr . meta l4proto . th dport vmap @service-ips
		ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
	}}

	chain masquerading {{
		meta mark & 0x00004000 == 0x00000000 return
		meta mark set meta mark ^ 0x00004000
		masquerade fully-random
	}}

	chain cluster-ips-check {{
		ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
	}}

	chain mark-for-masquerade {{
		meta mark set meta mark | 0x00004000
	}}

	chain reject-chain {{
		comment "helper for @no-endpoint-services / @no-endpoint-nodeports"
		reject
	}}

	chain {ep_chain("10.244.1.5")} {{
		ip saddr 10.244.1.5 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.1.5:8080
	}}

	chain {ep_chain("10.244.2.6")} {{
		ip saddr 10.244.2.6 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.2.6:8080
	}}

	chain {SVC} {{
		ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 2 vmap {{ 0 : goto {ep_chain("10.244.1.5")}, 1 : goto {ep_chain("10.244.2.6")} }}
	}}

	chain {EXT} {{
		jump mark-for-masquerade
		goto {SVC}
	}}
}}
"""


def two_endpoints(**svc: Any) -> Cluster:
    return web(Ep("10.244.1.5", NODE), Ep("10.244.2.6", OTHER), kp=NFT, **svc)


def test_a_node_port_service_renders_the_whole_table() -> None:
    cluster = two_endpoints(type=ServiceType.NODE_PORT, node_port=30080)
    assert render_node_nft(cluster, NODE) == WHOLE


def test_the_listing_reads_back_to_the_same_model_and_text() -> None:
    text = render_node_nft(two_endpoints(type=ServiceType.NODE_PORT, node_port=30080), NODE)
    (table,) = parse_nft(text, source="rendered").tables
    assert nft_list_text(table) == text
    (again,) = parse_nft(nft_list_text(table)).tables
    assert again == table


def test_the_transaction_reads_into_the_same_table_as_the_listing() -> None:
    cluster = web(
        Ep("10.244.1.5", NODE),
        type=ServiceType.LOAD_BALANCER,
        node_port=30080,
        load_balancer_ips=(IPv4Address("203.0.113.10"),),
        session_affinity_timeout=600,
    )
    (from_tx,) = parse_nft(render_node_transaction(cluster, NODE), source="tx").tables
    (listed,) = parse_nft(render_node_nft(cluster, NODE), source="listed").tables
    assert list(from_tx.chains) == list(listed.chains)
    assert list(from_tx.sets) == list(listed.sets)
    for name, tx_chain in from_tx.chains.items():
        assert [r.exprs for r in tx_chain.rules] == [r.exprs for r in listed.chains[name].rules]
    for name, tx_set in from_tx.sets.items():
        assert sorted(e.key for e in tx_set.elements) == sorted(
            e.key for e in listed.sets[name].elements
        )


def test_the_transaction_begins_as_kube_proxys_first_sync() -> None:
    tx = render_node_transaction(two_endpoints(), NODE).splitlines()
    assert tx[:3] == [
        'add table ip kube-proxy { comment "rules for kube-proxy" ; }',
        "add chain ip kube-proxy filter-prerouting",
        "delete chain ip kube-proxy filter-prerouting",
    ]
    assert (
        "add chain ip kube-proxy filter-prerouting { type filter hook prerouting priority -110 ; }"
        in tx
    )
    assert "add rule ip kube-proxy mark-for-masquerade mark set mark or 0x00004000" in tx
    assert "add rule ip kube-proxy masquerading mark and 0x00004000 == 0 return" in tx
    assert f"add element ip kube-proxy service-ips {{ 10.96.0.10 . tcp . 80 : goto {SVC} }}" in tx
    assert tx.index("flush map ip kube-proxy service-ips") < tx.index(
        f"add element ip kube-proxy service-ips {{ 10.96.0.10 . tcp . 80 : goto {SVC} }}"
    )


# --- kube-proxy's shapes -----------------------------------------------------------


def test_cluster_ip_masquerades_only_from_outside_the_cluster_cidr() -> None:
    text = render_node_nft(two_endpoints(), NODE)
    assert chain(text, SVC)[0] == (
        "ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
    )
    assert EXT not in text  # a ClusterIP Service has no external chain
    every = render_node_nft(web(Ep("10.244.1.5"), kp=NFT.model_copy(update={
        "masquerade_all": True})), NODE)  # fmt: skip
    assert chain(every, SVC)[0] == ("ip daddr 10.96.0.10 tcp dport 80 jump mark-for-masquerade")
    no_cidr = render_node_nft(web(Ep("10.244.1.5"), kp=KubeProxyConfig(
        mode=ProxyMode.NFTABLES)), NODE)  # fmt: skip
    assert chain(no_cidr, SVC) == [
        f"numgen random mod 1 vmap {{ 0 : goto {ep_chain('10.244.1.5')} }}"
    ]


def test_node_port_with_local_traffic_policy_short_circuits_and_drops() -> None:
    cluster = two_endpoints(
        type=ServiceType.NODE_PORT,
        node_port=30080,
        external_traffic_policy=TrafficPolicy.LOCAL,
    )
    here = render_node_nft(cluster, NODE)
    assert chain(here, EXT) == [
        f'ip saddr 10.244.0.0/16 goto {SVC} comment "short-circuit pod traffic"',
        'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
        f'fib saddr type local goto {SVC} comment "short-circuit local traffic"',
        f"goto {LOCAL}",
    ]
    assert chain(here, LOCAL) == [
        f"numgen random mod 1 vmap {{ 0 : goto {ep_chain('10.244.1.5')} }}"
    ]
    # A node without a local endpoint keeps the short-circuits and drops the rest.
    alone = web(Ep("10.244.2.6", OTHER), type=ServiceType.NODE_PORT, node_port=30080,
                external_traffic_policy=TrafficPolicy.LOCAL)  # fmt: skip
    there = render_node_nft(alone, NODE)
    assert chain(there, EXT)[-1] == (
        f'fib saddr type local goto {SVC} comment "short-circuit local traffic"'
    )
    assert LOCAL not in chains(there)
    assert elements(there, "no-endpoint-nodeports") == [
        'tcp . 30080 comment "default/web:http" : drop'
    ]


def test_load_balancer_source_ranges_make_a_firewall_chain() -> None:
    cluster = two_endpoints(
        type=ServiceType.LOAD_BALANCER,
        node_port=30080,
        load_balancer_ips=(IPv4Address("203.0.113.10"),),
        load_balancer_source_ranges=(
            IPv4Network("198.51.100.0/25"),
            IPv4Network("198.51.100.128/25"),
        ),
    )
    text = render_node_nft(cluster, NODE)
    assert elements(text, "firewall-ips") == [f"203.0.113.10 . tcp . 80 : goto {FW}"]
    assert elements(text, "service-ips") == [
        f"10.96.0.10 . tcp . 80 : goto {SVC}",
        f"203.0.113.10 . tcp . 80 : goto {EXT}",
    ]
    # nft merges the two halves it was given into one range.
    assert chain(text, FW) == ["ip saddr != { 198.51.100.0/24 } drop"]
    # A range holding the node's own address lets the LB IP in as a source too.
    with_node = two_endpoints(
        type=ServiceType.LOAD_BALANCER,
        node_port=30080,
        load_balancer_ips=(IPv4Address("203.0.113.10"),),
        load_balancer_source_ranges=(IPv4Network("192.168.0.0/24"),),
    )
    assert chain(render_node_nft(with_node, NODE), FW) == [
        "ip saddr != { 192.168.0.0/24, 203.0.113.10 } drop"
    ]


def test_one_source_range_is_listed_bare_and_a_host_as_its_address() -> None:
    cluster = two_endpoints(
        type=ServiceType.LOAD_BALANCER,
        node_port=30080,
        load_balancer_ips=(IPv4Address("203.0.113.10"),),
        load_balancer_source_ranges=(IPv4Network("198.51.100.7/32"),),
    )
    assert chain(render_node_nft(cluster, NODE), FW) == ["ip saddr != 198.51.100.7 drop"]
    tx = render_node_transaction(cluster, NODE)
    assert f"add rule ip kube-proxy {FW} ip saddr != {{ 198.51.100.7/32 }} drop" in tx


def test_a_service_without_endpoints_is_rejected_by_the_no_endpoint_maps() -> None:
    text = render_node_nft(web(type=ServiceType.NODE_PORT, node_port=30080), NODE)
    assert elements(text, "no-endpoint-services") == [
        '10.96.0.10 . tcp . 80 comment "default/web:http" : goto reject-chain'
    ]
    assert elements(text, "no-endpoint-nodeports") == [
        'tcp . 30080 comment "default/web:http" : goto reject-chain'
    ]
    assert elements(text, "service-ips") == []
    assert elements(text, "cluster-ips") == ["10.96.0.10"]
    assert SVC not in chains(text)


def test_session_affinity_makes_a_set_per_endpoint() -> None:
    text = render_node_nft(two_endpoints(session_affinity_timeout=10800), NODE)
    block = text.split(f"\tset {affinity('10.244.1.5')} {{\n", 1)[1].split("\n\t}", 1)[0]
    assert block.splitlines() == [
        "\t\ttype ipv4_addr",
        "\t\tsize 65535",
        "\t\tflags dynamic,timeout",
        "\t\ttimeout 3h",
    ]
    assert chain(text, SVC)[1:] == [
        f"ip saddr @{affinity('10.244.1.5')} goto {ep_chain('10.244.1.5')}",
        f"ip saddr @{affinity('10.244.2.6')} goto {ep_chain('10.244.2.6')}",
        f"numgen random mod 2 vmap {{ 0 : goto {ep_chain('10.244.1.5')}, 1 : goto"
        f" {ep_chain('10.244.2.6')} }}",
    ]
    assert chain(text, ep_chain("10.244.1.5")) == [
        "ip saddr 10.244.1.5 jump mark-for-masquerade",
        f"update @{affinity('10.244.1.5')} {{ ip saddr }}",
        "meta l4proto tcp dnat to 10.244.1.5:8080",
    ]


def test_hairpin_traffic_is_masqueraded_by_each_endpoint_chain() -> None:
    text = render_node_nft(two_endpoints(), NODE)
    for ip in ("10.244.1.5", "10.244.2.6"):
        assert chain(text, ep_chain(ip))[0] == f"ip saddr {ip} jump mark-for-masquerade"


def test_service_cidrs_add_the_drop_of_unallocated_cluster_ips() -> None:
    without = render_node_nft(two_endpoints(), NODE)
    assert chain(without, "cluster-ips-check") == [
        'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"'
    ]
    one = render_node_nft(two_endpoints(service_cidrs=(IPv4Network("10.96.0.0/12"),)), NODE)
    assert chain(one, "cluster-ips-check")[1] == (
        'ip daddr 10.96.0.0/12 drop comment "Drop traffic to unallocated ClusterIPs"'
    )
    two = render_node_nft(
        two_endpoints(service_cidrs=(IPv4Network("10.96.0.0/16"), IPv4Network("10.100.0.0/16"))),
        NODE,
    )
    assert chain(two, "cluster-ips-check")[1] == (
        'ip daddr { 10.96.0.0/16, 10.100.0.0/16 } drop comment "Drop traffic to unallocated'
        ' ClusterIPs"'
    )


def test_node_port_addresses_choose_where_node_ports_answer() -> None:
    every = NFT.model_copy(update={"node_port_addresses": (IPv4Network("0.0.0.0/0"),)})
    text = render_node_nft(web(Ep("10.244.1.5"), kp=every, type=ServiceType.NODE_PORT,
                               node_port=30080), NODE)  # fmt: skip
    assert "set nodeport-ips" not in text
    assert chain(text, "services")[1] == (
        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap"
        " @service-nodeports"
    )
    assert chain(text, "nodeport-endpoints-check") == [
        "ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"
    ]
    pods = NFT.model_copy(update={"node_port_addresses": (IPv4Network("10.244.0.0/16"),)})
    bridge = render_node_nft(web(Ep("10.244.1.5"), kp=pods), NODE)
    assert elements(bridge, "nodeport-ips") == ["10.244.1.1"]


def test_kubelet_keeps_its_iptables_rules_in_nftables_mode() -> None:
    assert kubelet_iptables() == (
        "*mangle\n"
        ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
        ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
        ":KUBE-IPTABLES-HINT - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\n"
        "COMMIT\n"
        "*filter\n"
        ":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":KUBE-FIREWALL - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\n"
        "-A INPUT -j KUBE-FIREWALL\n"
        "-A OUTPUT -j KUBE-FIREWALL\n"
        '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming'
        ' localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n'
        "COMMIT\n"
        "*nat\n"
        ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\n"
        ":KUBE-KUBELET-CANARY - [0:0]\n"
        "COMMIT\n"
    )


# --- the mode behind the seam ---------------------------------------------------------


def nft_demo() -> Cluster:
    demo = demo_cluster()
    return demo.model_copy(
        update={"kube_proxy": demo.kube_proxy.model_copy(update={"mode": ProxyMode.NFTABLES})}
    )


def test_the_mode_is_chosen_from_kube_proxy_configuration() -> None:
    assert mode_of(nft_demo()) is NFTABLES
    assert mode_of(demo_cluster()).name == "iptables"


def test_the_node_holds_kubelets_iptables_and_kube_proxys_nft_table() -> None:
    cluster = nft_demo()
    rules = node_rules(cluster, "node-a")
    assert rules.text.startswith("*mangle\n") and "KUBE-SERVICES" not in rules.text
    # What the node shows: the table first, then kubelet's iptables.
    nft_text = rules.nft_text  # type: ignore[attr-defined]
    assert render_rules(cluster, "node-a") == (
        f"# nft list table ip kube-proxy\n{nft_text.rstrip()}\n\n# iptables-save\n{rules.text}"
    )
    nft = nft_of(rules)
    assert nft is not None and nft.tables[0].label == "ip kube-proxy"
    assert dnats_to(rules, (IPv4Address("192.168.1.3"), 8080))
    assert not dnats_to(rules, (IPv4Address("192.168.1.3"), 9090))
    owners = chain_owners(cluster, "node-a")
    svc_b = "service-" + service_port_base("default", "svc-b", "tcp", "http")
    assert owners[svc_b] == "default/svc-b:http"


def test_every_endpoint_chain_dnats_to_its_endpoint() -> None:
    rules = node_rules(nft_demo(), "node-a")
    nft = nft_of(rules)
    assert nft is not None
    (table,) = nft.tables
    for name in table.chains:
        if not name.startswith("endpoint-"):
            continue
        nat = next(e for r in table.chains[name].rules for e in r.exprs if isinstance(e, NftNat))
        ip, port = name.rsplit("__", 1)[1].split("/")
        assert (str(nat.addr), nat.port) == (ip, int(port))
    numgens = [
        e for c in table.chains.values() for r in c.rules for e in r.exprs
        if isinstance(e, NftVmap) and e.numgen
    ]  # fmt: skip
    assert sorted(v.numgen or 0 for v in numgens) == [1, 1, 2, 3, 3]


# --- the real kernel ------------------------------------------------------------------


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace of the test's own; nft runs only inside it."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Linux to create a network namespace")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    name = f"kh-test-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _nft(ns: str, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", *args], input=stdin, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise AssertionError(f"nft {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


ZOO = [
    pytest.param(two_endpoints(type=ServiceType.NODE_PORT, node_port=30080), id="nodeport"),
    pytest.param(
        two_endpoints(
            type=ServiceType.LOAD_BALANCER,
            node_port=30080,
            external_traffic_policy=TrafficPolicy.LOCAL,
            load_balancer_ips=(IPv4Address("203.0.113.10"),),
            load_balancer_source_ranges=(IPv4Network("192.168.0.0/24"),),
            session_affinity_timeout=600,
            external_ips=(IPv4Address("198.51.100.9"),),
            service_cidrs=(IPv4Network("10.96.0.0/16"), IPv4Network("10.97.0.0/16")),
        ),
        id="load-balancer-local-affinity",
    ),
    pytest.param(web(type=ServiceType.NODE_PORT, node_port=30080), id="no-endpoints"),
    pytest.param(nft_demo(), id="demo"),
    pytest.param(
        two_endpoints(
            type=ServiceType.LOAD_BALANCER,
            node_port=30080,
            load_balancer_ips=(IPv4Address("203.0.113.10"),),
            load_balancer_source_ranges=(IPv4Network("198.51.100.7/32"),),
        ),
        id="one-host-source-range",
    ),
]


@pytest.mark.lab
@pytest.mark.parametrize("cluster", ZOO)
def test_nft_list_on_a_real_kernel_matches(netns: str, cluster: Cluster) -> None:
    node = cluster.nodes[0].name
    _nft(netns, "-f", "-", stdin=render_node_transaction(cluster, node))
    assert _nft(netns, "list", "table", "ip", "kube-proxy") == render_node_nft(cluster, node)
