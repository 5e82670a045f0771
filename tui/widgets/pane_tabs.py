"""The pane tabs of a narrow terminal: which pane is on show, and a click to show another.

One widget drawing two lines (the labels, and a bar under the active one), not
Textual's `Tabs`: that is nine widgets, restyled and laid out on the first frame
of every start-up, and it reports every change of the active tab as if the user
had clicked, so a screen that sets the tab itself hears back from it later.
Here only a click posts a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from tui.hopstyle import literal


class PaneTabs(Widget):
    """One label per pane, the active one highlighted and underlined."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"-label", "-active", "-bar", "-bar-active"}

    DEFAULT_CSS = """
    PaneTabs {
        height: 2;
        width: 1fr;
    }

    PaneTabs > .-label {
        color: $foreground 50%;
    }

    PaneTabs > .-active {
        color: $foreground;
    }

    PaneTabs:ansi > .-label {
        text-style: dim;
    }

    PaneTabs:ansi > .-active {
        text-style: bold;
    }

    PaneTabs > .-bar {
        color: $foreground 10%;
    }

    PaneTabs > .-bar-active {
        color: $block-cursor-background;
    }
    """

    active: reactive[str] = reactive("")
    """The id of the pane on show."""

    @dataclass
    class Chosen(Message):
        """The user clicked a pane's tab."""

        pane: str
        """The pane's id."""

    def __init__(self, labels: dict[str, str], *, active: str, id: str | None = None) -> None:
        super().__init__(id=id)
        self._labels = dict(labels)
        self.set_reactive(PaneTabs.active, active)

    @property
    def labels(self) -> dict[str, str]:
        """Pane id → label, in order."""
        return dict(self._labels)

    def set_label(self, pane: str, label: str) -> None:
        """Relabel one pane's tab (`Rules: node-b`)."""
        if self._labels.get(pane) != label:
            self._labels[pane] = label
            self.refresh()

    def _spans(self) -> list[tuple[str, int, int]]:
        """(pane, first cell, cell after the last) of each tab, a space either side of its label."""
        spans, x = [], 0
        for pane, label in self._labels.items():
            width = cell_len(literal(label)) + 2
            spans.append((pane, x, x + width))
            x += width
        return spans

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style

        def style(name: str) -> Style:
            return base + self.get_component_rich_style(name)

        segments: list[Segment] = []
        for pane, start, end in self._spans():
            name = "-active" if pane == self.active else "-label"
            if y == 0:
                segments.append(Segment(f" {literal(self._labels[pane])} ", style(name)))
            else:
                bar = "-bar-active" if pane == self.active else "-bar"
                segments.append(Segment("━" * (end - start), style(bar)))
        if y:
            used = sum(end - start for _, start, end in self._spans())
            segments.append(Segment("━" * max(0, width - used), style("-bar")))
        return Strip(segments).crop_extend(0, width, base)

    def on_click(self, event: events.Click) -> None:
        for pane, start, end in self._spans():
            if start <= event.x < end:
                event.stop()
                if pane != self.active:
                    self.post_message(self.Chosen(pane))
                return
