"""The packet log: one line per hop reached so far, the current one highlighted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from model.trace import Direction, Hop, Trace
from tui.hopstyle import Badge, Effect, literal


def hop_summary(hop: Hop) -> str:
    """Where and what, for one line: `node-a PREROUTING  -j DNAT --to-destination …`."""
    what = hop.detail or hop.sentence
    return f"{hop.where}  {what}"


class PacketLog(OptionList):
    """The hops of the trace up to the furthest reached; choosing one shows that moment."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {f"-{effect.value}" for effect in Effect} | {
        "-time",
        "-later",
    }

    DEFAULT_CSS = """
    PacketLog {
        background: $surface;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }

    PacketLog > .-time { color: $dim-text; }
    PacketLog > .-later { color: $faint-text; }
    PacketLog > .-dnat { color: $hop-dnat; text-style: bold; }
    PacketLog > .-snat { color: $hop-snat; text-style: bold; }
    PacketLog > .-unnat { color: $hop-unnat; text-style: bold; }
    PacketLog > .-bridge { color: $hop-bridge; }
    PacketLog > .-route { color: $hop-route; }
    PacketLog > .-hook { color: $hop-hook; }
    PacketLog > .-drop { color: $hop-drop; text-style: bold; }
    PacketLog > .-deliver { color: $hop-deliver; text-style: bold; }
    PacketLog > .-plain { color: $hop-plain; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        # The log lists the hops reached so far; Home and End go to the trace's
        # first and last hop, as they do anywhere else on the screen.
        Binding("home", "screen.start", "Start", show=False),
        Binding("end", "screen.end", "End", show=False),
    ]

    @dataclass
    class HopChosen(Message):
        """The user highlighted a line of the log."""

        index: int
        """The hop's position in the trace."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._trace: Trace | None = None
        self._badges: tuple[Badge, ...] = ()
        self._current = 0
        self._shown = 0

    @property
    def current(self) -> int:
        """The position of the hop shown as current."""
        return self._current

    def show(self, trace: Trace, current: int, furthest: int, badges: tuple[Badge, ...]) -> None:
        """Show hops 0..`furthest` of `trace`, hop `current` highlighted, each with its badge."""
        if trace is not self._trace or furthest < self._shown - 1:
            self._trace = trace
            self._badges = badges
            self.clear_options()
            self._shown = 0
        previous = self._current
        self._current = current
        if furthest + 1 > self._shown:
            self.add_options(
                Option(self._line_for(trace.hops[i]), id=f"hop-{i}")
                for i in range(self._shown, furthest + 1)
            )
            self._shown = furthest + 1
        for i in {previous, current}:
            if i < self._shown:
                self.replace_option_prompt_at_index(i, self._line_for(trace.hops[i]))
        if self.highlighted != current:
            # Moved by the screen, not the user: no HopChosen. Otherwise, when
            # steps come quickly, the message of an earlier step arrives after a
            # later one and sends the screen back to the earlier hop.
            with self.prevent(OptionList.OptionHighlighted):
                self.highlighted = current

    def on_resize(self) -> None:
        # The explanation below grows and shrinks with each hop: the current
        # line must stay in view when the log gets shorter.
        self.call_after_refresh(self.scroll_to_highlight)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        # Prompts carry Rich styles looked up from the .tcss; a theme change
        # gives new styles, so the prompts are drawn again.
        if self._trace is not None and self.is_mounted:
            for i in range(self._shown):
                self.replace_option_prompt_at_index(i, self._line_for(self._trace.hops[i]))

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True, default=Style())

    def _line_for(self, hop: Hop) -> Text:
        mark = self._badges[hop.seq]
        arrow = "←" if hop.direction is Direction.REPLY else "→"
        cursor = "▶" if hop.seq == self._current else " "
        later = hop.seq > self._current
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append(f"{cursor}{hop.t_us:>6}µs ", self._style("-time"))
        text.append(f"{arrow} ")
        text.append(mark.text(), self._style(f"-{mark.effect.value}"))
        text.append(" ")
        text.append(literal(hop_summary(hop)))
        if later:
            text.stylize(self._style("-later"))
        return text

    @on(OptionList.OptionHighlighted)
    def _chosen(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option_index != self._current:
            self.post_message(self.HopChosen(event.option_index))

    @on(OptionList.OptionSelected)
    def _option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
