"""The help screen: every key, from the bindings as they are declared, and the colour legend."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.hopstyle import LEGEND
from tui.screens.dialog import Dialog


def _key_name(binding: Binding) -> str:
    names = {
        "question_mark": "?",
        "slash": "/",
        "plus": "+",
        "minus": "−",
        "greater_than_sign": ">",
        "less_than_sign": "<",
        "right_square_bracket": "]",
        "left_square_bracket": "[",
        "space": "space",
    }
    return " ".join(names.get(k, k) for k in binding.key.split(","))


class HelpScreen(Dialog[None]):
    """Keys and what the colours and symbols mean."""

    DEFAULT_CSS = """
    .help-heading {
        margin: 1 0 0 0;
        color: $text-muted;
        text-style: bold;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, bindings: Iterable[BindingType]) -> None:
        super().__init__()
        self._keys = [b for b in bindings if isinstance(b, Binding)]

    def compose(self) -> ComposeResult:
        keys = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column()
        # One row a key: space's Play and Pause are "Play / Pause".
        described: dict[str, list[str]] = {}
        for binding in self._keys:
            described.setdefault(_key_name(binding), []).append(binding.description)
        for key, descriptions in described.items():
            keys.add_row(key, " / ".join(descriptions))
        keys.add_row("ctrl+p", "Command palette: every action, themes")
        keys.add_row("q", "Quit")
        legend = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        legend.add_column(no_wrap=True)
        legend.add_column()
        for badge, meaning in LEGEND:
            legend.add_row(Text(badge.text(), style="bold"), meaning)
        with VerticalScroll(id="help-body", classes="dialog-body") as body:
            body.border_title = "Keys"
            body.border_subtitle = "Esc closes"
            yield Static(keys, id="help-keys")
            yield Static(
                Text("Symbols in the log and the path map", style="bold"), classes="help-heading"
            )
            yield Static(legend, id="help-legend")
            yield Static(
                Text(
                    "Learning: ] and [ jump to the next and previous decision (a NAT, a route, a "
                    "bridge, a drop); S sums the trace up (it opens by itself when you step onto "
                    "the last hop), Enter on a line shows its hop. c turns on challenge mode: "
                    "before each decision hop you predict it (1–4, or ↑↓ and Enter; Esc skips), "
                    "and the title keeps the score. y shows and copies the command that reopens "
                    "this hop (kubehop trace … --open --step K)."
                ),
                classes="help-heading",
            )
            yield Static(
                Text(
                    "In the cluster pane, put the cursor on a pod: d deletes it, + and − scale "
                    "its ReplicaSet; the rules that change are shown. On a narrow terminal the "
                    "panes are tabs: v cycles them."
                ),
                classes="help-heading",
            )
