"""The title line acts as Textual's `Header` did: the icon opens the palette, a click makes it tall."""

from __future__ import annotations

from textual.command import CommandPalette

from tests.app.support import make_app, scenario
from tui.widgets.title_bar import PALETTE_TOOLTIP, TitleBar


async def test_the_icon_says_it_opens_the_palette_and_does() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        bar = app.screen.query_one(TitleBar)
        await pilot.hover(TitleBar, offset=(1, 0))
        await pilot.pause()
        assert bar.tooltip == PALETTE_TOOLTIP
        await pilot.hover(TitleBar, offset=(20, 0))
        await pilot.pause()
        assert bar.tooltip is None
        await pilot.click(TitleBar, offset=(1, 0))
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)


async def test_a_click_on_the_title_makes_the_line_tall_and_short_again() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        bar = app.screen.query_one(TitleBar)
        title = str(app.screen.title)
        await pilot.click(TitleBar, offset=(20, 0))
        await pilot.pause()
        assert bar.size.height == 3
        # The title on the middle line, as the `Header` draws it tall.
        assert title[:20] in bar.render_line(1).text
        assert bar.render_line(0).text.strip() == ""
        await pilot.click(TitleBar, offset=(20, 1))
        await pilot.pause()
        assert bar.size.height == 1
