"""Traces through kube-proxy's IPVS mode on the demo cluster: what IPVS chose, the rewrites,
the verdicts, and `rr` round-robin over many requests of one simulation."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache

import pytest

from model.cluster import Cluster, ProxyMode
from model.trace import HopKind, Trace, Verdict
from sim.cluster.load import demo_cluster
from sim.trace.request import Request
from sim.trace.tracer import repeat, trace


@cache
def ipvs_demo(scheduler: str = "rr") -> Cluster:
    """The demo cluster with kube-proxy in IPVS mode."""
    demo = demo_cluster()
    fields = {name: getattr(demo, name) for name in type(demo).model_fields}
    fields["kube_proxy"] = demo.kube_proxy.model_copy(
        update={"mode": ProxyMode.IPVS, "ipvs_scheduler": scheduler}
    )
    return Cluster(**fields)


@dataclass(frozen=True)
class Flow:
    name: str
    source: str
    destination: str
    verdict: Verdict
    endpoint: str | None = None
    rewritten: str | None = None
    """The source the endpoint sees."""
    said: str = ""
    """Words the deciding hop says."""


FLOWS = [
    Flow(
        "pod to ClusterIP: IPVS picks the first real server, no masquerade",
        "pod1", "svc-b:80", Verdict.DELIVERED, "192.168.1.3:8080", "192.168.1.2",
        "IPVS virtual server TCP 10.101.100.102:80 (default/svc-b:http, its ClusterIP)",
    ),
    Flow(
        "external client to NodePort, eTP Cluster: masqueraded to the node",
        "client", "10.0.0.12:30080", Verdict.DELIVERED, "192.168.3.3:8080", "10.0.0.12",
        "IPVS virtual server TCP 10.0.0.12:30080 (default/web, its NodePort on this node)",
    ),
    Flow(
        "eTP Local NodePort on a node without a local endpoint: the reply skips the node",
        "client", "10.0.0.11:30081", Verdict.DROPPED, "192.168.3.3:8080", "10.0.0.100",
        "kube-proxy gives the virtual server every endpoint",
    ),
    Flow(
        "hairpin: KUBE-LOOP-BACK masquerades the endpoint reaching itself",
        "pod2", "svc-b:80", Verdict.DELIVERED, "192.168.1.3:8080", "192.168.1.1",
        "KUBE-LOOP-BACK",
    ),
    Flow(
        "no endpoints: IPVS answers port unreachable",
        "pod1", "10.101.100.99:80", Verdict.REJECTED, None, None,
        "REJECT by IPVS: IPVS virtual server TCP 10.101.100.99:80",
    ),
    Flow(
        "another port of a ClusterIP: KUBE-IPVS-FILTER rejects",
        "pod1", "10.101.100.102:22", Verdict.REJECTED, None, None,
        "REJECT in KUBE-IPVS-FILTER",
    ),
    Flow(
        "the node itself: the ClusterIP is its source, so it is masqueraded",
        "node-a", "10.101.100.102:80", Verdict.DELIVERED, "192.168.1.3:8080", "192.168.1.1",
        "IPVS virtual server TCP 10.101.100.102:80",
    ),
]  # fmt: skip


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_ipvs_flows(flow: Flow) -> None:
    result = trace(ipvs_demo(), Request(flow.source, flow.destination, seed=2))
    assert result.verdict is flow.verdict, result.reason
    assert result.endpoint == flow.endpoint
    if flow.rewritten is not None:
        assert _request_source_at_endpoint(result) == flow.rewritten
    text = " ".join(f"{h.sentence} {h.detail} {h.note or ''}" for h in result.hops)
    assert flow.said in text


def _request_source_at_endpoint(result: Trace) -> str:
    """The source of the request as the endpoint's pod received it."""
    received = [
        h for h in result.hops if h.direction.value == "request" and h.kind is HopKind.RECEIVE
    ]
    return str(received[-1].after.src)


def test_the_reply_is_un_natted_by_ipvs_not_conntrack() -> None:
    result = trace(ipvs_demo(), Request("pod1", "svc-b:80", seed=2))
    un_nat = [h for h in result.hops if "IPVS puts the virtual address back" in h.sentence]
    assert len(un_nat) == 1
    hop = un_nat[0]
    assert hop.where.hook is not None and hop.where.hook.value == "FORWARD"
    assert (str(hop.before.src), hop.before.sport) == ("192.168.1.3", 8080)
    assert (str(hop.after.src), hop.after.sport) == ("10.101.100.102", 80)
    assert hop.conntrack is not None and not hop.conntrack.dnat


def test_rr_over_many_requests_is_exactly_round_robin() -> None:
    endpoints = [t.endpoint for t in repeat(ipvs_demo(), Request("pod1", "svc-b:80", seed=5), 30)]
    cycle = endpoints[:3]
    assert sorted(str(e) for e in cycle) == [
        "192.168.1.3:8080",
        "192.168.1.4:8080",
        "192.168.2.2:8080",
    ]
    assert endpoints == cycle * 10


def test_session_affinity_is_a_persistence_template() -> None:
    endpoints = Counter(
        t.endpoint for t in repeat(ipvs_demo(), Request("pod1", "sticky:80", seed=5), 9)
    )
    assert len(endpoints) == 1


def test_pick_pins_the_real_server() -> None:
    result = trace(ipvs_demo(), Request("pod1", "svc-b:80", seed=2, pick="192.168.2.2:8080"))
    assert result.endpoint == "192.168.2.2:8080"
    assert any("chosen in advance" in h.sentence for h in result.hops)


def test_least_connection_says_what_it_assumed() -> None:
    result = trace(ipvs_demo("lc"), Request("pod1", "svc-b:80", seed=2))
    assert result.verdict is Verdict.DELIVERED
    assert any("no other client's" in w for w in result.warnings)


def test_a_real_ipvs_node_dump_is_walked() -> None:
    from sim.proxy.ipvs import IPVS, render_node_ipvs
    from sim.readers.node_dump import node_rules_from_text

    cluster = ipvs_demo()
    # A dump as a person pastes it: ipvsadm-save -n, ipset save, iptables-save in one file.
    text = render_node_ipvs(cluster, "node-a").split("# ip addr show kube-ipvs0")[0]
    dump = node_rules_from_text(cluster, "node-a", text, "node-a.dump")
    rendered = IPVS.node_rules(cluster, "node-a").ipvs
    assert dump.ipvs is not None
    assert {vs.key for vs in dump.ipvs.services} == {vs.key for vs in rendered.services}
    result = trace(cluster, Request("pod1", "svc-b:80", seed=2), node_rules={"node-a": dump})
    assert result.verdict is Verdict.DELIVERED
    assert result.endpoint == "192.168.1.3:8080"
