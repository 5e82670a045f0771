"""The footer: Textual's, rebuilt only when the keys it shows change."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

_Shown = tuple[tuple[str, str, bool, str], ...]
"""(key, description, enabled, tooltip) of each key the footer shows."""


class KeyFooter(Footer):
    """The keys of the focused widget and its screen, as Textual's `Footer` shows them.

    Textual's footer rebuilds all its keys, restyling each, whenever a binding
    might have changed: on start-up that is four times (the screen resumes, the
    first widget takes focus, and each again after the refresh) for the same
    keys. Here a change that leaves the shown keys as they were rebuilds nothing,
    and the changes of one frame share one rebuild.
    """

    def __init__(self, *, id: str | None = None, compact: bool = False) -> None:
        super().__init__(id=id, compact=compact)
        self._rebuild_queued = False
        self._shown: _Shown | None = None

    def _keys_shown(self) -> _Shown:
        return tuple(
            (binding.key, binding.description, enabled, tooltip)
            for _, binding, enabled, tooltip in self.screen.active_bindings.values()
            if binding.show
        )

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            # A key made compact after it is mounted is styled twice; made
            # compact before, once.
            widget.set_class(self.compact, "-compact", update=False)
            yield widget

    def bindings_changed(self, screen: Screen[object]) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        if not self._rebuild_queued:
            self._rebuild_queued = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_queued = False
        shown = self._keys_shown()
        if shown != self._shown:
            self._shown = shown
            await self.recompose()
