"""The explanation bar: the current hop in one plain sentence, and a note where needed."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from model.trace import Hop, Trace
from tui.hopstyle import Badge, Wording, literal, reword


class Explanation(Widget):
    """What happened at this hop and why; where kubehop or the article simplifies, a note."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"-badge", "-goal", "-note", "-verdict"}

    DEFAULT_CSS = """
    Explanation {
        height: auto;
        padding: 0 1;
    }

    Explanation > .-badge {
        text-style: bold;
        color: $here;
    }

    Explanation > .-note {
        text-style: bold italic;
        color: $warning;
    }

    Explanation > .-goal {
        text-style: bold;
        color: $accent;
    }

    Explanation > .-verdict {
        text-style: bold;
        color: $success;
    }
    """

    hop: reactive[Hop | None] = reactive(None, layout=True)
    """The hop explained."""
    badge: reactive[Badge | None] = reactive(None, layout=True)
    """What the hop did (DNAT, MASQ, ENCAP…), as the screen was told; set before `hop`."""
    trace: reactive[Trace | None] = reactive(None, layout=True)
    """The trace the hop belongs to (for the verdict on its last hop)."""
    waiting: reactive[str] = reactive("", layout=True)
    """What the screen is busy with (a trace on a big cluster), shown instead; "" when idle."""
    hint: reactive[str] = reactive(
        "Press p to pick a source and destination, or 1–4 for the article's scenarios.",
        layout=True,
    )
    """What to do, shown while there is no hop."""
    aside: reactive[str] = reactive("", layout=True)
    """The app's own note on this hop (a scenario's chosen endpoint), after the hop's."""
    wording: reactive[Wording] = reactive((), layout=True)
    """Phrases of `sim`'s text said in the app's words (a scenario's chosen endpoint)."""
    goal: reactive[str] = reactive("", layout=True)
    """What the scenario on show should teach, said at its first hop; "" otherwise."""

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True, default=Style())

    def render(self) -> Text:
        if self.waiting:
            return Text(f"⏳ {literal(self.waiting)}")
        hop = self.hop
        if hop is None:
            return Text(literal(self.hint))
        text = Text()
        if self.goal:
            text.append("Goal: ", self._style("-goal"))
            text.append(f"{literal(self.goal)}\n")
        if self.badge is not None:
            text.append(f"{self.badge.text().rstrip()}  ", self._style("-badge"))
        text.append(literal(reword(hop.sentence, self.wording)))
        trace = self.trace
        if trace is not None and hop.seq == len(trace.hops) - 1:
            if trace.reason == hop.sentence:  # a drop or reject: the sentence said why
                text.append(f"\n⏹ {trace.verdict.value}", self._style("-verdict"))
            else:
                text.append(f"\n⏹ {trace.verdict.value}: ", self._style("-verdict"))
                text.append(literal(reword(trace.reason, self.wording)))
        if hop.note:
            text.append("\nNote: ", self._style("-note"))
            text.append(literal(reword(hop.note, self.wording)))
        if self.aside:
            text.append("\nNote: ", self._style("-note"))
            text.append(literal(self.aside))
        return text
