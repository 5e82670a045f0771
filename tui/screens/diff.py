"""The rules diff: what a cluster edit changed in each node's kube-proxy rules, and what that means."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from typing import ClassVar

from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import RichLog, Static

from tui.hopstyle import literal
from tui.screens.dialog import Dialog
from tui.session import Edit

_COMMENT = re.compile(r'--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))')
_DNAT = re.compile(r"-j DNAT --to-destination (\S+)")
_NO_ENDPOINTS = " has no endpoints"

Diffs = tuple[tuple[str, tuple[str, ...]], ...]
"""Per node, the unified diff of its rules (as `Edit.diffs`)."""


def _comment(rule: str) -> str:
    found = _COMMENT.search(rule)
    return "" if found is None else (found.group(1) or found.group(2) or "")


def _rules(lines: Iterable[str], sign: str) -> list[str]:
    """The rules (`-A` lines) a diff adds (`sign` "+") or removes ("-")."""
    return [line[1:] for line in lines if line.startswith(f"{sign}-A ")]


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def consequences(diffs: Diffs) -> list[str]:
    """What the changed rules mean for the Services, one line each, then how many rules changed.

    `default/web has no endpoints now: REJECT rules added (clients are refused)`,
    `default/svc-b:http: endpoint 192.168.2.2:8080 replaced by 192.168.2.4:8080`,
    `each node: 4 rules added, 20 removed`.
    """
    added = [rule for _, lines in diffs for rule in _rules(lines, "+")]
    removed = [rule for _, lines in diffs for rule in _rules(lines, "-")]

    def rejecting(rules: list[str]) -> dict[str, None]:
        return {
            _comment(r).removesuffix(_NO_ENDPOINTS): None
            for r in rules
            if "-j REJECT" in r and _comment(r).endswith(_NO_ENDPOINTS)
        }

    def endpoints(rules: list[str]) -> dict[str, dict[str, None]]:
        found: dict[str, dict[str, None]] = {}
        for rule in rules:
            dnat = _DNAT.search(rule)
            if dnat is not None:
                found.setdefault(_comment(rule) or "a Service", {})[dnat.group(1)] = None
        return found

    now_rejected, was_rejected = rejecting(added), rejecting(removed)
    lines: list[str] = []
    emptied = [service for service in now_rejected if service not in was_rejected]
    if emptied:
        lines.append(
            f"{_names(emptied)} {'has' if len(emptied) == 1 else 'have'} no endpoints now: "
            f"REJECT rules added (clients are refused)"
        )
    refilled = [service for service in was_rejected if service not in now_rejected]
    if refilled:
        lines.append(
            f"{_names(refilled)} {'has' if len(refilled) == 1 else 'have'} endpoints again: "
            "the REJECT rules removed"
        )
    new, gone = endpoints(added), endpoints(removed)
    changes: dict[str, list[str]] = {}
    for service in dict.fromkeys([*gone, *new]):
        if service in now_rejected:
            continue  # said already: it has none now
        before = [e for e in gone.get(service, {}) if e not in new.get(service, {})]
        after = [e for e in new.get(service, {}) if e not in gone.get(service, {})]
        if len(before) == len(after) == 1:
            change = f"endpoint {before[0]} replaced by {after[0]}"
        else:
            change = ", ".join(
                [*(f"endpoint {e} gone" for e in before), *(f"new endpoint {e}" for e in after)]
            )
        if change:
            changes.setdefault(change, []).append(service)
    lines.extend(f"{_names(services)}: {change}" for change, services in changes.items())
    by_count: dict[tuple[int, int], list[str]] = {}
    for node, diff in diffs:
        by_count.setdefault((len(_rules(diff, "+")), len(_rules(diff, "-"))), []).append(node)
    for (plus, minus), nodes in by_count.items():
        where = "each node" if len(by_count) == 1 and len(nodes) > 1 else _names(nodes)
        lines.append(f"{where}: {_plural(plus, 'rule')} added, {minus:,} removed")
    return lines


def _names(names: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


class DiffLine:
    """One line of a unified diff, wrapped so its continuations cannot pass for diff lines.

    A wrapped `-A …` rule continues with `--comment …`, which reads as a removed
    line; here the sign has a column of its own, and each continuation starts
    under the text with `↪`.
    """

    def __init__(self, sign: str, text: str, style: Style) -> None:
        self.sign = sign
        """`+`, `-`, or " " for a line that is neither."""
        self.text = text
        """The line without its sign."""
        self.style = style
        """The line's style (added, removed, …)."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(12, options.max_width)
        wrapper = textwrap.TextWrapper(
            width=width - 2,
            subsequent_indent="↪ ",
            break_on_hyphens=False,
            drop_whitespace=True,
        )
        for n, chunk in enumerate(wrapper.wrap(self.text) or [""]):
            prefix = f"{self.sign} " if n == 0 else "  "
            yield Text(prefix + chunk, self.style, no_wrap=True, end="\n")


class DiffLog(RichLog):
    """Unified-diff lines, added and removed rules coloured, wrapped rules marked."""

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
                # `@@ -85,2 +84,0 @@`: where in the rules, which a reader needs only as a break.
                after = line.split(" ")[2] if line.count(" ") >= 2 else ""
                where = after.lstrip("+").split(",")[0]
                self.write(Text(f"⋯ at line {where}", self._style("-hunk")))
            elif line.startswith("+"):
                self.write(DiffLine("+", literal(line[1:]), self._style("-added")))
            elif line.startswith("-"):
                self.write(DiffLine("-", literal(line[1:]), self._style("-removed")))
            else:
                self.write(DiffLine(" ", literal(line[1:]), Style()))

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True, default=Style())


class RulesDiffScreen(Dialog[None]):
    """After an edit: its summary, what it means for the Services, and every node's rules diff."""

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
        summary = Text(literal(self._edit.summary))
        for line in consequences(self._edit.diffs):
            summary.append(f"\n• {literal(line)}")
        with Vertical(id="diff-body", classes="dialog-body") as body:
            body.border_title = "Rules changed"
            body.border_subtitle = "Esc closes"
            yield Static(summary, id="diff-summary")
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
        ).border_title = (
            f"Rules changed · {_plural(len(self._edit.diffs), 'node')} · {changed} lines"
        )
        for node, lines in self._edit.diffs:
            log.write_diff(node, lines)
        log.focus()
