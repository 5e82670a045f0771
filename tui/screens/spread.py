"""Send N requests: where they went, as a bar chart."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.markup import escape
from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Input, Label

from model.errors import KubehopError
from tui.hopstyle import literal
from tui.session import Spread

_BAR_CELLS = 40
"""The longest bar, in cells."""


class SpreadChart(Widget):
    """One bar per endpoint: how many of the N requests it served."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"-bar", "-count"}

    spread: reactive[Spread | None] = reactive(None, layout=True)
    """The requests counted."""

    def render(self) -> Text:
        spread = self.spread
        if spread is None:
            return Text("Type a number of requests and press Enter.")
        total = sum(n for _, n in spread.counts)
        widest = max((n for _, n in spread.counts), default=1)
        name_width = max((len(literal(name)) for name, _ in spread.counts), default=0)
        text = Text()
        text.append(
            f"{total} requests from {literal(spread.request.describe())}, seed {spread.seed}\n\n"
        )
        bar_style = self.get_component_rich_style("-bar", partial=True, default=Style())
        count_style = self.get_component_rich_style("-count", partial=True, default=Style())
        for name, count in spread.counts:
            cells = max(1, round(_BAR_CELLS * count / widest))
            text.append(f"{literal(name):<{name_width}} ")
            text.append("█" * cells, bar_style)
            text.append(f" {count} ({100 * count / total:.0f}%)\n", count_style)
        return text


class SpreadScreen(ModalScreen[None]):
    """Send N requests from fresh source ports and see how they spread over endpoints."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close")]

    def __init__(self, send: Callable[[int], Spread], count: int = 100) -> None:
        super().__init__()
        self._send = send
        self._count = count

    def compose(self) -> ComposeResult:
        with Vertical(id="spread-body") as body:
            body.border_title = "Send N requests"
            body.border_subtitle = "Enter sends · Esc closes"
            with Horizontal(id="spread-row"):
                yield Label("Requests", id="spread-label")
                yield Input(str(self._count), id="spread-count", type="integer", compact=True)
            yield Label("", id="spread-error")
            yield SpreadChart(id="spread-chart")

    def on_mount(self) -> None:
        self._run(self._count)

    @on(Input.Submitted, "#spread-count")
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            count = int(event.value)
        except ValueError:
            self._error("Type a whole number of requests, 1–100000.")
            return
        self._run(count)

    def _run(self, count: int) -> None:
        try:
            spread = self._send(count)
        except KubehopError as err:
            self._error(str(err))
            return
        self._error("")
        self.query_one(SpreadChart).spread = spread

    def _error(self, message: str) -> None:
        label = self.query_one("#spread-error", Label)
        label.update(escape(message))
        label.set_class(bool(message), "-shown")
