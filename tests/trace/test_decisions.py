"""The decision hops the app's jump keys move between."""

from __future__ import annotations

from dataclasses import replace

from model.trace import Trace
from sim.cluster.load import demo_cluster, with_mode
from sim.trace.decisions import decisions, next_decision, previous_decision
from sim.trace.presets import preset_for
from sim.trace.request import Request
from sim.trace.tracer import trace


def _scenario(key: str, mode: str = "iptables") -> Trace:
    preset = preset_for(key)
    assert preset is not None
    return trace(with_mode(demo_cluster(), mode), replace(preset.request, seed=1))


def test_scenario_4s_decisions_skip_the_hops_that_only_carry_the_packet() -> None:
    # Hop numbers from 1, as the report shows them.
    assert [(d.seq + 1, d.why) for d in decisions(_scenario("4"))] == [
        (2, "routing decision"),
        (5, "DNAT"),
        (6, "routing decision"),
        (8, "MASQUERADE"),
        (12, "routing decision"),
        (15, "bridge decision"),
        (18, "delivered"),
        (20, "routing decision"),
        (22, "conntrack matches the reply"),
        (23, "bridge decision"),
        (24, "routing decision"),
        (29, "conntrack reverses the NAT"),
        (30, "routing decision"),
        (32, "conntrack reverses the NAT"),
        (35, "delivered"),
    ]


def test_ipvs_choosing_a_real_server_is_a_decision() -> None:
    assert (6, "DNAT (IPVS schedules a real server)") in [
        (d.seq + 1, d.why) for d in decisions(_scenario("4", mode="ipvs"))
    ]


def test_a_rejection_and_its_answer_are_decisions() -> None:
    t = trace(demo_cluster(), Request("pod1", "svc-empty:80", seed=1))
    assert [(d.seq + 1, d.why) for d in decisions(t)] == [
        (3, "routing decision"),
        (6, "bridge decision"),
        (7, "routing decision"),
        (8, "reject"),
        (10, "routing decision"),
        (13, "bridge decision"),
        (16, "delivered"),
    ]


def test_next_and_previous_move_between_decisions_and_stop_at_the_ends() -> None:
    t = _scenario("4")
    # From hop 5 (index 4), the DNAT, the next decision is hop 6's route.
    assert next_decision(t, 4) == 5
    assert next_decision(t, 5) == 7  # hop 8, the MASQUERADE
    assert previous_decision(t, 7) == 5
    assert previous_decision(t, 1) is None  # nothing before hop 2
    assert next_decision(t, len(t.hops) - 1) is None
    # From a hop that is not a decision, the nearest one each way.
    assert next_decision(t, 2) == 4 and previous_decision(t, 2) == 1
