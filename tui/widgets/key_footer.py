"""The footer: the keys that act now, in one line, the command palette's on the right."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

from tui.hopstyle import literal


class KeyFooter(Widget):
    """The focused widget's and the screen's keys, as Textual's compact `Footer` shows them.

    One widget drawing one line, not Textual's `Footer`: that is a scrolling
    container of a widget per key, all restyled and laid out on the first frame
    of every start-up, and rebuilt whenever a binding might have changed. Keys
    that do not fit are left out from the last (`?` lists them all), where
    Textual's footer runs them under the palette key. A click on a key presses it.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"-key", "-description", "-disabled", "-separator"}

    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
    }

    KeyFooter > .-key {
        color: $footer-key-foreground;
        background: $footer-key-background;
        text-style: bold;
    }

    KeyFooter > .-description {
        color: $footer-description-foreground;
        background: $footer-description-background;
    }

    KeyFooter > .-disabled {
        text-style: dim;
    }

    KeyFooter > .-separator {
        color: $foreground 20%;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._keys: list[tuple[int, int, str]] = []
        # (first cell, cell after the last, key) of each key drawn, for clicks.

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        self.refresh()

    def shown(self) -> list[tuple[str, Binding, bool]]:
        """The keys to show, in the screen's order: (key, binding, enabled), one per action."""
        keys: dict[str, tuple[str, Binding, bool]] = {}
        palette = self.app.COMMAND_PALETTE_BINDING
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if binding.show and key != palette and binding.action not in keys:
                keys[binding.action] = (key, binding, active.enabled)
        return list(keys.values())

    def _palette(self) -> Binding | None:
        if not self.app.ENABLE_COMMAND_PALETTE:
            return None
        active = self.screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
        return active.binding if active is not None else None

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style

        def style(name: str) -> Style:
            return base + self.get_component_rich_style(name, partial=True)

        def key_segments(key: str, binding: Binding, enabled: bool) -> list[Segment]:
            dim = Style() if enabled else style("-disabled")
            shown = literal(self.app.get_key_display(replace(binding, key=key)))
            return [
                Segment(shown, style("-key") + dim),
                Segment(f" {literal(binding.description)}", style("-description") + dim),
            ]

        right: list[Segment] = []
        palette = self._palette()
        if palette is not None:
            key = self.app.COMMAND_PALETTE_BINDING
            right = [Segment("▏", style("-separator")), *key_segments(key, palette, True)]
        room = width - Strip(right).cell_length
        left: list[Segment] = []
        self._keys = []
        x = 0
        for key, binding, enabled in self.shown():
            segments = key_segments(key, binding, enabled)
            length = sum(cell_len(s.text) for s in segments)
            if x + length > room:
                break  # the rest are left out too, so the order stays the screen's
            # The space after the last key may be the palette's separator's.
            left += [*segments, Segment(" ", base)]
            self._keys.append((x, x + length, key))
            x += length + 1
        if palette is not None:
            self._keys.append((room + 1, width, self.app.COMMAND_PALETTE_BINDING))
        line = Strip(left).crop_extend(0, room, base)
        return Strip([*line, *right]).crop_extend(0, width, base)

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._keys:
            if start <= event.x < end:
                event.stop()
                self.app.simulate_key(key)
                return
