"""Traces through kube-proxy's nftables mode on the demo cluster: verdicts, rules, notes."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address, IPv4Network

import pytest

from model.cluster import Cluster, ProxyMode
from model.netfilter import Hook
from model.trace import Direction, HopKind, Trace, Verdict
from sim.cluster.load import demo_cluster, load
from sim.cluster.rules import node_rules
from sim.kernel.rules import nft_of
from sim.proxy import mode_of
from sim.trace.request import Request
from sim.trace.tracer import trace, trace_many
from tests import paths


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    demo = demo_cluster()
    return demo.model_copy(
        update={"kube_proxy": demo.kube_proxy.model_copy(update={"mode": ProxyMode.NFTABLES})}
    )


def netfilter_hops(t: Trace) -> list[str]:
    return [f"{h.where.netns} {h.where.hook}" for h in t.hops if h.where.hook is not None]


def decisive(t: Trace, hook: Hook, node: str) -> str:
    hop = next(h for h in t.hops if h.where.hook is hook and h.where.node == node and h.detail)
    return hop.detail


def test_pod_to_cluster_ip_is_dnated_by_an_endpoint_chain(cluster: Cluster) -> None:
    t = trace(cluster, Request("pod1", "svc-b:80", seed=2))
    assert t.verdict is Verdict.DELIVERED
    assert t.endpoint == "192.168.1.3:8080"
    dnat = next(h for h in t.hops if h.before.dst != h.after.dst and h.where.hook)
    assert dnat.detail == (
        "ip kube-proxy endpoint-PJCBDQ57-default/svc-b/tcp/http__192.168.1.3/8080:"
        " meta l4proto tcp dnat to 192.168.1.3:8080"
    )
    assert dnat.sentence.startswith(
        "DNAT in endpoint-PJCBDQ57-default/svc-b/tcp/http__192.168.1.3/8080 #2: destination"
        " 10.101.100.102:80 → 192.168.1.3:8080, an endpoint of default/svc-b:http, chosen by"
        " service-QWOTMZ2Y-default/svc-b/tcp/http #2's numgen random mod 3"
    )
    assert "numgen random mod N" in (dnat.note or "")
    walked = {w.nft for w in dnat.tables}
    assert walked == {"ip kube-proxy", None}  # kube-proxy's table and kubelet's iptables


def test_external_client_to_node_port_is_masqueraded(cluster: Cluster) -> None:
    t = trace(cluster, Request("client", "10.0.0.12:30080", seed=2))
    assert (t.verdict, t.endpoint) == (Verdict.DELIVERED, "192.168.3.3:8080")
    assert decisive(t, Hook.POSTROUTING, "node-b") == (
        "ip kube-proxy masquerading: masquerade fully-random"
    )
    served = next(h for h in t.hops if h.kind is HopKind.DELIVER)
    assert str(served.before.src) == "10.0.0.12"


def test_a_service_without_endpoints_is_rejected(cluster: Cluster) -> None:
    t = trace(cluster, Request("pod1", "svc-empty:80", seed=2))
    assert t.verdict is Verdict.REJECTED
    assert t.rule == "ip kube-proxy reject-chain: reject"
    assert t.reason == (
        "REJECT in reject-chain: default/svc-empty has no endpoints (service-endpoints-check #1"
        " found the address in @no-endpoint-services): no ready pod backs it, so kube-proxy"
        " rejects its traffic; the kernel answers with icmp-port-unreachable"
    )


def test_local_traffic_policy_without_a_local_endpoint_drops(cluster: Cluster) -> None:
    t = trace(cluster, Request("client", "10.0.0.11:30081", seed=2))
    assert t.verdict is Verdict.DROPPED
    assert t.rule == (
        "ip kube-proxy nodeport-endpoints-check: ip daddr @nodeport-ips meta l4proto . th dport"
        " vmap @no-endpoint-nodeports"
    )
    assert "default/web-local has no local endpoint on node-a" in t.reason


def test_an_undefined_port_of_a_cluster_ip_is_rejected_and_said_so(cluster: Cluster) -> None:
    t = trace(cluster, Request("pod1", "10.101.100.102:81", seed=2))
    assert t.verdict is Verdict.REJECTED
    drop = [h for h in t.hops if h.direction is Direction.REQUEST][-1]  # then the ICMP back
    assert drop.detail == (
        'ip kube-proxy cluster-ips-check: ip daddr @cluster-ips reject comment "Reject traffic'
        ' to invalid ports of ClusterIPs"'
    )
    assert "iptables mode has no rule for an undefined port of a ClusterIP" in (drop.note or "")


def test_an_unallocated_cluster_ip_is_dropped_only_with_service_cidrs(cluster: Cluster) -> None:
    without = trace(cluster, Request("pod1", "10.101.100.77:80", seed=2))
    assert without.verdict is Verdict.UNREACHABLE
    assert "which this dump lacks" in without.reason
    with_cidrs = cluster.model_copy(update={"service_cidrs": (IPv4Network("10.101.100.0/24"),)})
    dropped = trace(with_cidrs, Request("pod1", "10.101.100.77:80", seed=2))
    assert dropped.verdict is Verdict.DROPPED
    assert dropped.reason.startswith(
        "DROP in cluster-ips-check: 10.101.100.77 is in the Service CIDR but no Service has it"
    )


def test_node_ports_are_not_on_localhost_nor_on_the_bridge(cluster: Cluster) -> None:
    local = trace(cluster, Request("node-a", "127.0.0.1:30080", seed=2))
    assert local.endpoint is None
    notes = " ".join(h.note or "" for h in local.hops)
    assert "nftables mode does not serve NodePorts on 127.0.0.1" in notes
    bridge = trace(cluster, Request("pod1", "192.168.1.1:30080", seed=2))
    assert bridge.endpoint is None
    assert "only on the node's primary address (10.0.0.11)" in " ".join(
        h.note or "" for h in bridge.hops
    )


def test_hairpin_is_masqueraded_to_the_bridge_address(cluster: Cluster) -> None:
    for seed in range(40):
        t = trace(cluster, Request("pod2", "svc-b:80", seed=seed))
        if t.endpoint == "192.168.1.3:8080":
            break
    else:
        pytest.fail("no seed reached pod2 itself")
    served = next(h for h in t.hops if h.kind is HopKind.DELIVER)
    assert str(served.before.src) == "192.168.1.1"
    prerouting = next(h for h in t.hops if h.where.hook is Hook.PREROUTING and h.detail)
    assert "hairpin: the endpoint 192.168.1.3 reached itself" in prerouting.sentence


def test_numgen_spreads_requests_uniformly(cluster: Cluster) -> None:
    traces = trace_many(cluster, Request("pod1", "svc-b:80", seed=7), 900)
    spread = Counter(t.endpoint for t in traces)
    assert set(spread) == {"192.168.1.3:8080", "192.168.1.4:8080", "192.168.2.2:8080"}
    # Binomial(900, 1/3): standard deviation 14.1; 4 sigma bounds each count.
    assert all(abs(n - 300) < 4 * 14.2 for n in spread.values()), spread


def test_affinity_keeps_a_client_on_one_endpoint(cluster: Cluster) -> None:
    traces = trace_many(cluster, Request("pod1", "sticky:80", seed=3), 30)
    assert len({t.endpoint for t in traces}) == 1


def test_the_walks_are_kept_in_the_trace_json(cluster: Cluster) -> None:
    t = trace(cluster, Request("pod1", "svc-b:80", seed=2))
    again = Trace.model_validate_json(t.model_dump_json())
    assert again == t
    assert any(w.nft == "ip kube-proxy" for h in again.hops for w in h.tables)


def test_the_mode_interprets_its_own_rules(cluster: Cluster) -> None:
    rules = node_rules(cluster, "node-a")
    nft = nft_of(rules)
    assert nft is not None
    interpreter = mode_of(cluster).interpreter(cluster, pick=(IPv4Address("192.168.2.2"), 8080))
    service = nft.tables[0].chains["service-QWOTMZ2Y-default/svc-b/tcp/http"]
    assert interpreter.numgen(service.rules[1], rules) == 2  # type: ignore[attr-defined]


def test_load_balancer_source_ranges_drop_before_dnat() -> None:
    zoo = load(paths.DATA / "lab" / "zoo.yaml")
    zoo = zoo.model_copy(
        update={"kube_proxy": zoo.kube_proxy.model_copy(update={"mode": ProxyMode.NFTABLES})}
    )
    allowed = trace(zoo, Request("laptop", "10.1.0.200:80", seed=1))
    assert allowed.verdict is Verdict.DELIVERED
    dropped = trace(zoo, Request("kube-system/dns-1", "10.1.0.200:80", seed=1))
    assert dropped.verdict is Verdict.DROPPED
    assert dropped.rule == (
        "ip kube-proxy firewall-SUSTUHLJ-default/web/tcp/http: ip saddr != 10.1.0.100 drop"
    )
    assert dropped.reason == (
        "DROP in firewall-SUSTUHLJ-default/web/tcp/http: default/web:http's"
        " loadBalancerSourceRanges leave this source out"
        " (firewall-SUSTUHLJ-default/web/tcp/http #1)"
    )
