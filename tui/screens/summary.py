"""The summary at the end of a trace: where NAT happened and was undone, the rules that decided,
the nodes and tunnels crossed, and the outcome; Enter on a line jumps to its hop."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui.hopstyle import literal
from tui.screens.dialog import Dialog

if TYPE_CHECKING:
    from tui.session import TraceSummary


def _on(node: str | None) -> str:
    return f" on {literal(node)}" if node else ""


def summary_rows(summary: TraceSummary) -> list[tuple[int | None, str]]:
    """(hop index from 0 or None, text): the summary's lines, those with a hop to jump to
    first in hop order, as the summary screen lists them."""
    rows: list[tuple[int | None, str]] = []
    for step in summary.nat:
        label = step.effect.label
        rows.append(
            (
                step.hop - 1,
                f"hop {step.hop}: {label}{_on(step.node)}, {literal(step.before)} → "
                f"{literal(step.after)}",
            )
        )
        if step.reversed_at is not None:
            rows.append(
                (
                    step.reversed_at - 1,
                    f"hop {step.reversed_at}: conntrack reverses the {label}"
                    f"{_on(step.reversed_node)}",
                )
            )
        else:
            rows.append((None, f"   the {label} of hop {step.hop} is not reversed in this trace"))
    for rule in summary.rules:
        where = " ".join(literal(p) for p in (rule.node or "", rule.hook or "") if p)
        if rule.chain is None:
            text = (
                f"hop {rule.hop}: {rule.effect.label} {where}, by {literal(rule.line or 'no rule')}"
            )
        else:
            path = f", reached by {' → '.join(literal(p) for p in rule.path)}" if rule.path else ""
            text = (
                f"hop {rule.hop}: {rule.effect.label} decided by {literal(rule.chain)}"
                f" #{rule.index} ({literal(rule.table)}, {where}){path}:\n{literal(rule.line)}"
            )
        rows.append((rule.hop - 1, text))
    for tunnel in summary.tunnels:
        rows.append(
            (
                tunnel.hop - 1,
                f"hop {tunnel.hop}: {tunnel.kind} tunnel by {literal(tunnel.interface)}"
                f"{_on(tunnel.node)} ({tunnel.direction.value})",
            )
        )
    answer = summary.answer
    if answer is not None:
        rows.append(
            (
                answer.hop - 1,
                f"hop {answer.hop}: {answer.what} from {literal(answer.source)}",
            )
        )
        if answer.delivered_at is not None:
            error = f": {literal(answer.error)}" if answer.error else ""
            rows.append(
                (
                    answer.delivered_at - 1,
                    f"hop {answer.delivered_at}: it reaches the client{error}",
                )
            )
        else:
            rows.append((None, "   it never reaches the client's socket"))
    return rows


class SummaryScreen(Dialog[int | None]):
    """What the trace came to; Enter on a line with a hop shows that hop."""

    DEFAULT_CSS = """
    SummaryScreen #summary-head {
        margin: 0 0 1 0;
    }

    SummaryScreen #summary-hops {
        height: auto;
        max-height: 1fr;
        border: none;
        padding: 0;
        background: $panel;
    }

    SummaryScreen #summary-hops:focus {
        border: none;
    }

    SummaryScreen .-none {
        color: $text-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,S", "dismiss", "Close")]

    def __init__(self, summary: TraceSummary, goal: str = "", score: str = "") -> None:
        super().__init__()
        self.summary = summary
        """What the trace came to."""
        self._goal = goal
        self._score = score
        self._hops: list[int | None] = []

    def compose(self) -> ComposeResult:
        summary = self.summary
        head = Text()
        if self._goal:
            head.append("Goal: ", "bold")
            head.append(f"{literal(self._goal)}\n")
        if self._score:
            head.append("Challenge: ", "bold")
            head.append(f"{self._score}\n")
        head.append("Outcome: ", "bold")
        served = (
            f" ({literal(summary.outcome)})" if summary.outcome != summary.verdict.value else ""
        )
        head.append(f"{summary.verdict.value.upper()}{served}\n")
        head.append("Nodes: ", "bold")
        if summary.nodes:
            head.append(" → ".join(literal(n) for n in summary.nodes))
        elif summary.stayed_in is not None:
            head.append(f"none: the packets never left {literal(summary.stayed_in)}")
        else:
            head.append("none")
        if not summary.nat:
            head.append("\nNAT: ", "bold")
            head.append("none, the addresses arrive as they were sent")
        rows = summary_rows(summary)
        self._hops = [hop for hop, _ in rows]
        with Vertical(classes="dialog-body") as body:
            body.border_title = "Summary of the trace"
            body.border_subtitle = "↑↓ Enter shows the hop · Esc closes"
            yield Static(head, id="summary-head")
            options = OptionList(
                *(Option(Text(text), disabled=hop is None) for hop, text in rows),
                id="summary-hops",
            )
            options.display = bool(rows)
            yield options

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        hop = self._hops[event.option_index]
        if hop is not None:
            self.dismiss(hop)
