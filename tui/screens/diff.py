"""The rules diff: what a cluster edit changed in each node's kube-proxy rules."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import RichLog, Static

from tui.hopstyle import literal
from tui.screens.dialog import Dialog
from tui.session import Edit


class DiffLog(RichLog):
    """Unified-diff lines, added and removed rules coloured."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"-added", "-removed", "-hunk", "-file"}

    DEFAULT_CSS = """
    DiffLog > .-added { color: $success; }
    DiffLog > .-removed { color: $error; }
    DiffLog > .-hunk { color: $dim-text; }
    DiffLog > .-file { color: $accent; text-style: bold; }
    """

    def write_diff(self, node: str, lines: tuple[str, ...]) -> None:
        """Write `node`'s diff."""
        self.write(Text(f"── {literal(node)} ──", self._style("-file")))
        for line in lines:
            if line.startswith(("---", "+++")):
                continue
            if line.startswith("@@"):
                name = "-hunk"
            elif line.startswith("+"):
                name = "-added"
            elif line.startswith("-"):
                name = "-removed"
            else:
                name = ""
            self.write(Text(literal(line), self._style(name) if name else Style()))

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True, default=Style())


class RulesDiffScreen(Dialog[None]):
    """After an edit: its summary and the difference in every node's rules."""

    DEFAULT_CSS = """
    #diff-body {
        height: 90%;
        max-width: 160;
    }

    #diff-summary {
        margin: 1 0;
    }

    #diff-log {
        height: 1fr;
        background: $surface;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,enter", "dismiss", "Close")]

    def __init__(self, edit: Edit) -> None:
        super().__init__()
        self._edit = edit

    def compose(self) -> ComposeResult:
        with Vertical(id="diff-body", classes="dialog-body") as body:
            body.border_title = "Rules changed"
            body.border_subtitle = "Esc closes"
            yield Static(Text(literal(self._edit.summary)), id="diff-summary")
            # From the top, wrapped: a changed rule differs at its end (the
            # --probability of the endpoints after a scale), which a cut line hides.
            yield DiffLog(
                id="diff-log",
                wrap=True,
                highlight=False,
                markup=False,
                auto_scroll=False,
                min_width=20,  # RichLog's default (78) wraps wider than an 80-column dialog
            )

    def on_mount(self) -> None:
        log = self.query_one(DiffLog)
        if not self._edit.diffs:
            log.write(Text("No node's rules changed."))
        changed = sum(
            1
            for _, lines in self._edit.diffs
            for line in lines
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        )
        self.query_one(
            "#diff-body"
        ).border_title = f"Rules changed · {len(self._edit.diffs)} nodes · {changed} lines"
        for node, lines in self._edit.diffs:
            log.write_diff(node, lines)
        log.focus()
