"""Snapshots of every screen and dialog, at 80×24 and 160×48, the main screen at 120×40 and
140×40 too (pytest-textual-snapshot).

Regenerate with `pytest tests/app/test_snapshots.py --snapshot-update`, then look
at the report before committing the SVGs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from model.cluster import Cluster
from sim.cluster.load import demo_cluster, with_cni, with_mode
from tui.app import KubehopApp
from tui.screens.spread import SpreadChart
from tui.screens.trace import TraceScreen
from tui.session import Request, Session, presets
from tui.widgets.cluster_tree import ClusterTree

SEED = 7
SIZES = [(80, 24), (160, 48)]
MEDIUM = [(120, 40), (140, 40)]
"""Where the rules share the top row with the cluster, the packet and the log below."""
THEME = "textual-dark"

SnapCompare = Callable[..., bool]


@pytest.fixture(autouse=True)
def _stable_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)


def make_app(request: Request | None, cluster: Cluster | None = None) -> KubehopApp:
    return KubehopApp(cluster or demo_cluster(), request=request, seed=SEED, theme=THEME)


def _cases() -> list[Any]:
    session = Session(demo_cluster(), seed=SEED)
    cases = []
    for preset in presets():
        trace = session.trace(preset.request)
        for state in ("dnat", "bridge", "reply"):
            index = session.landmark(trace, state)
            if index is None:
                continue  # scenario 1 never leaves the pod: no DNAT, no bridge
            for size in SIZES:
                cases.append(
                    pytest.param(
                        preset.request, index, size, id=f"s{preset.key}-{state}-{size[0]}x{size[1]}"
                    )
                )
    return cases


def go_to(index: int, *keys: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """Go to hop `index`, then press `keys` (`v` to show a pane at 80 columns)."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, TraceScreen)
        screen.go_to(index)
        await pilot.pause()
        if keys:
            await pilot.press(*keys)
            await pilot.pause()

    return run_before


@pytest.mark.parametrize(("request_", "index", "size"), _cases())
def test_scenario_mid_trace(
    snap_compare: SnapCompare, request_: Request, index: int, size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(request_), run_before=go_to(index), terminal_size=size)


@pytest.mark.parametrize("size", MEDIUM, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("key", ["2", "3", "4"])
def test_medium_width_at_the_dnat(
    snap_compare: SnapCompare, key: str, size: tuple[int, int]
) -> None:
    request = next(p.request for p in presets() if p.key == key)
    session = Session(demo_cluster(), seed=SEED)
    index = session.landmark(session.trace(request), "dnat")
    assert index is not None
    assert snap_compare(make_app(request), run_before=go_to(index), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_empty_start(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(None), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("pane", ["v", "vv", "vvv"], ids=["packet", "rules", "cluster"])
def test_narrow_panes(snap_compare: SnapCompare, pane: str, size: tuple[int, int]) -> None:
    request = presets()[2].request
    assert snap_compare(make_app(request), press=["n"] * 4 + list(pane), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_pick_dialog(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(presets()[1].request), press=["p"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_pick_dialog_error(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    keys = ["p", *["backspace"] * 4, *"nope", "enter"]
    assert snap_compare(make_app(presets()[1].request), press=keys, terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(presets()[1].request), press=["question_mark"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_spread_dialog(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.press("s")
        chart = pilot.app.screen.query_one(SpreadChart)
        # The requests go in a worker, started when the dialog is mounted; the chart is
        # final once the last tally is shown (the input's cursor does not blink, so the
        # moment it is taken does not show in the picture).
        for _ in range(600):
            if not chart.sending and chart.spread is not None:
                break
            await pilot.pause(0.05)
        assert chart.spread is not None and not chart.sending
        await pilot.pause()

    request = Request("pod1", "svc-b:80")
    assert snap_compare(make_app(request), run_before=run_before, terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_rules_diff_after_deleting_a_pod(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        if size[0] < 120:  # narrow: the cluster is a tab
            await pilot.press("v", "v", "v")
        tree = pilot.app.screen.query_one(ClusterTree)
        tree.select_pod("default", "pod4")
        tree.focus()
        await pilot.press("d")
        await pilot.pause()

    request = Request("pod1", "svc-b:80")
    assert snap_compare(make_app(request), run_before=run_before, terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_rules_filtered(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    keys = ["n"] * 4 + ["slash", *"svc-b"]
    assert snap_compare(make_app(presets()[2].request), press=keys, terminal_size=size)


def test_no_color(snap_compare: SnapCompare, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    request = presets()[2].request
    assert snap_compare(make_app(request), press=["n"] * 4, terminal_size=(80, 24))


def _scenario(key: str) -> Request:
    return next(p.request for p in presets() if p.key == key)


def _landmark(cluster: Cluster, key: str, state: str) -> int:
    session = Session(cluster, seed=SEED)
    index = session.landmark(session.trace(_scenario(key)), state)
    assert index is not None
    return index


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("mode", ["nftables", "ipvs"])
def test_scenario_3s_dnat_in_each_mode(
    snap_compare: SnapCompare, mode: str, size: tuple[int, int]
) -> None:
    """The rules pane shows what the node prints in `mode`, the rule (or IPVS's real server)
    that DNATed marked; at 80 columns the rules are a tab."""
    cluster = with_mode(demo_cluster(), mode)
    index = _landmark(cluster, "3", "dnat")
    keys = ("v", "v") if size[0] < 120 else ()
    app = make_app(_scenario("3"), cluster)
    assert snap_compare(app, run_before=go_to(index, *keys), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_scenario_3s_vxlan_encapsulation(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """Flannel's VXLAN: the packet pane shows the outer headers added around the pod's packet;
    at 80 columns the packet is a tab."""
    cluster = with_cni(demo_cluster(), "flannel-vxlan")
    index = _landmark(cluster, "3", "encap")
    keys = ("v",) if size[0] < 120 else ()
    app = make_app(_scenario("3"), cluster)
    assert snap_compare(app, run_before=go_to(index, *keys), terminal_size=size)


def _challenge(answer: bool) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """Scenario 3 in challenge mode, jumped to the DNAT: its first question on screen, and
    with `answer`, answered wrong (the right one marked, explained)."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        await pilot.press("c", "right_square_bracket")  # hop 3, pod1's route: asked first
        await pilot.pause()
        if answer:
            from tui.screens.question import QuestionScreen

            asked = pilot.app.screen
            assert isinstance(asked, QuestionScreen)
            wrong = (asked.question.answer + 1) % len(asked.question.choices)
            await pilot.press(str(wrong + 1))
            await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("answered", [False, True], ids=["question", "revealed"])
def test_challenge_question(
    snap_compare: SnapCompare, answered: bool, size: tuple[int, int]
) -> None:
    app = make_app(_scenario("3"))
    assert snap_compare(app, run_before=_challenge(answered), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("key", ["3", "4"])
def test_summary(snap_compare: SnapCompare, key: str, size: tuple[int, int]) -> None:
    """The summary at the end: scenario 3's DNAT and its reversal, scenario 4's MASQ too."""
    assert snap_compare(make_app(_scenario(key)), press=["G", "S"], terminal_size=size)
