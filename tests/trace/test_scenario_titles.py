"""Each of the article's scenarios says what happens and what to look for."""

from __future__ import annotations

from sim.trace.presets import PRESETS, preset_for


def test_each_scenario_has_a_headline_naming_what_happens() -> None:
    assert [p.headline for p in PRESETS] == [
        "Scenario 1 — two containers of one pod talk over localhost",
        "Scenario 2 — a pod calls a Service whose endpoint is on the same node",
        "Scenario 3 — a pod calls a Service whose endpoint is on another node",
        "Scenario 4 — a client outside the cluster calls a NodePort",
    ]


def test_each_goal_is_one_line_ending_in_a_full_stop() -> None:
    for preset in PRESETS:
        assert preset.goal.endswith(".") and "\n" not in preset.goal
    third = preset_for("3")
    assert third is not None
    assert third.goal == (
        "Follow the DNAT on the sender's node, the route across to the endpoint's node,"
        " and conntrack undoing the DNAT when the reply comes back."
    )


def test_a_scenario_that_chooses_its_endpoint_says_so_in_the_apps_words() -> None:
    scenario = preset_for("2")
    assert scenario is not None
    assert scenario.chosen == (
        "endpoint 192.168.1.3:8080 chosen for this scenario: kube-proxy's rules pick one of"
        " the Service's endpoints at random, and this one shows the case"
    )
    assert "--pick" not in (scenario.chosen or "") and "pin" not in (scenario.chosen or "")
    fourth = preset_for("4")
    assert fourth is not None and fourth.chosen is None
    assert preset_for("9") is None
