"""The frame the dialogs share: a bordered body, centred over the dimmed trace screen."""

from __future__ import annotations

from typing import TypeVar

from textual.screen import ModalScreen

ResultT = TypeVar("ResultT")
"""What the dialog hands back when dismissed."""


class Dialog(ModalScreen[ResultT]):
    """A modal screen whose body is its child of class `dialog-body`."""

    DEFAULT_CSS = """
    Dialog {
        align: center middle;
        background: $background 60%;
    }

    /* Textual's ModalScreen leaves the trace screen undimmed on an ANSI theme;
       kubehop's dialogs dim it on every theme. */
    Dialog:ansi {
        background: $background 60%;
    }

    Dialog > .dialog-body {
        width: 90%;
        max-width: 110;
        height: auto;
        max-height: 95%;
        border: round $accent;
        border-title-color: $text;
        background: $panel;
        padding: 0 1;
    }
    """
