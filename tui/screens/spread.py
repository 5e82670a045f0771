"""Send N requests: where they went, as a bar chart."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.markup import escape
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Input, Label
from textual.worker import get_current_worker

from model.errors import KubehopError
from tui.hopstyle import literal
from tui.screens.dialog import Dialog
from tui.session import MAX_REPEATS, Spread

_BAR_CELLS = 40
"""The longest bar, in cells."""


class SpreadChart(Widget):
    """One bar per endpoint: how many of the N requests it served."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"-bar", "-count", "-progress"}

    DEFAULT_CSS = """
    SpreadChart > .-bar { color: $accent; }
    SpreadChart > .-count { color: $dim-text; }
    SpreadChart > .-progress { color: $warning; text-style: bold; }
    """

    spread: reactive[Spread | None] = reactive(None, layout=True)
    """The requests counted (so far, while sending)."""
    sending: reactive[bool] = reactive(False)
    """Requests are still being sent."""

    def render(self) -> Text:
        spread = self.spread
        if spread is None:
            if self.sending:
                return Text("Sending…")
            return Text("Type a number of requests and press Enter.")
        total = spread.sent
        widest = max((n for _, n in spread.counts), default=1)
        name_width = max((len(literal(name)) for name, _ in spread.counts), default=0)
        text = Text()
        text.append(
            f"{total:,} requests from {literal(spread.request.describe())}, seed {spread.seed}\n"
        )
        if total < spread.requested:
            state = "sending (Esc stops)" if self.sending else "stopped"
            text.append(
                f"{state}: {total:,} of {spread.requested:,} sent\n",
                self.get_component_rich_style("-progress", partial=True, default=Style()),
            )
        text.append("\n")
        bar_style = self.get_component_rich_style("-bar", partial=True, default=Style())
        count_style = self.get_component_rich_style("-count", partial=True, default=Style())
        # Room for the longest count there can be (" 100,000 (100%)"), so a line
        # never wraps while the tally grows.
        room = self.size.width - name_width - 1 - len(f" {spread.requested:,} (100%)")
        longest = max(1, min(_BAR_CELLS, room))
        for name, count in spread.counts:
            cells = max(1, round(longest * count / widest))
            text.append(f"{literal(name):<{name_width}} ")
            text.append("█" * cells, bar_style)
            text.append(f" {count:,} ({100 * count / total:.0f}%)\n", count_style)
        return text


Send = Callable[[int, Callable[[Spread], bool]], Spread]
"""Sends N requests, showing the tally to a callback that returns False to stop."""


class SpreadScreen(Dialog[None]):
    """Send N requests from fresh source ports and see how they spread over endpoints.

    The requests are sent in a worker thread (100,000 take minutes), the chart
    filling in as they go; Esc stops the sending, and a second Esc closes.
    """

    DEFAULT_CSS = """
    #spread-row {
        height: 1;
        margin: 1 0 0 0;
    }

    #spread-label {
        width: 10;
        color: $text-muted;
    }

    #spread-count {
        width: 12;
    }

    #spread-error {
        display: none;
        color: $error;
        text-style: bold;
    }

    #spread-error.-shown {
        display: block;
    }

    #spread-chart {
        height: auto;
        margin: 1 0;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "stop_or_close", "Stop/close")]

    def __init__(self, send: Send, count: int = 100) -> None:
        super().__init__()
        self._send = send
        self._count = count
        self._run_id = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="spread-body", classes="dialog-body") as body:
            body.border_title = "Send N requests"
            body.border_subtitle = "Enter sends · Esc stops, then closes"
            with Horizontal(id="spread-row"):
                yield Label("Requests", id="spread-label")
                count = Input(str(self._count), id="spread-count", type="integer", compact=True)
                # A steady cursor: a blinking one repaints twice a second while the chart
                # sits idle, and a screenshot showed it or not depending on when the
                # sending ended (the snapshot test was flaky on that alone).
                count.cursor_blink = False
                yield count
            yield Label("", id="spread-error")
            yield SpreadChart(id="spread-chart")

    def on_mount(self) -> None:
        self._run(self._count)

    @on(Input.Submitted, "#spread-count")
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            count = int(event.value)
        except ValueError:
            self._error(f"request count {event.value!r} is not a whole number (1-{MAX_REPEATS})")
            return
        self._run(count)

    def action_stop_or_close(self) -> None:
        """Stop the sending; with nothing being sent, close."""
        if self.query_one(SpreadChart).sending:
            self.workers.cancel_group(self, "spread")
        else:
            self.dismiss()

    def _run(self, count: int) -> None:
        if not 1 <= count <= MAX_REPEATS:
            self._error(f"request count {count} is out of range (1-{MAX_REPEATS})")
            return
        self._error("")
        self._run_id += 1
        self.query_one(SpreadChart).sending = True
        self._send_in_worker(count, self._run_id)

    @work(thread=True, exclusive=True, group="spread")
    def _send_in_worker(self, count: int, run_id: int) -> None:
        worker = get_current_worker()

        def progress(spread: Spread) -> bool:
            if worker.is_cancelled:
                return False
            self.app.call_from_thread(self._show, spread, run_id, True)
            return True

        try:
            spread = self._send(count, progress)
        except KubehopError as err:
            self.app.call_from_thread(self._failed, str(err), run_id)
            return
        self.app.call_from_thread(self._show, spread, run_id, False)

    def _show(self, spread: Spread, run_id: int, sending: bool) -> None:
        if run_id != self._run_id:  # a newer count replaced this one
            return
        chart = self.query_one(SpreadChart)
        chart.sending = sending
        chart.spread = spread

    def _failed(self, message: str, run_id: int) -> None:
        if run_id != self._run_id:
            return
        self.query_one(SpreadChart).sending = False
        self._error(message)

    def _error(self, message: str) -> None:
        label = self.query_one("#spread-error", Label)
        label.update(escape(message))
        label.set_class(bool(message), "-shown")
