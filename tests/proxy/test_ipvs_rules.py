"""kube-proxy's IPVS mode, rendered for one node: ipvsadm-save, ipset save, iptables-save.

Shapes follow kube-proxy's own proxier_test.go cases (ClusterIP, NodePort with
externalTrafficPolicy Cluster and Local, LoadBalancer with source ranges, no
endpoints, session affinity, hairpin); the expected text is written here, in
what `ipvsadm-save -n` (ipvsadm 1.31), `ipset save` and `iptables-save` print.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

from model.cluster import (
    Cluster,
    KubeProxyConfig,
    ProxyMode,
    ServiceType,
    TrafficPolicy,
)
from model.packet import Proto
from sim.proxy import dnats_to, mode_of
from sim.proxy.ipvs import IPVS, RenderedIpvsRules
from sim.proxy.ipvs.save import ipset_save, ipvsadm_save
from sim.proxy.ipvs.sync import sync
from tests.proxy.test_nftables_rules import Ep
from tests.proxy.test_nftables_rules import web as nft_web

NODE = "node-a"
OTHER = "node-b"
CIDR = IPv4Network("10.244.0.0/16")
IPVS_CONFIG = KubeProxyConfig(mode=ProxyMode.IPVS, cluster_cidr=CIDR)


def web(*eps: Ep, kp: KubeProxyConfig = IPVS_CONFIG, **svc: Any) -> Cluster:
    """Two nodes in IPVS mode and the Service default/web (port "http" 80 → 8080)."""
    return nft_web(*eps, kp=kp, **svc)


def ipvsadm(cluster: Cluster) -> str:
    node = cluster.node(NODE)
    assert node is not None
    return ipvsadm_save(sync(cluster, node).table("t", cluster))


def members(cluster: Cluster, name: str) -> list[str]:
    node = cluster.node(NODE)
    assert node is not None
    text = ipset_save(sync(cluster, node))
    return [line.split(" ", 2)[2] for line in text.splitlines() if line.startswith(f"add {name} ")]


def chain(cluster: Cluster, table: str, name: str) -> list[str]:
    text = mode_of(cluster).node_rules(cluster, NODE).text
    current = ""
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:]
        elif current == table and line.startswith(f"-A {name} "):
            out.append(line)
    return out


def test_the_mode_is_chosen_from_the_configuration() -> None:
    assert mode_of(web()) is IPVS


def test_cluster_ip_is_one_virtual_server_with_every_endpoint() -> None:
    cluster = web(Ep("10.244.2.5"), Ep("10.244.1.7", NODE), Ep("10.244.2.6", ready=False))
    assert ipvsadm(cluster) == (
        "-A -t 10.96.0.10:80 -s rr\n"
        "-a -t 10.96.0.10:80 -r 10.244.1.7:8080 -m -w 1\n"
        "-a -t 10.96.0.10:80 -r 10.244.2.5:8080 -m -w 1\n"
    )
    assert members(cluster, "KUBE-CLUSTER-IP") == ["10.96.0.10,tcp:80"]
    assert members(cluster, "KUBE-IPVS-IPS") == ["10.96.0.10"]
    # Hairpin: the local endpoint, its port, and itself as the source.
    assert members(cluster, "KUBE-LOOP-BACK") == ["10.244.1.7,tcp:8080,10.244.1.7"]
    assert chain(cluster, "nat", "KUBE-SERVICES") == [
        "-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN",
        '-A KUBE-SERVICES ! -s 10.244.0.0/16 -m comment --comment "Kubernetes service cluster'
        ' ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst'
        " -j KUBE-MARK-MASQ",
        "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT",
        "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT",
    ]
    assert chain(cluster, "nat", "KUBE-POSTROUTING") == [
        '-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip'
        ' for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src'
        " -j MASQUERADE",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT"'
        " -j MASQUERADE --random-fully",
    ]


def test_no_cluster_cidr_masquerades_by_source() -> None:
    cluster = web(Ep("10.244.2.5"), kp=KubeProxyConfig(mode=ProxyMode.IPVS))
    assert chain(cluster, "nat", "KUBE-SERVICES")[1] == (
        '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for'
        ' masquerade purpose" -m set --match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ'
    )


def test_ipvs_filter_rejects_other_ports_of_the_service_addresses() -> None:
    assert chain(web(Ep("10.244.2.5")), "filter", "KUBE-IPVS-FILTER") == [
        "-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN",
        "-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN",
        "-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP dst,dst -j RETURN",
        "-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -j RETURN",
        "-A KUBE-IPVS-FILTER -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j RETURN",
        "-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst"
        " -j REJECT --reject-with icmp-port-unreachable",
    ]


def test_no_endpoints_leaves_a_virtual_server_without_real_servers() -> None:
    assert ipvsadm(web()) == "-A -t 10.96.0.10:80 -s rr\n"


def test_session_affinity_is_persistence() -> None:
    cluster = web(Ep("10.244.2.5"), session_affinity_timeout=600)
    assert ipvsadm(cluster).splitlines()[0] == "-A -t 10.96.0.10:80 -s rr -p 600"


def test_scheduler_comes_from_the_configuration() -> None:
    kp = IPVS_CONFIG.model_copy(update={"ipvs_scheduler": "wlc"})
    assert ipvsadm(web(Ep("10.244.2.5"), kp=kp)).splitlines()[0] == "-A -t 10.96.0.10:80 -s wlc"


def test_node_port_cluster_policy_listens_on_every_node_address() -> None:
    cluster = web(Ep("10.244.2.5"), type=ServiceType.NODE_PORT, node_port=30080)
    # libipvs compares addresses as a signed difference: 192.168.x sorts before 10.x.
    assert ipvsadm(cluster) == (
        "-A -t 192.168.0.2:30080 -s rr\n"
        "-a -t 192.168.0.2:30080 -r 10.244.2.5:8080 -m -w 1\n"
        "-A -t 10.96.0.10:80 -s rr\n"
        "-a -t 10.96.0.10:80 -r 10.244.2.5:8080 -m -w 1\n"
        "-A -t 10.244.1.1:30080 -s rr\n"
        "-a -t 10.244.1.1:30080 -r 10.244.2.5:8080 -m -w 1\n"
    )
    assert members(cluster, "KUBE-NODE-PORT-TCP") == ["30080"]
    assert members(cluster, "KUBE-NODE-PORT-LOCAL-TCP") == []
    assert chain(cluster, "nat", "KUBE-NODE-PORT") == [
        '-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for'
        ' masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ',
    ]


def test_node_port_local_policy_keeps_the_source_and_the_local_endpoints() -> None:
    cluster = web(
        Ep("10.244.2.5"),
        Ep("10.244.1.7", NODE),
        type=ServiceType.NODE_PORT,
        node_port=30080,
        external_traffic_policy=TrafficPolicy.LOCAL,
    )
    lines = ipvsadm(cluster).splitlines()
    assert lines[:2] == [
        "-A -t 192.168.0.2:30080 -s rr",
        "-a -t 192.168.0.2:30080 -r 10.244.1.7:8080 -m -w 1",
    ]
    assert members(cluster, "KUBE-NODE-PORT-LOCAL-TCP") == ["30080"]
    assert chain(cluster, "nat", "KUBE-NODE-PORT")[0] == (
        '-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port with'
        ' externalTrafficPolicy=local" -m set --match-set KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN'
    )


def test_node_port_local_policy_without_a_local_endpoint_gets_them_all() -> None:
    # kubernetes PR 97081: pods on the node may still reach the NodePort.
    cluster = web(
        Ep("10.244.2.5"),
        type=ServiceType.NODE_PORT,
        node_port=30080,
        external_traffic_policy=TrafficPolicy.LOCAL,
    )
    assert ipvsadm(cluster).splitlines()[:2] == [
        "-A -t 192.168.0.2:30080 -s rr",
        "-a -t 192.168.0.2:30080 -r 10.244.2.5:8080 -m -w 1",
    ]


def test_load_balancer_with_source_ranges() -> None:
    cluster = web(
        Ep("10.244.2.5"),
        type=ServiceType.LOAD_BALANCER,
        node_port=30080,
        load_balancer_ips=(IPv4Address("203.0.113.10"),),
        load_balancer_source_ranges=(IPv4Network("198.51.100.0/24"),),
    )
    assert "-A -t 203.0.113.10:80 -s rr" in ipvsadm(cluster)
    assert members(cluster, "KUBE-LOAD-BALANCER") == ["203.0.113.10,tcp:80"]
    assert members(cluster, "KUBE-LOAD-BALANCER-FW") == ["203.0.113.10,tcp:80"]
    assert members(cluster, "KUBE-LOAD-BALANCER-SOURCE-CIDR") == [
        "203.0.113.10,tcp:80,198.51.100.0/24"
    ]
    assert members(cluster, "KUBE-IPVS-IPS") == ["10.96.0.10", "203.0.113.10"]
    assert chain(cluster, "filter", "KUBE-PROXY-FIREWALL") == [
        '-A KUBE-PROXY-FIREWALL -m comment --comment "Kubernetes service load balancer ip +'
        ' port for load balancer with sourceRange" -m set --match-set KUBE-LOAD-BALANCER-FW'
        " dst,dst -j KUBE-SOURCE-RANGES-FIREWALL",
    ]
    assert chain(cluster, "filter", "KUBE-SOURCE-RANGES-FIREWALL") == [
        '-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer'
        ' ip + port + source cidr for packet filter purpose" -m set --match-set'
        " KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j RETURN",
        "-A KUBE-SOURCE-RANGES-FIREWALL -j DROP",
    ]
    # The node is outside the ranges: its own connections to the LB IP are dropped.
    assert chain(cluster, "filter", "KUBE-IPVS-OUT-FILTER") == [
        "-A KUBE-IPVS-OUT-FILTER -s 203.0.113.10/32 -m ipvs --vaddr 203.0.113.10 --vproto tcp"
        " --vport 80 -j DROP"
    ]
    assert chain(cluster, "nat", "KUBE-LOAD-BALANCER") == [
        "-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ"
    ]


def test_built_in_chains_jump_as_kube_proxy_prepends() -> None:
    cluster = web(Ep("10.244.2.5"))
    assert chain(cluster, "filter", "INPUT") == [
        '-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
        '-A INPUT -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
        '-A INPUT -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT',
        "-A INPUT -j KUBE-FIREWALL",
    ]


def test_node_rules_carry_the_virtual_servers_sets_and_listings() -> None:
    rules = IPVS.node_rules(web(Ep("10.244.2.5")), NODE)
    assert isinstance(rules, RenderedIpvsRules)
    assert rules.ipvs.lookup(Proto.TCP, IPv4Address("10.96.0.10"), 80) is not None
    assert rules.ipsets["KUBE-CLUSTER-IP"].type == "hash:ip,port"
    assert [item.command for item in rules.listings] == [
        "ipvsadm-save -n",
        "ipset save",
        "iptables-save",
        "ip addr show kube-ipvs0",
    ]
    assert dnats_to(rules, (IPv4Address("10.244.2.5"), 8080))
    assert not dnats_to(rules, (IPv4Address("10.244.2.5"), 9090))


def test_rendered_iptables_text_reads_back() -> None:
    from sim.readers.iptables_save import parse_iptables_save

    text = IPVS.node_rules(web(Ep("10.244.2.5")), NODE).text
    warnings = parse_iptables_save(text, source="t").warnings
    # Only the set matches are left to the node (its ipsets answer them when walked).
    assert warnings and all("cannot evaluate -m set" in w for w in warnings)
