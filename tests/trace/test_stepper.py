"""The async stepper the app drives: a cursor on the virtual clock."""

from __future__ import annotations

import pytest

from model.trace import Direction, HopKind
from sim.cluster.load import demo_cluster
from sim.trace.request import Request
from sim.trace.stepper import BASE_DELAY_S, Stepper
from sim.trace.tracer import trace, trace_many


@pytest.fixture(scope="module")
def scenario_3():  # type: ignore[no-untyped-def]
    return trace(demo_cluster(), Request("pod1", "svc-b:80", seed=1, pick="192.168.2.2:8080"))


def test_forward_and_back_return_the_same_hops(scenario_3) -> None:  # type: ignore[no-untyped-def]
    stepper = Stepper(scenario_3)
    assert stepper.current.kind is HopKind.DNS and stepper.at_start
    seen = [stepper.forward() for _ in range(5)]
    assert [h.seq for h in seen] == [1, 2, 3, 4, 5]
    assert stepper.back().seq == 4
    assert stepper.back().seq == 3
    assert stepper.to_start().seq == 0
    assert stepper.back().seq == 0  # stays on the first
    last = stepper.to_end()
    assert last is scenario_3.hops[-1] and stepper.at_end
    assert stepper.forward() is last


def test_to_reply_jumps_to_the_servers_answer(scenario_3) -> None:  # type: ignore[no-untyped-def]
    hop = Stepper(scenario_3).to_reply()
    assert hop.direction is Direction.REPLY and hop.kind is HopKind.SEND
    assert hop.where.netns == "pod/default/pod4"


async def test_play_paces_hops_on_the_virtual_clock(scenario_3) -> None:  # type: ignore[no-untyped-def]
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    stepper = Stepper(scenario_3, sleep=fake_sleep)
    played = [hop.seq async for hop in stepper.play(speed=4)]
    assert played == list(range(1, len(scenario_3.hops)))
    assert delays == [BASE_DELAY_S / 4] * len(played)
    with pytest.raises(ValueError):
        _ = [h async for h in Stepper(scenario_3).play(speed=0)]


def test_concurrent_flows_interleave_by_virtual_time() -> None:
    flows = trace_many(demo_cluster(), Request("pod1", "svc-b:80", seed=2), 3)
    stepper = Stepper(*flows, stagger_us=0)
    times = [s.t_us for s in stepper.steps]
    assert times == sorted(times)
    assert {s.trace for s in stepper.steps[:6]} == {0, 1, 2}
    assert len(stepper.steps) == sum(len(f.hops) for f in flows)
