"""The title line: the palette's icon, the screen's title and subtitle, as Textual's `Header`."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.app import RenderResult
from textual.content import Content
from textual.widget import Widget

PALETTE_TOOLTIP = "Open the command palette"
"""What hovering the icon says (Textual's `Header` says the same)."""


class TitleBar(Widget):
    """The screen's title and subtitle centred on one line, an icon on the left, as Textual's
    `Header` (without its clock) shows them.

    One widget drawing one line, not Textual's `Header`: that is four widgets (the
    icon, the title, the clock's space and their container), each styled and laid
    out on the first frame of every start-up. It acts as the `Header` does: a click
    on the icon opens the command palette, anywhere else makes it three lines tall
    (and one again). On a screen narrower than `narrow_below` the icon's cell and the
    clock's space shrink, so the title line has its width for the title.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"-icon-hover"}

    DEFAULT_CSS = """
    TitleBar {
        dock: top;
        width: 100%;
        height: 1;
        background: $panel;
        color: $foreground;
    }

    TitleBar.-tall {
        height: 3;
    }

    TitleBar > .-icon-hover {
        background: $foreground 10%;
    }
    """

    WIDE = (8, 10)
    """The icon's cell and the clock's space, in columns (the `Header`'s)."""

    NARROW = (3, 2)
    """The same below `narrow_below` columns (the clock's space is 1 wide and padded 1 each
    side in kubehop's stylesheet, which Textual draws as 2 wide)."""

    def __init__(self, icon: str, *, narrow_below: int = 0, id: str | None = None) -> None:
        super().__init__(id=id)
        self.icon = icon
        """The character on the left; a click on its cell opens the command palette."""
        self.narrow_below = narrow_below
        """Below this many columns the icon's cell and the clock's space are narrow."""
        self._over_icon = False

    def on_mount(self) -> None:
        for node in (self.app, self.screen):
            self.watch(node, "title", self._retitle, init=False)
            self.watch(node, "sub_title", self._retitle, init=False)

    def _retitle(self) -> None:
        self.refresh()

    def _widths(self) -> tuple[int, int]:
        return self.NARROW if self.size.width < self.narrow_below else self.WIDE

    def render(self) -> RenderResult:
        screen, app = self.screen, self.app
        title = screen.title if screen.title is not None else app.title
        sub_title = screen.sub_title if screen.sub_title is not None else app.sub_title
        icon_width, clock_width = self._widths()
        # The icon as the `Header`'s icon cell draws it: one column of padding each side.
        icon = Content(self.icon).truncate(max(0, icon_width - 2)).pad(1, 0)
        icon = icon.truncate(icon_width, pad=True)
        if self._over_icon:
            icon = icon.stylize(self.get_visual_style("-icon-hover"))
        room = max(0, self.size.width - icon_width - clock_width)
        text = app.format_title(title, sub_title).center(room, ellipsis=True)
        line = Content.assemble(icon, text, " " * clock_width)
        return Content("\n").join(["", line, ""]) if self.has_class("-tall") else line

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._hover(event.x < self._widths()[0])

    def on_leave(self) -> None:
        self._hover(False)

    def _hover(self, over_icon: bool) -> None:
        if over_icon != self._over_icon:
            self._over_icon = over_icon
            self.tooltip = PALETTE_TOOLTIP if over_icon else None
            self.refresh()

    async def on_click(self, event: events.Click) -> None:
        event.stop()
        if event.x < self._widths()[0]:
            await self.run_action("app.command_palette")
        else:
            self.toggle_class("-tall")
