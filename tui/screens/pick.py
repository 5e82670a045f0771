"""The pick dialog: a source and a destination, completed from the cluster, or a preset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from model.errors import KubehopError
from model.trace import Trace
from tui.hopstyle import literal
from tui.screens.dialog import Dialog
from tui.session import Request, Session, presets

_MATCHES = 6
"""Completions listed under the fields."""


@dataclass(frozen=True)
class PickResult:
    """What the dialog hands back: the request, and its trace when already made."""

    request: Request
    """The request as typed."""
    trace: Trace | None
    """Its trace; None on a big cluster, where the screen traces it in the background."""


class PickScreen(Dialog[PickResult | None]):
    """Choose what to trace; a bad name is reported under the fields, and the dialog stays."""

    DEFAULT_CSS = """
    #pick-fields {
        grid-size: 2;
        grid-columns: 14 1fr;
        grid-rows: 1;
        grid-gutter: 0 1;
        height: auto;
        margin: 1 0 0 0;
    }

    #pick-fields Label {
        color: $text-muted;
    }

    #pick-error {
        display: none;
        color: $error;
        text-style: bold;
        width: 1fr;
    }

    #pick-error.-shown {
        display: block;
    }

    #pick-matches {
        height: auto;
        max-height: 8;
        border: round $pane-border;
        border-title-color: $text-muted;
        margin: 1 0 0 0;
    }

    #pick-presets {
        height: auto;
        border: none;
    }

    .pick-heading {
        margin: 1 0 0 0;
        color: $text-muted;
        text-style: bold;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Cancel"),
        Binding("ctrl+s", "submit", "Trace"),
    ]

    def __init__(self, session: Session, current: Request | None = None) -> None:
        super().__init__()
        self._session = session
        self._current = current
        self._sources, self._destinations = session.completions()
        self._field = "pick-source"

    def compose(self) -> ComposeResult:
        current = self._current
        with Vertical(id="pick-body", classes="dialog-body") as body:
            body.border_title = "Trace a request"
            body.border_subtitle = "Enter traces · Esc cancels"
            with Grid(id="pick-fields"):
                yield Label("Source")
                yield Input(
                    current.source if current else "",
                    placeholder="pod, ns/pod, client or IP",
                    suggester=SuggestFromList(self._sources, case_sensitive=False),
                    id="pick-source",
                    compact=True,
                )
                yield Label("Container")
                yield Input(
                    (current.container or "") if current else "",
                    placeholder="-c, for a pod with several",
                    id="pick-container",
                    compact=True,
                )
                yield Label("Destination")
                yield Input(
                    current.destination if current else "",
                    placeholder="svc:port, IP:port, localhost:port, nodeIP:nodePort",
                    suggester=SuggestFromList(self._destinations, case_sensitive=False),
                    id="pick-destination",
                    compact=True,
                )
                yield Label("Seed")
                yield Input(
                    str(current.seed) if current and current.seed is not None else "",
                    placeholder="random, then shown",
                    type="integer",
                    id="pick-seed",
                    compact=True,
                )
                yield Label("Pin endpoint")
                yield Input(
                    (current.pick or "") if current else "",
                    placeholder="IP:PORT instead of the random choice",
                    id="pick-pin",
                    compact=True,
                )
            yield Label("", id="pick-error")
            yield OptionList(id="pick-matches")
            yield Label("Scenarios from the article", classes="pick-heading")
            yield OptionList(
                *(
                    Option(Text(f"{p.key}  {literal(p.title)}"), id=f"preset-{p.key}")
                    for p in presets()
                ),
                id="pick-presets",
            )

    def on_mount(self) -> None:
        self._update_matches("pick-source", self.query_one("#pick-source", Input).value)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        if event.input.id in ("pick-source", "pick-destination"):
            self._update_matches(event.input.id, event.value)

    def on_descendant_focus(self) -> None:
        focused = self.focused
        if isinstance(focused, Input) and focused.id in ("pick-source", "pick-destination"):
            self._update_matches(focused.id, focused.value)

    def _update_matches(self, field: str, value: str) -> None:
        self._field = field
        pool = self._sources if field == "pick-source" else self._destinations
        needle = value.strip().lower()
        found = [c for c in pool if needle in c.lower()][:_MATCHES]
        matches = self.query_one("#pick-matches", OptionList)
        matches.set_options(Option(Text(literal(c)), id=None) for c in found)
        matches.border_title = "sources" if field == "pick-source" else "destinations"

    @on(OptionList.OptionSelected, "#pick-matches")
    def _match_chosen(self, event: OptionList.OptionSelected) -> None:
        field = self.query_one(f"#{self._field}", Input)
        field.value = str(event.option.prompt)
        field.focus()

    @on(OptionList.OptionSelected, "#pick-presets")
    def _preset_chosen(self, event: OptionList.OptionSelected) -> None:
        key = (event.option.id or "").removeprefix("preset-")
        for preset in presets():
            if preset.key == key:
                self._trace(preset.request)

    @on(Input.Submitted)
    def action_submit(self) -> None:
        """Trace what the fields say."""
        value = {i.id: i.value.strip() for i in self.query(Input)}
        seed_text = value["pick-seed"]
        request = Request(
            # Enter takes the greyed-out completion, as the field shows it.
            source=_completed(value["pick-source"], self._sources),
            destination=_completed(value["pick-destination"], self._destinations),
            container=value["pick-container"] or None,
            seed=int(seed_text) if seed_text.lstrip("-").isdigit() else None,
            pick=value["pick-pin"] or None,
        )
        if not request.source or not request.destination:
            self._error("Give a source and a destination.")
            return
        self._trace(request)

    def _trace(self, request: Request) -> None:
        try:
            if self._session.big:
                # Rendering a big node's rules takes seconds: check the names
                # here, and let the screen trace in a worker.
                self._session.check(request)
                self.dismiss(PickResult(request, None))
                return
            trace = self._session.trace(request)
        except KubehopError as err:
            self._error(str(err))
            return
        self.dismiss(PickResult(request, trace))

    def _error(self, message: str) -> None:
        label = self.query_one("#pick-error", Label)
        label.update(escape(message))
        label.set_class(bool(message), "-shown")


def _completed(value: str, pool: tuple[str, ...] | list[str]) -> str:
    """`value`, or the completion its field suggests (the first name it begins, any case)."""
    if not value:
        return value
    folded = value.casefold()
    if any(name.casefold() == folded for name in pool):
        return value
    return next((name for name in pool if name.casefold().startswith(folded)), value)
