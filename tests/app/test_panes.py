"""Panes, tabs and focus: what is on show, at every width, and where the keys go."""

from __future__ import annotations

from typing import Any

import pytest

from model.errors import KubehopError
from tests.app.support import (
    make_app,
    notices,
    plain_env,
    scenario,
    screen_of,
    shown,
    trace_of,
)
from tui.screens.rules_pane import RulesPane
from tui.screens.trace import TraceScreen
from tui.session import Session
from tui.widgets.cluster_tree import ClusterTree
from tui.widgets.inspector import PacketInspector
from tui.widgets.packet_log import PacketLog
from tui.widgets.pane_tabs import PaneTabs
from tui.widgets.rules_view import RulesView

__all__ = ["plain_env"]


def on_show(screen: TraceScreen) -> list[str]:
    """The ids of the panes drawn now."""
    return [str(p.id) for p in screen.query(".pane") if p.display]


def pane_state(screen: TraceScreen) -> tuple[object, ...]:
    """What a user sees of the narrow layout: the pane, the highlighted tab, what is drawn, focus."""
    focused = screen.focused
    return (screen.pane, screen.query_one(PaneTabs).active, on_show(screen), focused)


async def test_pressing_v_fast_leaves_one_pane_its_tab_highlighted_and_the_app_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(app)
        await pilot.pause()
        calls: list[str] = []
        show_pane = screen.show_pane

        async def counted(pane: str, **kw: Any) -> None:
            calls.append(pane)
            await show_pane(pane, **kw)

        monkeypatch.setattr(screen, "show_pane", counted)
        await pilot.press(*"v" * 13)  # as fast as the keys come: no pause between them
        # One switch per press, each shown once, and the last one wins.
        assert calls == ["inspector", "rules-pane", "cluster", "log"] * 3 + ["inspector"]
        state = pane_state(screen)
        assert state[:3] == ("inspector", "inspector", ["inspector"])
        assert isinstance(app.focused, PacketInspector)
        # Idle: nothing changes any more, nothing pending.
        for _ in range(5):
            await pilot.pause(0.05)
            assert pane_state(screen) == state
        assert calls == ["inspector", "rules-pane", "cluster", "log"] * 3 + ["inspector"]
        assert not app.workers._workers
        # And the next press still works.
        await pilot.press("v")
        assert pane_state(screen)[:3] == ("rules-pane", "rules-pane", ["rules-pane"])
        assert isinstance(app.focused, RulesView)


async def test_clicking_a_tab_shows_its_pane_and_gives_it_the_keys() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(app)
        tabs = screen.query_one(PaneTabs)
        x = sum(len(label) + 2 for label in list(tabs.labels.values())[:3]) + 2  # "Cluster"
        await pilot.click(PaneTabs, offset=(x, 0))
        await pilot.pause()
        assert pane_state(screen)[:3] == ("cluster", "cluster", ["cluster"])
        assert isinstance(app.focused, ClusterTree)


async def test_o_on_a_narrow_terminal_shows_the_rules_with_the_keys_in_them() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(app)
        await pilot.press("o")
        assert pane_state(screen)[:3] == ("rules-pane", "rules-pane", ["rules-pane"])
        assert isinstance(app.focused, RulesView)
        assert screen.query_one(PaneTabs).labels["rules-pane"] == "Rules: node-b (pinned)"


@pytest.mark.parametrize("keys", [["o"], ["slash", *"DNAT", "enter"]], ids=["o", "filter"])
async def test_on_a_wide_terminal_o_and_slash_leave_the_narrow_pane_alone(keys: list[str]) -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await pilot.press(*keys)
        assert screen.pane == "log"
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        # Shrunk, the hops are on show, and the keys went with them.
        assert pane_state(screen)[:3] == ("log", "log", ["log"])
        assert isinstance(app.focused, PacketLog)


async def test_at_80x24_the_first_screen_composes_only_the_pane_on_show() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(app)
        assert [p.id for p in screen.query(".pane")] == ["log"]
        await pilot.press("v")
        assert [p.id for p in screen.query(".pane")] == ["inspector", "log"]
        # Made when first shown, it shows the hop on show.
        assert screen.inspector.hop == screen.hop
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        assert [p.id for p in screen.query(".pane")] == [
            "cluster",
            "rules-pane",
            "inspector",
            "log",
        ]
        assert on_show(screen) == ["cluster", "rules-pane", "inspector", "log"]


@pytest.mark.parametrize(
    ("size", "keys"),
    [((80, 24), ["v", "v"]), ((120, 40), []), ((140, 40), []), ((160, 48), []), ((200, 50), [])],
    ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else "",
)
async def test_the_deciding_rule_is_readable_to_the_end_of_its_target(
    size: tuple[int, int], keys: list[str]
) -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=size) as pilot:
        screen = screen_of(app)
        screen.go_to(4)  # the DNAT
        await pilot.press(*keys)
        await pilot.pause()
        rules = screen.query_one(RulesView)
        decisive = next(line for line in shown(rules).splitlines() if line.startswith("▶ 2 "))
        assert "KUBE-SEP-UGY2AY7XLGRWURZI -j DNAT --to-destination 192.168.2.2:8080" in decisive
        # What is cut says so, and nothing scrolls sideways under the rules.
        assert decisive.rstrip().endswith("…") or "-p tcp" in decisive
        assert rules.scrollable_content_region.height == rules.content_region.height


async def test_o_cycles_through_every_node_then_follows_the_packet_again() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        # On node-b: the packet crossed the wire.
        screen.go_to(next(h.seq for h in trace_of(screen).hops if h.where.netns == "node-b"))
        await pilot.pause()
        rules = screen.query_one(RulesView)
        assert rules.node == "node-b"
        seen = []
        for _ in range(3):
            await pilot.press("o")
            seen.append((rules.node, screen.rules_pane.pinned_node))
        assert seen == [("node-c", "node-c"), ("node-a", "node-a"), ("node-b", None)]


async def test_o_without_a_trace_browses_nodes_and_the_next_trace_follows_the_packet() -> None:
    app = make_app(None)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        rules = screen.query_one(RulesView)
        await pilot.press("o")
        assert rules.node == "node-b"
        await pilot.press("3")
        assert screen.rules_pane.pinned_node is None
        assert rules.node == "node-a" and "following the packet" in str(
            screen.rules_pane.border_title
        )


async def test_when_a_nodes_rules_cannot_be_shown_the_pane_says_so_for_that_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = Session.rules_text

    def rules_text(self: Session, node: str) -> str:
        if node == "node-b":
            raise KubehopError("node-b's rules are unreadable")
        return real(self, node)

    monkeypatch.setattr(Session, "rules_text", rules_text)
    app = make_app(scenario("3"))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await pilot.press("o")
        pane = screen.rules_pane
        rules = pane.query_one(RulesView)
        # The label, the border and the view all speak of node-b.
        assert pane.label == "Rules: node-b (pinned)"
        assert str(pane.border_title).startswith("Rules · node-b")
        assert rules.node == "node-b" and "node-b's rules are unreadable" in shown(rules)
        assert pane.border_subtitle == ""
        assert any("unreadable" in n for n in notices(app))


async def test_a_request_that_never_leaves_its_pod_says_no_nodes_rules_see_it() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await pilot.press("1")
        pane = screen.rules_pane
        rules = pane.query_one(RulesView)
        assert rules.node is None and pane.label == "Rules: none"
        assert "never leaves pod1's network namespace" in " ".join(shown(rules).split())
        # The last node's line counts are not left behind.
        assert pane.border_subtitle == ""
        await pilot.press("o")
        assert rules.node == "node-a"


async def test_after_an_edit_that_still_traces_the_hops_listed_stay_listed() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await pilot.press(*"nnnnnnnn")
        await pilot.press("g")
        log = screen.query_one(PacketLog)
        assert log.option_count == 9 and screen.index == 0
        tree = screen.query_one(ClusterTree)
        assert tree.select_pod("default", "pod2")  # not on this request's path
        tree.focus()
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("escape")
        assert screen.session.cluster.pod("default", "pod2") is None
        assert not screen.stale and log.option_count == 9


async def test_the_packet_pane_says_what_is_below_the_fold() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(app)
        screen.go_to(4)
        await pilot.press("v")
        await pilot.pause()
        inspector = screen.inspector
        more = inspector.query_one("#inspector-more")
        assert more.display
        assert shown(more).startswith(
            "↓ below: Conntrack NEW [UNREPLIED] · Tables walked · Decision"
        )
        # The line says it, so no scrollbar beside the explanation's reads as a second one.
        assert inspector.scrollable_content_region.width == inspector.content_region.width
        inspector.scroll_end(animate=False)
        await pilot.pause()
        assert not more.display


async def test_a_wide_terminal_shows_the_rules_pane_label_in_its_border_only() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(160, 48)):
        screen = screen_of(app)
        pane = screen.query_one(RulesPane)
        assert str(pane.border_title) == "Rules · node-a (following the packet)"
