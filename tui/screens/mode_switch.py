"""kube-proxy's mode switch (`m`): re-trace in the next mode at the same hop, say what differs."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rich.markup import escape

from model.errors import KubehopError
from model.trace import Trace
from tui.hopstyle import literal
from tui.session import Request
from tui.widgets.explanation import Explanation

if TYPE_CHECKING:
    from tui.screens.trace import TraceScreen


class ModeSwitch:
    """The trace screen's `m`: kube-proxy in its next mode, the request on show traced again.

    The new trace keeps the old one's seed and endpoint, so what differs is the
    mode's doing; it opens at the hop on show, or the nearest. On a big cluster
    the trace runs in a worker thread of the screen (group "trace", so that it
    and a request being loaded cancel each other).
    """

    def __init__(self, screen: TraceScreen) -> None:
        self._screen = screen

    def description(self) -> str:
        """What `m` does, for the help and the command palette: the mode kube-proxy is in
        and the one `m` switches to (the footer has room for "Mode" only)."""
        session = self._screen.session
        modes = session.modes()
        return (
            f"Mode: re-trace in {session.next_mode()} mode (kube-proxy in "
            f"{session.mode} mode now; m cycles {', '.join(modes)})"
            if len(modes) > 1
            else f"Mode: kube-proxy in {session.mode} mode (the only one simulated)"
        )

    def switch(self) -> None:
        """Switch kube-proxy to its next mode and trace the request on show again, staying at
        the hop on show (or the nearest), and say what the other mode does differently."""
        screen = self._screen
        session = screen.session
        screen.player.stop()
        was, mode = session.mode, session.next_mode()
        if mode == was:
            screen.notify(f"kube-proxy runs in {mode} mode, the only mode kubehop simulates.")
            return
        trace, index, request = screen.trace, screen.index, screen.request
        try:
            session.switch_mode(mode)
        except KubehopError as err:
            screen.notify(escape(str(err)), title="Cannot switch", severity="error")
            return
        screen.cluster_tree.show(session.cluster)
        screen.update_title()
        if request is None or trace is None:
            screen.redraw_rules()
            screen.notify(
                f"kube-proxy runs in {mode} mode now (it ran in {was} mode): the rules pane "
                "shows what it writes. Press p or a scenario's key to trace a request.",
                title=f"{mode} mode",
            )
            return
        # The same seed and endpoint: what differs in the new trace is the mode's doing.
        again = Request(
            request.source, request.destination, request.container, trace.seed, request.pick
        )
        if session.big:
            screen.query_one(Explanation).waiting = (
                f"Tracing {request.describe()} again in {mode} mode: the first trace through a "
                "node renders and parses its rules, which takes a while at this scale…"
            )
            screen.run_worker(
                partial(self._retrace_in_worker, request, again, trace, index),
                name="_retrace_in_worker",
                group="trace",
                exclusive=True,
                thread=True,
            )
            return
        try:
            new = session.trace(again)
        except KubehopError as err:
            self._retrace_failed(str(err))
            return
        self._show_switched(request, new, trace, index)

    def _retrace_in_worker(self, request: Request, again: Request, old: Trace, index: int) -> None:
        app = self._screen.app
        try:
            new = self._screen.session.trace(again)
        except KubehopError as err:
            app.call_from_thread(self._retrace_failed, str(err))
            return
        app.call_from_thread(self._show_switched, request, new, old, index)

    def _retrace_failed(self, message: str) -> None:
        screen = self._screen
        screen.query_one(Explanation).waiting = ""
        screen.notify(
            escape(f"In {screen.session.mode} mode the request does not trace: {message}"),
            severity="warning",
        )
        screen.mark_stale()
        screen.redraw_rules()

    def _show_switched(self, request: Request, new: Trace, old: Trace, index: int) -> None:
        """Show `new`, the request traced again in another mode, at the counterpart of hop
        `index` of `old`, and say what changed."""
        screen = self._screen
        session = screen.session
        was = screen.badges[index].label if index < len(screen.badges) else ""
        found = session.counterpart(old, index, new)
        screen.show_trace(request, new, found.index, retrace=True)
        now = screen.badges[found.index].label
        hop = new.hops[found.index]
        on = f" on {literal(hop.where.node)}" if hop.where.node else ""
        of = f"{found.index + 1} of {len(new.hops)}"
        kept = (
            f"Still at the {now} hop{on} ({of})."
            if found.same
            else f"Hop {index + 1} ({was}) has no counterpart here: at the nearest, "
            f"the {now} hop{on} ({of})."
        )
        differences = session.differences(old, new)
        said = (
            "; ".join(differences)
            if differences
            else "the same hops, and no rule of kube-proxy's rewrites or stops this request"
        )
        mode = session.mode
        screen.notify(
            escape(f"{mode} mode: {said}. {kept}"), title=f"kube-proxy: {mode} mode", timeout=10
        )
