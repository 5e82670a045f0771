"""Challenge mode's questions: asked before decision hops, with plausible wrong choices."""

from __future__ import annotations

from dataclasses import replace

import pytest

from model.cluster import Cluster
from model.trace import Trace
from sim.cluster.load import demo_cluster, with_mode
from sim.trace.challenge import Question, challenge
from sim.trace.presets import PRESETS, preset_for
from sim.trace.request import Request
from sim.trace.tracer import trace


def _scenario(key: str, mode: str = "iptables") -> tuple[Trace, Cluster]:
    preset = preset_for(key)
    assert preset is not None
    cluster = with_mode(demo_cluster(), mode)
    return trace(cluster, replace(preset.request, seed=1)), cluster


def _right(question: Question) -> str:
    return question.choices[question.answer]


@pytest.mark.parametrize("mode", ["iptables", "nftables", "ipvs"])
@pytest.mark.parametrize("key", [p.key for p in PRESETS])
def test_each_scenario_asks_at_least_three_well_formed_questions(key: str, mode: str) -> None:
    t, cluster = _scenario(key, mode)
    questions = challenge(t, cluster, seed=5)
    assert len(questions) >= 3
    for q in questions:
        assert 3 <= len(q.choices) <= 4
        assert len(set(q.choices)) == len(q.choices)
        assert 0 <= q.answer < len(q.choices) and q.is_right(q.answer)
        assert 0 <= q.before < len(t.hops)
        assert q.explanation.startswith(_right(q).split(" (")[0])
    assert [q.before for q in questions] == sorted(q.before for q in questions)


def test_scenario_3_asks_the_dnat_address_before_the_dnat_hop() -> None:
    t, cluster = _scenario("3")
    dnat = next(q for q in challenge(t, cluster, seed=1) if q.kind == "dnat")
    assert dnat.before == 4  # hop 5, node-a PREROUTING
    assert dnat.prompt == (
        "The packet to 10.101.100.102:80 reaches node-a PREROUTING. Which destination does it"
        " carry after this hop?"
    )
    assert _right(dnat) == "192.168.2.2:8080" == f"{t.hops[4].after.dst}:{t.hops[4].after.dport}"
    # The ClusterIP itself (no rewrite) is always offered; the rest are the Service's
    # other endpoints or the node's address.
    assert "10.101.100.102:80" in dnat.choices
    assert set(dnat.choices) <= {
        "192.168.2.2:8080",
        "10.101.100.102:80",
        "192.168.1.3:8080",
        "192.168.1.4:8080",
        "10.0.0.11:8080",
    }


def test_scenario_3_asks_which_chain_kube_services_jumps_to_among_other_services() -> None:
    t, cluster = _scenario("3")
    chain = next(q for q in challenge(t, cluster, seed=1) if q.kind == "chain")
    assert chain.prompt == (
        "On node-a PREROUTING, nat's KUBE-SERVICES #3 matches the packet to 10.101.100.102:80."
        " Which chain does it jump to?"
    )
    assert _right(chain) == "KUBE-SVC-G4RDBLL5YDRMFUB4 (default/svc-b:http)"
    assert sum(c.startswith("KUBE-SVC-") for c in chain.choices) >= 3


def test_scenario_3_asks_which_node_serves_and_what_the_client_hears_back() -> None:
    t, cluster = _scenario("3")
    by_kind = {q.kind: q for q in challenge(t, cluster, seed=1)}
    node = by_kind["node"]
    assert node.before == 5 and _right(node) == "node-b"
    assert sorted(node.choices) == ["node-a", "node-b", "node-c"]
    assert node.explanation == (
        "node-b: 192.168.2.2:8080 is in node-b's pod network, so node-a routes the packet"
        " across to it."
    )
    reply = by_kind["reply"]
    assert _right(reply) == "10.101.100.102:80"
    assert "192.168.2.2:8080" in reply.choices  # the endpoint: the reply before its un-NAT
    assert reply.explanation == (
        "10.101.100.102:80: conntrack reversed the NAT at hop 33, so the reply carries the"
        " address the client sent to, and its socket accepts it."
    )


def test_scenario_4_asks_what_source_the_pod_sees_after_the_masquerade() -> None:
    t, cluster = _scenario("4")
    source = next(q for q in challenge(t, cluster, seed=1) if q.kind == "source")
    assert source.prompt == "What source address does the server in pod/default/web-1 see?"
    assert _right(source) == "10.0.0.12:38327"
    # The client's own address and the node's with the client's port are the mistakes kept.
    assert {"10.0.0.100:37170", "10.0.0.12:37170"} <= set(source.choices)


def test_scenario_1_asks_about_lo_and_the_loopback_source() -> None:
    t, cluster = _scenario("1")
    questions = challenge(t, cluster, seed=1)
    assert [(q.kind, _right(q)) for q in questions] == [
        ("route", "lo"),
        ("source", "127.0.0.1:37170"),
        ("reply", "127.0.0.1:8080"),
    ]
    assert "192.168.1.2:37170" in questions[1].choices  # pod1's own IP, the likely guess


def test_a_rejection_asks_where_the_icmp_error_comes_from() -> None:
    cluster = demo_cluster()
    t = trace(cluster, Request("pod1", "svc-empty:80", seed=1))
    answer = next(q for q in challenge(t, cluster, seed=1) if q.kind == "answer")
    assert answer.before == 8  # hop 9, the error sent
    assert _right(answer) == "192.168.1.1"
    assert {"10.101.100.99", "10.0.0.11"} <= set(answer.choices)


def test_the_same_seed_gives_the_same_questions_and_another_may_reorder_them() -> None:
    t, cluster = _scenario("4")
    assert challenge(t, cluster, seed=3) == challenge(t, cluster, seed=3)
    orders = {tuple(q.choices for q in challenge(t, cluster, seed=s)) for s in range(6)}
    assert len(orders) > 1
    rights = {tuple(_right(q) for q in challenge(t, cluster, seed=s)) for s in range(6)}
    assert len(rights) == 1
