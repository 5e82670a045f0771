"""Pilot tests: drive the app with keys and check what a user would see change."""

from __future__ import annotations

import threading
from dataclasses import replace
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

import pytest
from textual.widget import Widget
from textual.widgets import Input, Label, Static

from model.cluster import Cluster, ExternalClient
from model.trace import Direction, HopKind, Trace
from sim.cluster.load import demo_cluster
from tests import paths
from tests.proxy.lazy_support import fresh_node_caches
from tui.app import KubehopApp
from tui.hopstyle import badge_of
from tui.screens.diff import DiffLog, RulesDiffScreen
from tui.screens.help import HelpScreen
from tui.screens.pick import PickScreen
from tui.screens.rules_pane import RulesPane
from tui.screens.spread import SpreadChart, SpreadScreen
from tui.screens.trace import TraceScreen
from tui.session import Request, Session, Spread
from tui.widgets.cluster_tree import ClusterTree
from tui.widgets.explanation import Explanation
from tui.widgets.inspector import PacketInspector
from tui.widgets.key_footer import KeyFooter
from tui.widgets.packet_log import PacketLog
from tui.widgets.pane_tabs import PaneTabs
from tui.widgets.path_map import EFFECT_SYMBOLS, PathMap, places
from tui.widgets.rules_view import RulesView, index_rules

if TYPE_CHECKING:
    from sim.proxy.iptables.paged import NodePages

SVC_B = Request("pod1", "svc-b:80", pick="192.168.2.2:8080")


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)


def make_app(request: Request | None = SVC_B, cluster: Cluster | None = None) -> KubehopApp:
    return KubehopApp(cluster or demo_cluster(), request=request, seed=7, theme="textual-dark")


def screen_of(app: KubehopApp) -> TraceScreen:
    screen = app.screen
    assert isinstance(screen, TraceScreen)
    return screen


def shown(widget: Widget) -> str:
    """The text a widget shows on screen now."""
    return "\n".join(widget.render_line(y).text for y in range(widget.size.height))


def inspected(screen: TraceScreen) -> str:
    """The packet pane's text: the fields, the conntrack entry, the tables and the decision."""
    return "\n".join(shown(part) for part in screen.inspector.query(Static) if part.display)


def cursor_on(screen: TraceScreen, pod: str) -> ClusterTree:
    """The cluster tree, focused, its cursor on `pod` (in default), as a user leaves it."""
    tree = screen.query_one(ClusterTree)
    assert tree.select_pod("default", pod)
    tree.focus()
    return tree


def dnat_index(screen: TraceScreen) -> int:
    assert screen.trace is not None
    index = screen.session.landmark(screen.trace, "dnat")
    assert index is not None
    return index


def visible_state(screen: TraceScreen) -> tuple[object, ...]:
    rules = screen.query_one(RulesView)
    return (
        screen.index,
        screen.query_one(PacketInspector).hop,
        screen.query_one(PathMap).index,
        screen.query_one(PacketLog).highlighted,
        rules.node,
        rules.focus_row,
        rules.matched_rows,
    )


@pytest.mark.parametrize(
    ("pick", "request_path", "reply_path"),
    [
        (
            "192.168.2.2:8080",
            "pod1 veth cni0◆D node-a wire node-b cni0 veth pod4",
            "pod4 veth cni0 node-b wire node-a◆U cni0 veth pod1",
        ),
        ("192.168.1.4:8080", "pod1 veth cni0◆D veth pod3", "pod3 veth cni0◆U veth pod1"),
    ],
)
def test_the_path_map_names_each_place_once(pick: str, request_path: str, reply_path: str) -> None:
    session = Session(demo_cluster(), seed=7)
    trace = session.trace(Request("pod1", "svc-b:80", pick=pick))
    badges = tuple(badge_of(e, label) for e, label in session.effects(trace))

    def path(direction: Direction) -> str:
        return " ".join(
            p.name + "".join(EFFECT_SYMBOLS[e] for e in p.effects)
            for p in places(trace, direction, badges)
        )

    assert path(Direction.REQUEST) == request_path
    assert path(Direction.REPLY) == reply_path


async def test_step_forward_then_back_restores_the_same_state() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await pilot.press("n", "n", "n")
        before = visible_state(screen)
        assert screen.index == 3
        await pilot.press("n", "n")
        assert visible_state(screen) != before
        await pilot.press("b", "b")
        await pilot.pause()
        assert visible_state(screen) == before


async def test_the_highlighted_rule_is_the_one_the_core_reports() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        screen.go_to(dnat_index(screen))
        await pilot.pause()
        hop = screen.hop
        assert hop is not None and hop.kind is HopKind.NETFILTER
        rules = screen.query_one(RulesView)
        dnat = next(r for w in hop.tables for r in w.matched if "-j DNAT" in r.line)
        assert rules.focus_row is not None
        assert rules.index.lines[rules.focus_row] == dnat.line
        matched_lines = {rules.index.lines[row] for row in rules.matched_rows}
        assert matched_lines == {r.line for w in hop.tables for r in w.matched}
        # Scrolled into view.
        top = round(rules.scroll_y)
        assert top <= rules.focus_row < top + rules.scrollable_content_region.height


async def test_the_inspector_marks_the_rewritten_fields_at_dnat() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        screen.go_to(dnat_index(screen))
        await pilot.pause()
        body = inspected(screen)
        assert "✱ dst IP" in body and "✱ dport" in body
        assert "✱ src IP" not in body
        hop = screen.hop
        assert hop is not None and f"{hop.after.dst}" in body


async def test_the_inspector_shows_the_conntrack_entry_before_and_after_the_hop() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        screen.go_to(dnat_index(screen))
        await pilot.pause()
        body = inspected(screen)
        assert "Conntrack tcp NEW [UNREPLIED] DNAT\n  mark     0x0, unconfirmed" in body
        assert "before   no entry yet: this packet creates it" in body
        trace = screen.trace
        assert trace is not None
        reply = next(
            h.seq
            for h in trace.hops
            if h.direction is Direction.REPLY
            and h.kind is HopKind.NETFILTER
            and h.where.netns == "node-a"  # where the request was DNATed
        )
        screen.go_to(reply)
        await pilot.pause()
        body = inspected(screen)
        assert "Conntrack tcp ✱ ESTABLISHED DNAT\n  mark     0x0, confirmed" in body
        assert "before   NEW [UNREPLIED] DNAT mark 0x0" in body


async def test_a_rejected_request_says_why_once() -> None:
    app = make_app(Request("pod1", "svc-empty:80"))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("G")
        text = " ".join(shown(screen_of(app).query_one(Explanation)).split())
        assert text.count("has no endpoints") == 1
        # At the end, where the ICMP error reached the client: what it did, then why.
        assert "so connect() fails with ECONNREFUSED (connection refused) ⏹ rejected: " in text
        assert text.endswith("the kernel answers with icmp-port-unreachable")


async def test_reply_key_jumps_to_the_first_reply_hop_and_end_to_the_last() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await pilot.press("r")
        hop = screen.hop
        assert hop is not None and hop.direction is Direction.REPLY
        assert screen.trace is not None
        assert screen.trace.hops[hop.seq - 1].direction is Direction.REQUEST
        await pilot.press("G")
        assert screen.index == len(screen.trace.hops) - 1
        await pilot.press("g")
        assert screen.index == 0


async def test_choosing_an_earlier_log_line_shows_that_moment() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await pilot.press("n", "n", "n", "n")
        log = screen.query_one(PacketLog)
        log.focus()
        await pilot.press("up", "up")
        await pilot.pause()
        assert screen.index == 2
        assert log.option_count == 5  # the hops reached stay listed
        assert screen.query_one(PacketInspector).hop == screen.trace.hops[2]  # type: ignore[union-attr]


@pytest.mark.parametrize("key", ["1", "2", "3", "4"])
async def test_scenario_keys_load_the_articles_scenarios(key: str) -> None:
    app = make_app(request=None)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        assert screen.trace is None
        await pilot.press(key)
        assert screen.trace is not None and screen.request is not None
        assert screen.index == 0
        assert screen.trace.verdict.value == "delivered"


async def test_bad_input_in_the_pick_dialog_is_shown_there_and_the_state_is_kept() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = screen_of(app)
        await pilot.press("n", "n")
        trace_before, index_before = screen.trace, screen.index
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, PickScreen)
        source = dialog.query_one("#pick-source", Input)
        source.value = "no-such-pod"
        source.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog
        error = dialog.query_one("#pick-error", Label)
        assert error.has_class("-shown") and "no-such-pod" in shown(error)
        await pilot.press("escape")
        assert app.screen is screen
        assert screen.trace is trace_before and screen.index == index_before


async def test_the_pick_dialog_traces_what_is_typed() -> None:
    app = make_app(request=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, PickScreen)
        dialog.query_one("#pick-source", Input).value = "client"
        dialog.query_one("#pick-destination", Input).value = "10.0.0.12:30080"
        dialog.query_one("#pick-seed", Input).value = "11"
        dialog.query_one("#pick-destination", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        screen = screen_of(app)
        assert screen.trace is not None and screen.trace.seed == 11
        assert screen.request == Request("client", "10.0.0.12:30080", None, 11, None)


async def test_enter_in_the_pick_dialog_takes_the_completion_it_shows() -> None:
    app = make_app(request=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, PickScreen)
        source = dialog.query_one("#pick-source", Input)
        source.focus()
        await pilot.press(*"my")
        await pilot.pause()
        assert source.value == "my"
        destination = dialog.query_one("#pick-destination", Input)
        destination.value = "SVC-B:80"  # a complete name: kept as typed
        source.focus()
        await pilot.press("enter")
        await pilot.pause()
        screen = screen_of(app)
        assert screen.request is not None
        assert (screen.request.source, screen.request.destination) == ("myapp-1", "SVC-B:80")


async def test_the_spread_chart_keeps_each_endpoint_on_one_line_at_80_columns() -> None:
    app = make_app(Request("pod1", "svc-b:80"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        dialog = app.screen
        assert isinstance(dialog, SpreadScreen)
        await dialog.workers.wait_for_complete()
        chart = dialog.query_one(SpreadChart)
        assert chart.spread is not None
        # As if 100,000 had been asked for: the longest count must still fit.
        chart.spread = replace(chart.spread, requested=100_000)
        await pilot.pause()
        rows = [line for line in shown(chart).splitlines() if "█" in line]
        assert len(rows) == 3 and all(line.rstrip().endswith("%)") for line in rows)


async def test_an_unknown_destination_from_a_preset_key_is_a_notification() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = screen_of(app)
        trace = screen.trace
        assert not screen.load(Request("pod1", "nowhere:80"))
        await pilot.pause()
        assert screen.trace is trace
        assert any(n.severity == "error" for n in app._notifications)


async def test_deleting_a_pod_changes_the_rules_and_the_next_trace() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        old_trace = screen.trace
        old_text = screen.session.rules_text("node-a")
        tree = screen.query_one(ClusterTree)
        assert tree.select_pod("default", "pod4")
        tree.focus()
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, RulesDiffScreen)
        cluster = screen.session.cluster
        assert cluster.pod("default", "pod4") is None
        assert screen.session.rules_text("node-a") != old_text
        await pilot.press("escape")
        # The pinned endpoint is gone, so the request no longer traces; the
        # old trace stays on screen and a warning says why.
        assert screen.trace is old_trace
        assert any("no longer traces" in str(n.message) for n in app._notifications)
        await pilot.press("2")
        assert screen.trace is not old_trace


async def test_delete_without_a_pod_under_the_cursor_warns_and_changes_nothing() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        cluster = screen.session.cluster
        screen.query_one(PacketLog).focus()
        screen.query_one(ClusterTree).move_cursor(None)
        await pilot.press("d")
        assert screen.session.cluster is cluster
        assert any(n.severity == "warning" for n in app._notifications)


async def test_scale_up_adds_an_endpoint_to_the_rules() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        cursor_on(screen, "pod2")
        old_pods = set(screen.session.cluster.pods)
        before = index_rules(screen.session.rules_text("node-a")).rule_count
        await pilot.press("plus")
        await pilot.pause()
        assert isinstance(app.screen, RulesDiffScreen)
        (new,) = set(screen.session.cluster.pods) - old_pods
        text = screen.session.rules_text("node-a")
        assert index_rules(text).rule_count > before
        assert f"-j DNAT --to-destination {new.ip}:8080" in text
        # The diff opens at its top, the first node's heading in view, and a
        # changed rule's end (its new probability) is on screen, not cut.
        log = app.screen.query_one(DiffLog)
        assert log.scroll_y == 0
        top = shown(log)
        assert top.splitlines()[0].startswith("── node-a ──")
        assert "--probability 0.33333333349" in top


async def test_after_an_edit_the_cursor_stays_on_its_pod_for_the_next() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        tree = cursor_on(screen, "pod2")
        pods = len(screen.session.cluster.pods)
        await pilot.press("plus")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        selected = tree.selected_pod
        assert selected is not None and selected.name == "pod2"
        await pilot.press("minus")
        await pilot.pause()
        assert isinstance(app.screen, RulesDiffScreen)
        assert len(screen.session.cluster.pods) == pods


async def test_after_deleting_a_pod_the_cursor_is_on_the_pod_now_in_its_place() -> None:
    base = demo_cluster()
    # pod1 without an owner: deleting it makes no replacement.
    cluster = base.model_copy(
        update={
            "pods": tuple(
                p.model_copy(update={"owner": None}) if p.name == "pod1" else p for p in base.pods
            )
        }
    )
    app = make_app(cluster=cluster)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        tree = cursor_on(screen, "pod1")
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert screen.session.cluster.pod("default", "pod1") is None
        selected = tree.selected_pod
        assert selected is not None and selected.name == "pod2"


async def test_at_80x24_an_edit_first_shows_the_pod_it_would_act_on() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(app)
        await pilot.press("v", "v", "v")  # the cluster tab
        tree = screen.query_one(ClusterTree)
        tree.select_pod("default", "pod3")
        await pilot.press("v")  # back to the hops
        assert screen.pane == "log" and app.focused is screen.query_one(PacketLog)
        pods = set(screen.session.cluster.pods)
        await pilot.press("d")
        await pilot.pause()
        # Nothing deleted yet: the cluster tab is shown with pod3 under the cursor.
        assert set(screen.session.cluster.pods) == pods
        assert screen.pane == "cluster" and app.focused is tree
        await pilot.press("d")
        await pilot.pause()
        assert {p.name for p in pods} - {p.name for p in screen.session.cluster.pods} == {"pod3"}
        # Its replacement got the same IP, so no rule changed: a notice, not an empty diff.
        assert app.screen is screen
        (note,) = app._notifications
        assert note.message.endswith("with 192.168.1.4; no node's rules changed.")


async def test_a_trace_an_edit_broke_is_marked_and_the_scenario_keys_say_why() -> None:
    app = make_app(None)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await pilot.press("3")  # pinned to pod4's 192.168.2.2:8080
        tree = cursor_on(screen, "pod4")
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("escape")
        assert screen.stale and screen.sub_title.startswith(
            "⚠ before the last edit · iptables · host-gw · delivered"
        )
        tree.select_pod("default", "pod1")
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("escape")
        app.clear_notifications()
        await pilot.press("3")
        (note,) = app._notifications
        assert note.message.startswith("pod1 is gone: an edit of this session deleted it.")


async def test_send_n_requests_charts_the_spread() -> None:
    app = make_app(Request("pod1", "svc-b:80"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s")
        dialog = app.screen
        assert isinstance(dialog, SpreadScreen)
        await dialog.workers.wait_for_complete()
        await pilot.pause()
        chart = dialog.query_one(SpreadChart)
        spread = chart.spread
        assert spread is not None and not chart.sending
        assert sum(n for _, n in spread.counts) == 100 == spread.requested
        assert len(spread.counts) >= 2  # svc-b has several endpoints
        field = dialog.query_one("#spread-count", Input)
        field.value = "0"
        field.focus()
        await pilot.press("enter")
        assert "out of range" in shown(dialog.query_one("#spread-error", Label))
        assert dialog.query_one(SpreadChart).spread is spread


async def test_escape_stops_a_long_send_and_keeps_what_was_counted() -> None:
    app = make_app(Request("pod1", "svc-b:80"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s")
        dialog = app.screen
        assert isinstance(dialog, SpreadScreen)
        await dialog.workers.wait_for_complete()
        field = dialog.query_one("#spread-count", Input)
        field.value = "100000"
        field.focus()
        await pilot.press("enter")
        chart = dialog.query_one(SpreadChart)
        # The screen stays live while the worker sends: wait for a first tally.
        for _ in range(200):
            await pilot.pause(0.05)
            if chart.spread is not None and chart.spread.requested == 100_000:
                break
        assert chart.sending
        await pilot.press("escape")
        await dialog.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen is dialog and not chart.sending
        spread = chart.spread
        assert spread is not None and 0 < spread.sent < 100_000
        assert f"stopped: {spread.sent:,} of 100,000 sent" in shown(chart)
        await pilot.press("escape")
        assert app.screen is not dialog


async def test_switch_node_pins_the_rules_and_comes_back_to_following() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        rules = screen.query_one(RulesView)
        assert rules.node == "node-a"
        await pilot.press("o")
        assert rules.node == "node-b" and screen.query_one(RulesPane).pinned_node == "node-b"
        await pilot.press("o")
        assert rules.node == "node-c"
        await pilot.press("o")
        assert screen.query_one(RulesPane).pinned_node is None and rules.node == "node-a"


async def test_filter_narrows_the_rules_and_escape_clears_it() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        rules = screen.query_one(RulesView)
        total = rules.visible_rows
        await pilot.press("slash")
        await pilot.press(*"KUBE-SVC")
        await pilot.pause()
        assert 0 < rules.visible_rows < total
        assert all("kube-svc" in rules.index.lines[r].lower() for r in rules._rows or ())
        # Typing in the filter does not step the trace.
        assert screen.index == 0
        await pilot.press("escape")
        assert rules.visible_rows == total


async def test_narrow_terminal_shows_one_pane_and_v_cycles_them() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(app)
        assert screen.has_class("-narrow")
        shown = [p.id for p in screen.query(".pane") if p.display]
        assert shown == ["log"]
        await pilot.press("v")
        assert [p.id for p in screen.query(".pane") if p.display] == ["inspector"]
        assert screen.query_one(PaneTabs).active == "inspector"
        await pilot.press("v", "v")
        assert [p.id for p in screen.query(".pane") if p.display] == ["cluster"]


@pytest.mark.parametrize(("size", "layout"), [((120, 40), "-medium"), ((200, 50), "-wide")])
async def test_wider_terminals_show_every_pane(size: tuple[int, int], layout: str) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        assert screen.has_class(layout)
        panes = list(screen.query(".pane"))
        assert len(panes) == 4 and all(p.display for p in panes)
        assert not screen.query_one(PaneTabs).display


@pytest.mark.parametrize(("width", "cluster"), [(120, 34), (169, 34), (180, 39), (240, 48)])
async def test_past_170_columns_the_cluster_pane_widens(width: int, cluster: int) -> None:
    app = make_app()
    async with app.run_test(size=(width, 40)) as pilot:
        await pilot.pause()
        assert screen_of(app).query_one("#cluster").outer_size.width == cluster


async def test_play_advances_and_space_pauses() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await pilot.press("greater_than_sign", "greater_than_sign", "greater_than_sign")
        assert screen.player.speed == 8.0
        await pilot.press("space")
        for _ in range(50):
            await pilot.pause(0.05)
            if screen.index >= 2:
                break

        def footer() -> str:
            return " ".join(shown(app.screen.query_one(KeyFooter)).split())

        assert "space Pause" in footer() and "space Play" not in footer()
        await pilot.press("space")
        stopped = screen.index
        assert stopped >= 2
        await pilot.pause(0.3)
        assert screen.index == stopped
        assert "space Play" in footer() and "space Pause" not in footer()


async def test_help_lists_every_key_and_closes() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = shown(app.screen.query_one("#help-keys"))
        for description in ("Step", "Back", "Reply", "Delete pod", "Send N", "Filter"):
            assert description in text
        await pilot.press("escape")
        assert isinstance(app.screen, TraceScreen)


async def test_every_screen_binding_is_a_palette_command() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for binding in TraceScreen.BINDINGS:
            description = binding.description  # type: ignore[union-attr]
            # `m` says which mode it goes to: "Mode: re-trace in nftables mode (…)".
            assert any(t == description or t.startswith(f"{description}: ") for t in titles)
        assert len(titles) == len(set(titles)), "one command per title"
        assert (
            "Mode: re-trace in nftables mode (kube-proxy in iptables mode now; "
            "m cycles iptables, nftables, ipvs)"
        ) in titles


async def test_names_with_markup_and_escapes_are_shown_literally() -> None:
    base = demo_cluster()
    name = "[bold red]evil[/]\x1b[31m"
    client = ExternalClient(name=name, ip=IPv4Address("10.0.0.200"))
    fields = {f: getattr(base, f) for f in Cluster.model_fields}
    fields["clients"] = (*base.clients, client)
    app = make_app(cluster=Cluster(**fields))
    async with app.run_test(size=(160, 48)):
        tree = screen_of(app).query_one(ClusterTree)
        labels = [str(node.label) for node in tree.root.children[2].children]
        assert "[bold red]evil[/]\\x1b[31m  10.0.0.200" in labels


async def test_the_rules_pane_draws_only_the_rows_on_screen() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        rules = screen_of(app).query_one(RulesView)
        big = (
            "*nat\n"
            + "\n".join(
                f"-A KUBE-SERVICES -d 10.{i // 65536}.{i // 256 % 256}.{i % 256}/32 -j KUBE-SVC-X{i}"
                for i in range(100_000)
            )
            + "\nCOMMIT\n"
        )
        rules.show("node-x", big, None)
        await pilot.pause()
        assert rules.visible_rows == 100_002
        assert rules.virtual_size.height == 100_002
        assert len(rules._cache) <= rules.size.height
        assert not rules.children


async def test_an_error_quoting_markup_is_shown_literally_in_the_pick_dialog() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, PickScreen)
        dialog.query_one("#pick-destination", Input).value = "svc-b:80"
        source = dialog.query_one("#pick-source", Input)
        source.value = "[red]oops"
        source.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert "'[red]oops'" in shown(dialog.query_one("#pick-error", Label))


async def test_quick_steps_are_not_undone_by_the_log_catching_up() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(app)
        # No pause between the keys: the log's highlight messages of the
        # earlier steps arrive after the later steps.
        await pilot.press(*"nnnnnn")
        await pilot.pause()
        assert screen.index == 6
        assert screen.query_one(PathMap).index == 6


async def test_the_footer_shows_the_help_key_at_80_columns() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        footer = shown(app.screen.query_one(KeyFooter))
        assert "? Keys" in footer


async def test_a_long_note_is_shown_whole_at_80x24() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(app)
        screen.go_to(dnat_index(screen))
        await pilot.pause()
        hop = screen.hop
        assert hop is not None and hop.note.endswith("physdev")
        text = " ".join(shown(screen.query_one(Explanation)).split())
        assert f"Note: {' '.join(hop.note.split())} Note: Scenario 3 always takes" in text
        # The scenario's own note, last, is whole too.
        assert text.endswith("(s sends many requests and charts them).")


@pytest.mark.parametrize("scenario", ["3", "4"])
async def test_at_80x24_the_last_hop_stays_in_view_in_the_log(scenario: str) -> None:
    app = make_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(scenario, "G")
        await pilot.pause()
        screen = screen_of(app)
        log = screen.query_one(PacketLog)
        assert screen.trace is not None and log.highlighted == len(screen.trace.hops) - 1
        # The highlighted line is inside the log's visible rows.
        assert log.scroll_y <= log.highlighted < log.scroll_y + log.scrollable_content_region.height
        assert "▶" in shown(log)


async def test_end_and_home_go_to_the_traces_ends_with_the_log_focused() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(app)
        await pilot.press("n", "n")
        assert isinstance(app.focused, PacketLog)
        await pilot.press("end")
        assert screen.trace is not None and screen.index == len(screen.trace.hops) - 1
        await pilot.press("home")
        assert screen.index == 0


async def test_an_explanation_taller_than_half_the_screen_scrolls() -> None:
    app = make_app()
    async with app.run_test(size=(80, 12)) as pilot:
        screen = screen_of(app)
        screen.go_to(dnat_index(screen))
        await pilot.pause()
        bar = screen.query_one("#explanation-bar")
        assert bar.outer_size.height <= 12 // 2
        assert bar.max_scroll_y > 0
        explanation = screen.query_one(Explanation)
        last_line = explanation.render_line(explanation.size.height - 1).text
        assert last_line.rstrip().endswith("charts them).")
        bar.scroll_end(animate=False)
        await pilot.pause()
        # Scrolled to the end, the explanation's last line is in view.
        assert bar.scroll_y + bar.scrollable_content_region.height >= explanation.outer_size.height
        await pilot.press("n")
        assert bar.scroll_y == 0


async def test_checking_in_the_lab_without_a_lab_is_one_error_line() -> None:
    pytest.importorskip("sim.lab")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = screen_of(app)
        await pilot.press("L")
        await app.workers.wait_for_complete()
        await pilot.pause()
        errors = [n for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1 and errors[0].title == "Lab"
        assert "\n" not in errors[0].message
        assert screen.lab_result == ""


async def test_on_a_big_cluster_tracing_and_rules_run_in_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tui.session._BIG", 0)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.trace is not None and screen.query_one(Explanation).waiting == ""
        await pilot.press("o")
        await app.workers.wait_for_complete()
        await pilot.pause()
        rules = screen.query_one(RulesView)
        assert rules.node == screen.query_one(RulesPane).pinned_node == "node-b"
        assert not rules.placeholder and rules.index.rule_count > 0


async def test_scenario_keys_explain_themselves_on_another_cluster() -> None:

    from sim.cluster.load import load
    from tui.app import KubehopApp

    cluster = load(paths.REAL / "calico")
    app = KubehopApp(cluster)
    async with app.run_test(size=(100, 30)) as pilot:
        assert "press p" in app.screen.sub_title and "1–4" not in app.screen.sub_title
        await pilot.press("1")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("cast on the demo cluster" in m and "pod1" in m for m in messages)


async def test_on_a_big_cluster_the_pick_dialog_checks_names_and_traces_in_the_background(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tui.session._BIG", 0)
    traced: list[Request] = []
    real_trace = Session.trace

    def spy(self: Session, request: Request) -> Trace:
        traced.append(request)
        return real_trace(self, request)

    monkeypatch.setattr(Session, "trace", spy)
    app = make_app(request=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, PickScreen)
        dialog.query_one("#pick-source", Input).value = "pod1"
        dialog.query_one("#pick-destination", Input).value = "nope:80"
        dialog.query_one("#pick-destination", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        # A name the cluster lacks is caught in the dialog, without tracing.
        assert app.screen is dialog and traced == []
        assert "'nope' does not resolve" in str(dialog.query_one("#pick-error", Label).render())
        dialog.query_one("#pick-destination", Input).value = "svc-b:80"
        await pilot.press("enter")
        await pilot.pause()
        screen = screen_of(app)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [r.destination for r in traced] == ["svc-b:80"]
        assert screen.trace is not None and screen.trace.destination == "svc-b:80"


def test_the_spread_shows_its_tally_as_it_goes_and_stops_when_told() -> None:
    session = Session(demo_cluster(), seed=1)
    seen: list[int] = []

    def progress(spread: Spread) -> bool:
        seen.append(spread.sent)
        return len(seen) < 2

    spread = session.spread(Request("pod1", "svc-b:80", seed=3), 1000, progress=progress, every=100)
    assert seen == [100, 200]
    assert (spread.sent, spread.requested, spread.seed) == (200, 1000, 3)


def test_the_spread_counts_refused_requests_apart_from_the_endpoints() -> None:

    from sim.cluster.load import load

    cluster = load(paths.REAL / "kubeadm-flannel.yaml")
    session = Session(cluster)
    # api-2 (10.244.1.9) declares tcp/9000, not 9999: every request is refused there.
    # (A Service's endpoints are taken as listening: their EndpointSlice lists them.)
    spread = session.spread(Request("frontend-7d9c5b7b4-x2k9p", "10.244.1.9:9999", seed=3), 30)
    assert dict(spread.counts) == {"refused": 30}


async def test_on_a_big_cluster_an_edit_is_planned_in_a_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tui.session._BIG", 0)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await app.workers.wait_for_complete()
        await pilot.pause()
        generation = screen.session.generation
        tree = screen.query_one(ClusterTree)
        assert tree.select_pod("default", "pod4")
        tree.focus()
        titles: list[str] = []
        notify = app.notify

        def record(message: str, *, title: str = "", **kw: Any) -> None:
            titles.append(title)
            notify(message, title=title, **kw)

        monkeypatch.setattr(app, "notify", record)
        await pilot.press("d")
        # The key returns at once; the worker renders node-b's rules before and after.
        assert "Editing" in titles
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, RulesDiffScreen)
        assert screen.session.generation == generation + 1
        assert screen.session.cluster.pod("default", "pod4") is None
        assert "(rules compared on node-b only)" in screen.session.history[-1]


async def test_on_a_big_cluster_keys_pressed_while_the_rules_render_start_no_second_render(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each redraw used to start the node's whole render again (the exclusive worker
    # cancels the last, whose thread runs on): renders piled up and keys crawled.
    monkeypatch.setattr("tui.session._BIG", 0)
    release = threading.Event()
    asked: list[str] = []
    original = Session.rules_pages

    def slow_rules_pages(self: Session, node: str) -> NodePages | None:
        if threading.current_thread() is not threading.main_thread():
            asked.append(node)
            release.wait(10)
        return original(self, node)

    monkeypatch.setattr(Session, "rules_pages", slow_rules_pages)
    app = make_app()
    with fresh_node_caches():
        await _keys_while_rendering(app, asked, release)


async def _keys_while_rendering(
    app: KubehopApp, asked: list[str], release: threading.Event
) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        for _ in range(40):
            await pilot.pause(0.01)
            if asked:
                break
        for _ in range(3):
            await pilot.press("n")
            await pilot.pause()
        assert asked == ["node-a"]
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        rules = screen.query_one(RulesView)
        assert not rules.placeholder and rules.index.rule_count > 0
