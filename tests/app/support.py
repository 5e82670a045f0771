"""What the app's pilot tests share: the app on the demo cluster, and what a widget shows."""

from __future__ import annotations

import pytest
from textual.widget import Widget

from model.cluster import Cluster
from model.trace import Trace
from sim.cluster.load import demo_cluster
from tui.app import KubehopApp
from tui.screens.trace import TraceScreen
from tui.session import Request, presets


@pytest.fixture(autouse=True)
def plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No NO_COLOR, no TEXTUAL_THEME: the app as it looks by default (import it to use it)."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)


def make_app(request: Request | None = None, cluster: Cluster | None = None) -> KubehopApp:
    """The app on `cluster` (the demo), showing `request` (none), seed 7, a fixed theme."""
    return KubehopApp(cluster or demo_cluster(), request=request, seed=7, theme="textual-dark")


def scenario(key: str) -> Request:
    """The request of the article's scenario `key` ("1"–"4")."""
    return next(p.request for p in presets() if p.key == key)


def screen_of(app: KubehopApp) -> TraceScreen:
    screen = app.screen
    assert isinstance(screen, TraceScreen)
    return screen


def trace_of(screen: TraceScreen) -> Trace:
    assert screen.trace is not None
    return screen.trace


def at(screen: TraceScreen, state: str) -> int:
    """The position of the first hop of `state` (`dnat`, `bridge`, `reply`) in the trace on show."""
    index = screen.session.landmark(trace_of(screen), state)
    assert index is not None
    return index


def shown(widget: Widget) -> str:
    """The text a widget shows on screen now."""
    return "\n".join(widget.render_line(y).text for y in range(widget.size.height))


def notices(app: KubehopApp) -> list[str]:
    """The notifications on screen, newest last."""
    return [str(n.message) for n in app._notifications]
