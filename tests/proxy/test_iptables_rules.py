"""kube-proxy's iptables rules, rendered for one node, checked line by line.

Expected lines are iptables-save's spelling (what a user sees on a node). The
`lab` tests prove that spelling against the real iptables in a scratch network
namespace: they replay kubelet's and kube-proxy's start-up there, restore
kube-proxy's input, and compare `iptables-save` with `render_node_rules`.
"""

# Expected rules are iptables-save lines, verbatim and often long.

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.cluster import (
    Cluster,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    KubeProxyConfig,
    Node,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
)
from model.errors import RequestError
from model.packet import Proto
from sim.cluster.load import demo_cluster
from sim.proxy.iptables import (
    LARGE_CLUSTER_ENDPOINTS_THRESHOLD,
    chain_owners,
    endpoint_chain_name,
    render_node_restore,
    render_node_rules,
    service_external_chain_name,
    service_firewall_chain_name,
    service_local_chain_name,
    service_port_chain_name,
)
from sim.proxy.iptables.save import save_rule, save_text
from sim.proxy.iptables.sync import Presaved, sync

NODE = "node-a"
OTHER = "node-b"
CIDR = IPv4Network("10.244.0.0/16")

WEB = "default/web:http"
WEB_SVC = service_port_chain_name(WEB, "tcp")
WEB_SVL = service_local_chain_name(WEB, "tcp")
WEB_EXT = service_external_chain_name(WEB, "tcp")
WEB_FW = service_firewall_chain_name(WEB, "tcp")


def sep(ep: str, name: str = WEB) -> str:
    return endpoint_chain_name(name, "tcp", ep)


@dataclass(frozen=True)
class Ep:
    ip: str
    node: str = OTHER
    ready: bool = True
    serving: bool = True
    terminating: bool = False


def web(*eps: Ep, kp: KubeProxyConfig | None = None, **svc: object) -> Cluster:
    """Two nodes and the Service default/web (port "http" 80 → 8080) with `eps`."""
    port = {"node_port": svc.pop("node_port")} if "node_port" in svc else {}
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
        endpoints=tuple(
            Endpoint(
                ip=IPv4Address(e.ip),
                node=e.node,
                ready=e.ready,
                serving=e.serving,
                terminating=e.terminating,
            )
            for e in eps
        ),
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
        kube_proxy=kp or KubeProxyConfig(cluster_cidr=CIDR),
    )


def rules(text: str, table: str, chain: str) -> list[str]:
    """The `-A chain` lines of one table."""
    lines = text.split(f"*{table}\n", 1)[1].split("COMMIT\n", 1)[0].splitlines()
    return [line for line in lines if line.startswith(f"-A {chain} ")]


def chains(text: str, table: str) -> list[str]:
    lines = text.split(f"*{table}\n", 1)[1].split("COMMIT\n", 1)[0].splitlines()
    return [line.split()[0][1:] for line in lines if line.startswith(":")]


# --- chain names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        # Names from kube-proxy's own proxier_test.go (TestOverallIPTablesRules).
        (service_port_chain_name("ns1/svc1:p80", "tcp"), "KUBE-SVC-XPGD46QRK7WJZT7O"),
        (service_local_chain_name("ns1/svc1:p80", "tcp"), "KUBE-SVL-XPGD46QRK7WJZT7O"),
        (service_port_chain_name("ns4/svc4:p80", Proto.TCP), "KUBE-SVC-4SW47YFZTEDKD3PK"),
        (service_external_chain_name("ns2/svc2:p80", "tcp"), "KUBE-EXT-GNZBNJ2PO5MGZ6GT"),
        (service_firewall_chain_name("ns5/svc5:p80", "tcp"), "KUBE-FW-NUKIZ6OKUXPJNT4C"),
        (endpoint_chain_name("ns1/svc1:p80", "tcp", "10.180.0.1:80"), "KUBE-SEP-SXIVWICOYRO3J4NJ"),
        (endpoint_chain_name("ns1/svc1:p80", "tcp", "10.180.0.2:80"), "KUBE-SEP-LXVODXWDISEETFEF"),
        (endpoint_chain_name("ns4/svc4:p80", "TCP", "10.180.0.5:80"), "KUBE-SEP-C6EBXVWJJZMIWKLZ"),
    ],
)
def test_chain_names_hash_like_kube_proxy(chain: str, expected: str) -> None:
    assert chain == expected


# --- a ClusterIP service, whole output --------------------------------------------

THREE_ENDPOINTS = """\
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-SEP-GWQABTP5GBYXHJY5 - [0:0]
:KUBE-SEP-UIQK3OSOSTRHRPBX - [0:0]
:KUBE-SEP-VQGOCFX4X6FWJPNR - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-CDGGSHYLG3RE2FKL - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-GWQABTP5GBYXHJY5 -s 10.244.1.10/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-GWQABTP5GBYXHJY5 -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.10:8080
-A KUBE-SEP-UIQK3OSOSTRHRPBX -s 10.244.1.2/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-UIQK3OSOSTRHRPBX -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-VQGOCFX4X6FWJPNR -s 10.244.2.3/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-VQGOCFX4X6FWJPNR -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.2.3:8080
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-CDGGSHYLG3RE2FKL
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-CDGGSHYLG3RE2FKL ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.10:8080" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-GWQABTP5GBYXHJY5
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.2:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-UIQK3OSOSTRHRPBX
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.2.3:8080" -j KUBE-SEP-VQGOCFX4X6FWJPNR
COMMIT
"""


def test_clusterip_service_with_three_endpoints() -> None:
    # Endpoints are ordered as strings, so 10.244.1.10 comes before 10.244.1.2.
    cluster = web(Ep("10.244.2.3"), Ep("10.244.1.2", NODE), Ep("10.244.1.10", NODE))
    assert render_node_rules(cluster, NODE) == THREE_ENDPOINTS


def test_restore_input_keeps_kube_proxys_spelling() -> None:
    cluster = web(Ep("10.244.2.3"), Ep("10.244.1.2", NODE), Ep("10.244.1.10", NODE))
    text = render_node_restore(cluster, NODE)
    assert [line for line in text.splitlines() if line.startswith(f"-A {WEB_SVC} ")] == [
        f'-A {WEB_SVC} -m comment --comment "default/web:http cluster IP" -m tcp -p tcp'
        " -d 10.96.0.10 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ",
        f'-A {WEB_SVC} -m comment --comment "default/web:http -> 10.244.1.10:8080"'
        f" -m statistic --mode random --probability 0.3333333333 -j {sep('10.244.1.10:8080')}",
        f'-A {WEB_SVC} -m comment --comment "default/web:http -> 10.244.1.2:8080"'
        f" -m statistic --mode random --probability 0.5000000000 -j {sep('10.244.1.2:8080')}",
        f'-A {WEB_SVC} -m comment --comment "default/web:http -> 10.244.2.3:8080"'
        f" -j {sep('10.244.2.3:8080')}",
    ]
    # Go's %#08x pads the digits: kube-proxy writes 0x00004000, iptables shows 0x4000.
    assert "-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000" in text.splitlines()
    assert text.startswith("*filter\n:KUBE-SERVICES - [0:0]\n:KUBE-EXTERNAL-SERVICES - [0:0]\n")


def test_hairpin_rule_masquerades_an_endpoint_reaching_itself() -> None:
    text = render_node_rules(web(Ep("10.244.1.5", NODE)), NODE)
    assert rules(text, "nat", sep("10.244.1.5:8080"))[0] == (
        f"-A {sep('10.244.1.5:8080')} -s 10.244.1.5/32"
        ' -m comment --comment "default/web:http" -j KUBE-MARK-MASQ'
    )


# --- NodePort and traffic policies ----------------------------------------------------


def test_nodeport_with_cluster_traffic_policy() -> None:
    cluster = web(Ep("10.244.2.3"), type=ServiceType.NODE_PORT, node_port=30080)
    text = render_node_rules(cluster, NODE)
    assert rules(text, "nat", "KUBE-NODEPORTS") == [
        '-A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "default/web:http"'
        " -m tcp --dport 30080 -m nfacct --nfacct-name  localhost_nps_accepted_pkts"
        f" -j {WEB_EXT}",
        '-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web:http"'
        f" -m tcp --dport 30080 -j {WEB_EXT}",
    ]
    assert rules(text, "nat", WEB_EXT) == [
        f'-A {WEB_EXT} -m comment --comment "masquerade traffic for default/web:http'
        ' external destinations" -j KUBE-MARK-MASQ',
        f"-A {WEB_EXT} -j {WEB_SVC}",
    ]
    assert WEB_SVL not in chains(text, "nat")
    assert rules(text, "filter", "KUBE-EXTERNAL-SERVICES") == []


def _local_ext_rules(last: list[str]) -> list[str]:
    return [
        f'-A {WEB_EXT} -s 10.244.0.0/16 -m comment --comment "pod traffic for default/web:http'
        f' external destinations" -j {WEB_SVC}',
        f'-A {WEB_EXT} -m comment --comment "masquerade LOCAL traffic for default/web:http'
        ' external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
        f'-A {WEB_EXT} -m comment --comment "route LOCAL traffic for default/web:http'
        f' external destinations" -m addrtype --src-type LOCAL -j {WEB_SVC}',
        *last,
    ]


def test_external_traffic_policy_local_with_a_local_endpoint() -> None:
    cluster = web(
        Ep("10.244.1.5", NODE),
        Ep("10.244.2.3"),
        type=ServiceType.LOAD_BALANCER,
        node_port=30080,
        external_traffic_policy=TrafficPolicy.LOCAL,
        health_check_node_port=32000,
        load_balancer_ips=(IPv4Address("203.0.113.7"),),
    )
    text = render_node_rules(cluster, NODE)
    assert rules(text, "nat", WEB_EXT) == _local_ext_rules([f"-A {WEB_EXT} -j {WEB_SVL}"])
    # Only this node's endpoint behind the SVL chain; both behind SVC.
    assert rules(text, "nat", WEB_SVL) == [
        f'-A {WEB_SVL} -m comment --comment "default/web:http -> 10.244.1.5:8080"'
        f" -j {sep('10.244.1.5:8080')}",
    ]
    assert len(rules(text, "nat", WEB_SVC)) == 3
    assert rules(text, "filter", "KUBE-NODEPORTS") == [
        '-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web:http health check node port"'
        " -m tcp --dport 32000 -j ACCEPT",
    ]
    assert rules(text, "filter", "KUBE-EXTERNAL-SERVICES") == []


def test_external_traffic_policy_local_without_a_local_endpoint() -> None:
    cluster = web(
        Ep("10.244.2.3"),
        type=ServiceType.LOAD_BALANCER,
        node_port=30080,
        external_traffic_policy=TrafficPolicy.LOCAL,
        load_balancer_ips=(IPv4Address("203.0.113.7"),),
    )
    text = render_node_rules(cluster, NODE)
    # The short-circuit rules stay; outside traffic falls off the chain and is dropped.
    assert rules(text, "nat", WEB_EXT) == _local_ext_rules([])
    assert WEB_SVL not in chains(text, "nat")
    assert rules(text, "filter", "KUBE-EXTERNAL-SERVICES") == [
        "-A KUBE-EXTERNAL-SERVICES -d 203.0.113.7/32 -p tcp -m comment --comment"
        ' "default/web:http has no local endpoints" -m tcp --dport 80 -j DROP',
        "-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment"
        ' "default/web:http has no local endpoints" -m addrtype --dst-type LOCAL'
        " -m tcp --dport 30080 -j DROP",
    ]
    # On the endpoint's own node the same Service is not dropped.
    assert rules(render_node_rules(cluster, OTHER), "filter", "KUBE-EXTERNAL-SERVICES") == []


def test_internal_traffic_policy_local_without_a_local_endpoint_drops_cluster_ip() -> None:
    cluster = web(Ep("10.244.2.3"), internal_traffic_policy=TrafficPolicy.LOCAL)
    text = render_node_rules(cluster, NODE)
    assert rules(text, "filter", "KUBE-SERVICES") == [
        "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment"
        ' "default/web:http has no local endpoints" -m tcp --dport 80 -j DROP',
    ]
    assert not any(
        c.startswith(("KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-")) for c in chains(text, "nat")
    )


def test_service_without_endpoints_is_rejected() -> None:
    cluster = web(type=ServiceType.NODE_PORT, node_port=30080)
    text = render_node_rules(cluster, NODE)
    assert rules(text, "filter", "KUBE-SERVICES") == [
        "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment"
        ' "default/web:http has no endpoints" -m tcp --dport 80'
        " -j REJECT --reject-with icmp-port-unreachable",
    ]
    assert rules(text, "filter", "KUBE-EXTERNAL-SERVICES") == [
        "-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment"
        ' "default/web:http has no endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30080'
        " -j REJECT --reject-with icmp-port-unreachable",
    ]
    assert rules(text, "nat", "KUBE-NODEPORTS") == []
    assert len(rules(text, "nat", "KUBE-SERVICES")) == 1  # only the NodePort tail rule


def test_terminating_endpoints_are_used_when_none_is_ready() -> None:
    cluster = web(
        Ep("10.244.2.3", ready=False, terminating=True),
        Ep("10.244.2.4", ready=False, serving=False, terminating=True),
    )
    text = render_node_rules(cluster, NODE)
    assert rules(text, "nat", WEB_SVC)[1:] == [
        f'-A {WEB_SVC} -m comment --comment "default/web:http -> 10.244.2.3:8080"'
        f" -j {sep('10.244.2.3:8080')}",
    ]


def test_session_affinity_uses_recent() -> None:
    cluster = web(Ep("10.244.1.5", NODE), Ep("10.244.2.3"), session_affinity_timeout=600)
    text = render_node_rules(cluster, NODE)
    a, b = sep("10.244.1.5:8080"), sep("10.244.2.3:8080")
    assert rules(text, "nat", WEB_SVC)[1:3] == [
        f'-A {WEB_SVC} -m comment --comment "default/web:http -> 10.244.1.5:8080"'
        f" -m recent --rcheck --seconds 600 --reap --name {a} --mask 255.255.255.255 --rsource"
        f" -j {a}",
        f'-A {WEB_SVC} -m comment --comment "default/web:http -> 10.244.2.3:8080"'
        f" -m recent --rcheck --seconds 600 --reap --name {b} --mask 255.255.255.255 --rsource"
        f" -j {b}",
    ]
    assert rules(text, "nat", a)[1] == (
        f'-A {a} -p tcp -m comment --comment "default/web:http"'
        f" -m recent --set --name {a} --mask 255.255.255.255 --rsource"
        " -m tcp -j DNAT --to-destination 10.244.1.5:8080"
    )


def test_masquerade_all_marks_every_cluster_ip_packet() -> None:
    kp = KubeProxyConfig(cluster_cidr=CIDR, masquerade_all=True)
    text = render_node_rules(web(Ep("10.244.2.3"), kp=kp), NODE)
    assert rules(text, "nat", WEB_SVC)[0] == (
        f"-A {WEB_SVC} -d 10.96.0.10/32 -p tcp -m comment --comment"
        ' "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ'
    )


def test_without_cluster_cidr_there_is_no_local_traffic_detection() -> None:
    cluster = web(
        Ep("10.244.1.5", NODE),
        kp=KubeProxyConfig(),
        type=ServiceType.NODE_PORT,
        node_port=30080,
        external_traffic_policy=TrafficPolicy.LOCAL,
    )
    text = render_node_rules(cluster, NODE)
    assert all("KUBE-MARK-MASQ" not in r for r in rules(text, "nat", WEB_SVC))
    assert rules(text, "nat", WEB_EXT) == _local_ext_rules([f"-A {WEB_EXT} -j {WEB_SVL}"])[1:]


def test_masquerade_bit_sets_the_mark() -> None:
    kp = KubeProxyConfig(cluster_cidr=CIDR, masquerade_bit=12)
    text = render_node_rules(web(Ep("10.244.2.3"), kp=kp), NODE)
    assert rules(text, "nat", "KUBE-MARK-MASQ") == [
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x1000/0x1000"
    ]
    assert rules(text, "nat", "KUBE-POSTROUTING")[0] == (
        "-A KUBE-POSTROUTING -m mark ! --mark 0x1000/0x1000 -j RETURN"
    )


def test_load_balancer_source_ranges() -> None:
    cluster = web(
        Ep("10.244.2.3"),
        type=ServiceType.LOAD_BALANCER,
        node_port=30080,
        load_balancer_ips=(IPv4Address("203.0.113.7"),),
        load_balancer_source_ranges=(IPv4Network("198.51.100.0/24"), IPv4Network("192.168.0.0/24")),
    )
    text = render_node_rules(cluster, NODE)
    comment = '-m comment --comment "default/web:http loadbalancer IP"'
    assert rules(text, "nat", WEB_FW) == [
        f"-A {WEB_FW} -s 198.51.100.0/24 {comment} -j {WEB_EXT}",
        f"-A {WEB_FW} -s 192.168.0.0/24 {comment} -j {WEB_EXT}",
        # The node's own IP is in a range, so the LB IP as a source is let in too.
        f"-A {WEB_FW} -s 203.0.113.7/32 {comment} -j {WEB_EXT}",
        f'-A {WEB_FW} -m comment --comment "other traffic to default/web:http will be dropped'
        ' by KUBE-PROXY-FIREWALL"',
    ]
    assert rules(text, "filter", "KUBE-PROXY-FIREWALL") == [
        "-A KUBE-PROXY-FIREWALL -d 203.0.113.7/32 -p tcp -m comment --comment"
        f' "default/web:http traffic not accepted by {WEB_FW}" -m tcp --dport 80 -j DROP',
    ]
    assert f"-j {WEB_FW}" in rules(text, "nat", "KUBE-SERVICES")[1]


def test_node_port_addresses_restrict_the_nodeport_tail_rule() -> None:
    kp = KubeProxyConfig(cluster_cidr=CIDR, node_port_addresses=(IPv4Network("192.168.0.0/24"),))
    cluster = web(Ep("10.244.2.3"), kp=kp, type=ServiceType.NODE_PORT, node_port=30080)
    text = render_node_rules(cluster, NODE)
    assert rules(text, "nat", "KUBE-SERVICES")[-1] == (
        "-A KUBE-SERVICES -d 192.168.0.2/32 -m comment --comment"
        ' "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
        " -j KUBE-NODEPORTS"
    )
    # No loopback address is allowed, so localhost NodePorts are off.
    assert len(rules(text, "nat", "KUBE-NODEPORTS")) == 1
    # kubelet's KUBE-FIREWALL rule is there whether or not kube-proxy writes it.
    assert len(rules(text, "filter", "KUBE-FIREWALL")) == 1


def test_node_port_addresses_include_the_bridge() -> None:
    kp = KubeProxyConfig(cluster_cidr=CIDR, node_port_addresses=(IPv4Network("10.244.1.0/24"),))
    text = render_node_rules(web(Ep("10.244.2.3"), kp=kp), NODE)
    assert rules(text, "nat", "KUBE-SERVICES")[-1].startswith("-A KUBE-SERVICES -d 10.244.1.1/32 ")


def test_comments_are_dropped_above_1000_endpoints() -> None:
    def cluster(count: int) -> Cluster:
        return web(*(Ep(f"10.244.{2 + i // 250}.{1 + i % 250}") for i in range(count)))

    small = render_node_rules(cluster(LARGE_CLUSTER_ENDPOINTS_THRESHOLD), NODE)
    assert "default/web:http -> 10.244.2.1:8080" in small

    large = render_node_rules(cluster(LARGE_CLUSTER_ENDPOINTS_THRESHOLD + 1), NODE)
    # "10.244.2.100:8080" sorts first: '0' < ':'.
    first = sep("10.244.2.100:8080")
    assert rules(large, "nat", first) == [
        f"-A {first} -s 10.244.2.100/32 -j KUBE-MARK-MASQ",
        f"-A {first} -p tcp -m tcp -j DNAT --to-destination 10.244.2.100:8080",
    ]
    svc = rules(large, "nat", WEB_SVC)
    assert svc[1] == (
        f"-A {WEB_SVC} -m statistic --mode random --probability 0.00099900085 -j {first}"
    )
    # Only the per-endpoint comments go; the rest stay.
    assert '"default/web:http cluster IP"' in svc[0]
    assert len(svc) == LARGE_CLUSTER_ENDPOINTS_THRESHOLD + 2


def test_headless_and_external_name_services_get_no_rules() -> None:
    base = web(Ep("10.244.2.3"))
    nothing = render_node_rules(base.model_copy(update={"services": ()}), NODE)
    for svc in (
        base.services[0].model_copy(update={"cluster_ip": None}),
        base.services[0].model_copy(update={"type": ServiceType.EXTERNAL_NAME}),
    ):
        cluster = base.model_copy(update={"services": (svc,)})
        assert render_node_rules(cluster, NODE) == nothing


def test_endpoint_ports_match_by_name_and_protocol() -> None:
    base = web(Ep("10.244.2.3"))
    udp = base.endpoint_slices[0].model_copy(
        update={
            "name": "web-udp",
            "ports": (EndpointPort(name="http", port=9999, protocol=Proto.UDP),),
        }
    )
    other = base.endpoint_slices[0].model_copy(
        update={"name": "web-x", "ports": (EndpointPort(name="metrics", port=9090),)}
    )
    cluster = base.model_copy(update={"endpoint_slices": (*base.endpoint_slices, udp, other)})
    assert render_node_rules(cluster, NODE) == render_node_rules(base, NODE)


def test_chain_owners_name_the_service_port_and_endpoint() -> None:
    cluster = web(Ep("10.244.1.5", NODE), type=ServiceType.NODE_PORT, node_port=30080)
    assert chain_owners(cluster, NODE) == {
        WEB_EXT: WEB,
        WEB_SVC: WEB,
        sep("10.244.1.5:8080"): "default/web:http -> 10.244.1.5:8080",
    }


def test_unknown_node_is_a_user_error() -> None:
    with pytest.raises(RequestError, match="node 'nope'"):
        render_node_rules(web(), "nope")


# --- the real iptables, in a scratch network namespace --------------------------------


def _lab_cluster() -> Cluster:
    """Every kind of rule at once."""
    base = web(
        Ep("10.244.1.5", NODE),
        Ep("10.244.2.3"),
        Ep("10.244.2.4"),
        type=ServiceType.LOAD_BALANCER,
        node_port=30080,
        external_traffic_policy=TrafficPolicy.LOCAL,
        health_check_node_port=32000,
        load_balancer_ips=(IPv4Address("203.0.113.7"),),
        load_balancer_source_ranges=(IPv4Network("192.168.0.0/24"),),
        external_ips=(IPv4Address("192.168.0.100"),),
        session_affinity_timeout=600,
    )
    extra = (
        Service(
            name="empty",
            cluster_ip=IPv4Address("10.96.0.11"),
            type=ServiceType.NODE_PORT,
            ports=(ServicePort(port=53, protocol=Proto.UDP, target_port=53, node_port=30053),),
            external_ips=(IPv4Address("192.168.0.101"),),
        ),
        Service(
            name="dns",
            cluster_ip=IPv4Address("10.96.0.12"),
            ports=(ServicePort(name="dns", port=53, protocol=Proto.UDP, target_port=53),),
        ),
    )
    dns = EndpointSlice(
        name="dns-1",
        service="dns",
        ports=(EndpointPort(name="dns", port=53, protocol=Proto.UDP),),
        endpoints=(Endpoint(ip=IPv4Address("10.244.2.9"), node=OTHER),),
    )
    return base.model_copy(
        update={
            "services": (*base.services, *extra),
            "endpoint_slices": (*base.endpoint_slices, dns),
        }
    )


# Creates kube-proxy's nfacct counters (NFNL_SUBSYS_ACCT, NFNL_MSG_ACCT_NEW), as it
# does at start-up; `-m nfacct` rules need them to exist.
_NFACCT = """
import socket, struct, sys
for name in sys.argv[1:]:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
    raw = name.encode() + b"\\0"
    attr = struct.pack("HH", 4 + len(raw), 1) + raw
    attr += b"\\0" * (-len(attr) % 4)
    body = struct.pack("BBH", 0, 0, 0) + attr
    s.send(struct.pack("IHHII", 16 + len(body), 7 << 8, 0x1 | 0x4 | 0x400, 1, 0) + body)
    assert struct.unpack("i", s.recv(4096)[16:20])[0] == 0, name
"""


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace of the test's own; iptables runs only inside it."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Linux to create a network namespace")
    for tool in ("ip", "iptables", "iptables-restore", "iptables-save"):
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


def _in(ns: str, *cmd: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, *cmd], input=stdin, capture_output=True, text=True
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


@pytest.mark.lab
def test_iptables_restore_accepts_the_output(netns: str, tmp_path: Path) -> None:
    cluster = _lab_cluster()
    for text in (render_node_restore(cluster, NODE), render_node_rules(cluster, NODE)):
        (tmp_path / "rules").write_text(text)
        _in(netns, "iptables-restore", "--test", str(tmp_path / "rules"))


def _ipt(ns: str, table: str, *args: str) -> bool:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "iptables", "-w", "-t", table, *args], capture_output=True
    )
    return done.returncode == 0


def _start_kubelet_and_kube_proxy(ns: str) -> None:
    """Replay what kubelet then kube-proxy do outside iptables-restore (their 1.31 source)."""
    _in(
        ns,
        sys.executable,
        "-c",
        _NFACCT,
        "ct_state_invalid_dropped_pkts",
        "localhost_nps_accepted_pkts",
    )
    # kubelet: syncIPTablesRules, then the canary of its iptables monitor.
    assert _ipt(ns, "mangle", "-N", "KUBE-IPTABLES-HINT")
    assert _ipt(ns, "filter", "-N", "KUBE-FIREWALL")
    assert _ipt(ns, "filter", "-I", "OUTPUT", "-j", "KUBE-FIREWALL")
    assert _ipt(ns, "filter", "-I", "INPUT", "-j", "KUBE-FIREWALL")
    assert _ipt(
        ns,
        "filter",
        "-A",
        "KUBE-FIREWALL",
        "-m",
        "comment",
        "--comment",
        "block incoming localnet connections",
        "--dst",
        "127.0.0.0/8",
        "!",
        "--src",
        "127.0.0.0/8",
        "-m",
        "conntrack",
        "!",
        "--ctstate",
        "RELATED,ESTABLISHED,DNAT",
        "-j",
        "DROP",
    )
    for canary in ("KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"):
        for table in ("mangle", "nat", "filter"):
            assert _ipt(ns, table, "-N", canary)
    # kube-proxy: EnsureChain + EnsureRule(Prepend) for each of its jumps.
    new = ("-m", "conntrack", "--ctstate", "NEW")
    jumps = [
        (
            "filter",
            "INPUT",
            "KUBE-EXTERNAL-SERVICES",
            new,
            "kubernetes externally-visible service portals",
        ),
        (
            "filter",
            "FORWARD",
            "KUBE-EXTERNAL-SERVICES",
            new,
            "kubernetes externally-visible service portals",
        ),
        ("filter", "INPUT", "KUBE-NODEPORTS", (), "kubernetes health check service ports"),
        ("filter", "FORWARD", "KUBE-SERVICES", new, "kubernetes service portals"),
        ("filter", "OUTPUT", "KUBE-SERVICES", new, "kubernetes service portals"),
        ("filter", "FORWARD", "KUBE-FORWARD", (), "kubernetes forwarding rules"),
        ("filter", "INPUT", "KUBE-PROXY-FIREWALL", new, "kubernetes load balancer firewall"),
        ("filter", "OUTPUT", "KUBE-PROXY-FIREWALL", new, "kubernetes load balancer firewall"),
        ("filter", "FORWARD", "KUBE-PROXY-FIREWALL", new, "kubernetes load balancer firewall"),
        ("nat", "OUTPUT", "KUBE-SERVICES", (), "kubernetes service portals"),
        ("nat", "PREROUTING", "KUBE-SERVICES", (), "kubernetes service portals"),
        ("nat", "POSTROUTING", "KUBE-POSTROUTING", (), "kubernetes postrouting rules"),
        ("filter", "INPUT", "KUBE-FIREWALL", (), ""),
        ("filter", "OUTPUT", "KUBE-FIREWALL", (), ""),
    ]
    for table, src, dst, extra, comment in jumps:
        _ipt(ns, table, "-N", dst)  # fails harmlessly when it exists
        rule = (*extra, *(("-m", "comment", "--comment", comment) if comment else ()), "-j", dst)
        if not _ipt(ns, table, "-C", src, *rule):
            assert _ipt(ns, table, "-I", src, *rule)


@pytest.mark.lab
def test_iptables_save_on_a_real_kernel_matches(netns: str, tmp_path: Path) -> None:
    cluster = _lab_cluster()
    _start_kubelet_and_kube_proxy(netns)
    (tmp_path / "restore").write_text(render_node_restore(cluster, NODE))
    _in(netns, "iptables-restore", "--noflush", "--counters", str(tmp_path / "restore"))
    saved = _in(netns, "iptables-save")
    if "(legacy)" in saved:
        pytest.skip("iptables-legacy lists tables in another order; kubehop renders nf_tables")
    without_dates = "".join(line for line in saved.splitlines(True) if not line.startswith("#"))
    assert without_dates == render_node_rules(cluster, NODE)


@pytest.mark.parametrize(
    "cluster",
    [
        pytest.param(lambda: web(Ep("10.244.1.5", NODE), Ep("10.244.2.6")), id="three rules"),
        pytest.param(
            lambda: web(
                Ep("10.244.1.5", NODE),
                Ep("10.244.2.6"),
                session_affinity_timeout=10800,
            ),
            id="session affinity",
        ),
        pytest.param(
            lambda: web(*(Ep(f"10.244.{i // 250}.{i % 250 + 2}") for i in range(1001))),
            id="above 1000 endpoints",
        ),
        pytest.param(demo_cluster, id="demo"),
    ],
)
def test_presaved_rules_spell_what_save_rule_would(cluster: Callable[[], Cluster]) -> None:
    # The per-endpoint rules are spelled for iptables-save as sync writes them;
    # the generic normalisation must agree with every one of them.
    made = cluster()
    restore = sync(made, made.nodes[0])
    presaved = [r for r in restore.nat_rules if isinstance(r, Presaved)]
    assert presaved
    for rule in presaved:
        assert rule.saved == save_rule(rule)
    # Without kube-proxy's own argument lists the saved text is the same.
    lean = sync(made, made.nodes[0], restore_tokens=False)
    assert save_text(lean) == save_text(restore)


@given(st.text())
def test_chain_hash_is_base32_of_sha256(text: str) -> None:
    import base64
    import hashlib

    from sim.proxy.iptables.names import _hash16

    expected = base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]
    assert _hash16.__wrapped__(text) == expected


# --- a NodePort or LoadBalancer port the API server gave no nodePort ----------------


@pytest.mark.parametrize("type_", [ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER])
def test_a_port_without_a_node_port_gets_no_node_port_rule(type_: ServiceType) -> None:
    # kube-proxy's tests build such Services; kube-proxy skips the NodePort rules.
    cluster = web(Ep("10.244.2.3"), type=type_, load_balancer_ips=(IPv4Address("192.0.2.7"),))
    assert cluster.services[0].ports[0].node_port is None
    text = render_node_rules(cluster, NODE)
    assert rules(text, "nat", "KUBE-NODEPORTS") == []
    assert rules(text, "filter", "KUBE-EXTERNAL-SERVICES") == []
    assert rules(text, "nat", "KUBE-SERVICES")[:2] == [
        f'-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "{WEB} cluster IP"'
        f" -m tcp --dport 80 -j {WEB_SVC}",
        f'-A KUBE-SERVICES -d 192.0.2.7/32 -p tcp -m comment --comment "{WEB} loadbalancer IP"'
        f" -m tcp --dport 80 -j {WEB_EXT}",
    ]
