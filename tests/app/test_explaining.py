"""What the app says: titles, sentences, notes, the help, the rules diff, and what to do next."""

from __future__ import annotations

import pytest

from model.cluster import Cluster
from sim.cluster.load import demo_cluster
from tests.app.support import (
    at,
    make_app,
    notices,
    plain_env,
    scenario,
    screen_of,
    shown,
)
from tui.screens.diff import DiffLog, RulesDiffScreen, consequences
from tui.screens.help import HelpScreen
from tui.session import Request
from tui.widgets.cluster_tree import ClusterTree
from tui.widgets.explanation import Explanation
from tui.widgets.key_footer import KeyFooter
from tui.widgets.packet_log import PacketLog
from tui.widgets.rules_view import RulesView

__all__ = ["plain_env"]


def said(screen: object) -> str:
    """The explanation bar's text, its lines joined."""
    from tui.screens.trace import TraceScreen

    assert isinstance(screen, TraceScreen)
    return " ".join(shown(screen.query_one(Explanation)).split())


async def test_a_scenarios_chosen_endpoint_is_said_in_the_title_and_the_apps_own_words() -> None:
    app = make_app(None)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await pilot.press("3")
        assert screen.sub_title.startswith(
            "iptables · host-gw · delivered → 192.168.2.2:8080 "
            "(endpoint chosen for this scenario) · seed 7"
        )
        screen.go_to(at(screen, "dnat"))
        await pilot.pause()
        assert "Note: Scenario 3 always takes 192.168.2.2:8080, to show the article's case;" in (
            said(screen)
        )
        # Only where the endpoint is taken.
        await pilot.press("n")
        assert "Scenario 3" not in said(screen)
        # A request of one's own, even pinned, is no scenario.
        screen.load(Request("pod1", "svc-b:80", pick="192.168.2.2:8080"))
        screen.go_to(at(screen, "dnat"))
        await pilot.pause()
        assert "scenario" not in screen.sub_title and "Scenario" not in said(screen)


async def test_scenario_4s_dnat_hop_says_the_dnat_first_and_its_masquerade_why_the_port_changed() -> (
    None
):
    app = make_app(None)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await pilot.press("4")
        screen.go_to(at(screen, "dnat"))
        await pilot.pause()
        text = said(screen)
        assert text.startswith(
            "◆ DNAT DNAT in KUBE-SEP-5MUG4P5DJAELKTMT #2: destination 10.0.0.12:30080 → "
            "192.168.3.3:8080"
        )
        assert "; KUBE-MARK-MASQ sets mark 0x4000" in text
        masq = next(n for n, b in enumerate(screen.badges) if b.label == "MASQ")
        screen.go_to(masq)
        await pilot.pause()
        assert (
            "source 10.0.0.100:43379 → 10.0.0.12:63143, the address of eth0 with a random port "
            "(--random-fully), because KUBE-MARK-MASQ set 0x4000"
        ) in said(screen)


@pytest.mark.parametrize("key", ["n", "b", "r", "g", "G", "space", "L"])
async def test_stepping_keys_without_a_trace_say_what_to_do(key: str) -> None:
    app = make_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(key)
        assert notices(app) == [
            "Pick a request first: press p, or 1–4 for the article's scenarios."
        ]
        assert screen_of(app).trace is None


async def test_the_help_names_every_symbol_and_the_scenarios() -> None:
    app = make_app(scenario("2"))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = screen_of(app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        legend = shown(app.screen.query_one("#help-legend"))
        for symbol in ("? DNS", "● SEND", "═ VETH", "▸ RECV", "↺ LO", "~ WIRE", "✘ REJECT"):
            assert symbol in legend
        keys = shown(app.screen.query_one("#help-keys"))
        assert "Scenario 3: Pod to Service, endpoint on another node" in keys
        titles = [c.title for c in app.get_system_commands(screen)]
        assert "Scenario 4: External client to NodePort" in titles


async def test_a_rejected_request_is_labelled_reject_not_drop() -> None:
    app = make_app(Request("pod1", "svc-empty:80"))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("G")
        log = screen_of(app).query_one(PacketLog)
        lines = shown(log).splitlines()
        # The request's last hop refused it; the ICMP error then went back to the client.
        refused = next(line for line in lines if "node-a cni0 FORWARD" in line)
        assert "✘ REJECT" in refused and "DROP" not in refused
        last = lines[log.highlighted or 0]
        assert "← ✔ DELIVER pod/default/pod1  tcp_v4_err: sk_err = ECONNREFUSED" in last


async def test_a_filter_that_matches_nothing_says_so() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("slash", *"nothing-like-this")
        await pilot.pause()
        rules = screen_of(app).query_one(RulesView)
        assert rules.visible_rows == 0
        assert "No line of node-a contains “nothing-like-this”. Esc clears the filter." in " ".join(
            shown(rules).split()
        )


@pytest.mark.parametrize("width", [60, 80])
async def test_the_footer_leaves_out_whole_keys_that_do_not_fit(width: int) -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(width, 24)) as pilot:
        await pilot.pause()
        footer = shown(app.screen.query_one(KeyFooter))
        assert footer.rstrip().endswith("▏^p palette")
        assert "palettee" not in footer
        keys = footer.split("▏")[0].split()
        assert keys[:4] == ["n", "Step", "b", "Back"] and len(keys) % 2 == 0


async def test_an_empty_cluster_says_there_is_nothing_to_trace() -> None:
    empty = demo_cluster().model_copy(
        update={
            "nodes": (),
            "pods": (),
            "services": (),
            "endpoint_slices": (),
            "clients": (),
        }
    )
    app = make_app(None, cluster=Cluster(**{f: getattr(empty, f) for f in Cluster.model_fields}))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(app)
        assert screen.sub_title == "no nodes: nothing to trace"
        assert "This cluster has no nodes" in said(screen)
        assert any("no nodes" in n for n in notices(app))
        await pilot.press("n")
        assert notices(app)[-1] == "This cluster has no nodes: there is nothing to trace."


async def test_the_rules_diff_at_80_columns_marks_continuations_and_says_what_it_means() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(app)
        await pilot.press("v", "v", "v")
        tree = screen.query_one(ClusterTree)
        assert tree.select_pod("default", "web-1")
        await pilot.press("d")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, RulesDiffScreen)
        summary = " ".join(shown(dialog.query_one("#diff-summary")).split())
        assert (
            "• default/web and default/web-local have no endpoints now: REJECT rules added"
            in summary
        )
        lines = shown(dialog.query_one(DiffLog)).splitlines()
        # Every line is a rule added or removed, its continuation, a break or a node.
        assert all(line[:2] in ("+ ", "- ", "  ", "⋯ ", "──") for line in lines)
        assert any(line.startswith("  ↪ ") for line in lines)
        assert not any(line.startswith(("--comment", "--dport", "-m ")) for line in lines)


def test_the_diff_summary_names_endpoints_replaced_and_rules_counted() -> None:
    removed = '--A KUBE-SEP-X -m comment --comment "default/svc-b:http" -j DNAT --to-destination 192.168.2.2:8080'
    added = '+-A KUBE-SEP-Y -m comment --comment "default/svc-b:http" -j DNAT --to-destination 192.168.2.4:8080'
    diff = ("--- before", "+++ after", "@@ -1 +1 @@", removed, added)
    assert consequences((("node-a", diff), ("node-b", diff))) == [
        "default/svc-b:http: endpoint 192.168.2.2:8080 replaced by 192.168.2.4:8080",
        "each node: 1 rule added, 1 removed",
    ]
