"""What a learner takes from a trace (besides challenge mode): its summary and a link back to a hop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape

if TYPE_CHECKING:
    from tui.screens.trace import TraceScreen


class Learning:
    """The trace screen's summary (`S`, and by itself at the end) and deep link (`y`).

    Both act on the trace on show; the screen says what to do first when none is.
    """

    def __init__(self, screen: TraceScreen) -> None:
        self._screen = screen

    def summary(self) -> None:
        """Open the summary: NAT and its reversal, the deciding rules, nodes, tunnels; the
        scenario's goal and challenge mode's score. Enter on a line goes to its hop."""
        screen = self._screen
        trace = screen.trace
        if trace is None or screen.request is None:
            return
        if screen.challenging and screen.furthest < len(trace.hops) - 1:
            screen.notify(
                "In challenge mode the summary waits for the end of the trace: it would give the"
                " answers away (c turns challenge mode off).",
                severity="warning",
            )
            return
        from tui.screens.summary import SummaryScreen

        preset = screen.scenario

        def chosen(index: int | None) -> None:
            if index is not None and screen.trace is trace:
                screen.player.stop()
                screen.go_to(index)

        goal = preset.goal if preset is not None else ""
        score = f"{screen.right} of {screen.asked} answered right" if screen.challenging else ""
        screen.app.push_screen(SummaryScreen(screen.session.summary(trace), goal, score), chosen)

    def command(self) -> None:
        """Show, and copy, the command that opens the app at this trace and hop."""
        screen = self._screen
        trace, request = screen.trace, screen.request
        if trace is None or request is None:
            return
        command = screen.session.command(request, trace, screen.index + 1)
        screen.app.copy_to_clipboard(command)
        edited = (
            "\nIt traces the cluster as loaded: this session's edits (d, +, −) are not in it."
            if screen.session.history
            else ""
        )
        screen.notify(
            escape(command) + edited,
            title=f"Opens hop {screen.index + 1} (copied to the clipboard)",
            timeout=20,
        )
