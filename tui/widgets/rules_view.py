"""The rules pane: a node's iptables-save text, virtualised, with the packet's walk marked.

A node of a cluster at Kubernetes' scale limits has about 100,000 rules, so this
is a Line API widget: it keeps the text as a list of lines and draws only the
rows on screen. Nothing is built per rule up front except one index entry.
"""

from __future__ import annotations

import textwrap
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from model.netfilter import RuleRef
from model.trace import Hop
from tui.hopstyle import literal

_MIN_DIGITS = 2
"""The rule number's column is at least this wide, so the chains line up from node to node."""

_CHAIN_CAP = 28
"""Chain names wider than this push their rule's columns right."""

_DECISIVE_TARGETS = ("-j DNAT", "-j SNAT", "-j MASQUERADE", "-j DROP", "-j REJECT")
"""Targets that decide what happens to the packet; the view scrolls to these first."""


@dataclass(frozen=True)
class RuleIndex:
    """Where each rule of one iptables-save text is, found in one pass over its lines."""

    lines: tuple[str, ...]
    """The text's lines, unchanged."""
    tables: tuple[str, ...]
    """The table each line belongs to (`nat`), "" before the first `*table`."""
    chains: tuple[str, ...]
    """For `-A CHAIN` lines the chain, else ""."""
    numbers: tuple[int, ...]
    """For `-A` lines the 1-based rule number in its chain, else 0."""
    row_of: dict[tuple[str, str, int], int]
    """(table, chain, number) → line number."""
    width: int
    """The widest line as drawn, in characters (without the gutter)."""
    rule_count: int
    """How many `-A` lines there are."""
    chain_width: int
    """The column width for chain names (the longest, capped)."""
    number_width: int = _MIN_DIGITS
    """The column width for rule numbers (the most digits)."""

    @property
    def gutter(self) -> int:
        """Cells before each line: a walk marker, the rule number and a space."""
        return self.number_width + 2

    @property
    def row_width(self) -> int:
        """The widest row as the view draws it (chain, target, then the matches)."""
        return self.gutter + self.width


_INDEXES: OrderedDict[int, tuple[str, RuleIndex]] = OrderedDict()
_INDEXES_KEPT = 4
"""At the scale limits a node has 760,000 lines and its index ~250 MB, so few are kept."""


def cached_index(text: str) -> RuleIndex | None:
    """The index of `text` if it is made already (so showing it is quick)."""
    hit = _INDEXES.get(id(text))
    return hit[1] if hit is not None and hit[0] is text else None


def index_rules(text: str) -> RuleIndex:
    """Index `text` (iptables-save format), once per text object (the session keeps them)."""
    found = cached_index(text)
    if found is None:
        found = _index(text)
        _INDEXES[id(text)] = (text, found)
        while len(_INDEXES) > _INDEXES_KEPT:
            _INDEXES.popitem(last=False)
    _INDEXES.move_to_end(id(text))
    return found


def _index(text: str) -> RuleIndex:
    lines = tuple(text.splitlines())
    tables: list[str] = []
    chains: list[str] = []
    numbers: list[int] = []
    row_of: dict[tuple[str, str, int], int] = {}
    counters: dict[tuple[str, str], int] = {}
    table = ""
    # Widths as drawn: a rule's `-A CHAIN ` becomes a chain column, and its
    # target and matches follow with one more space between them.
    other_width = rest_width = rule_width = 0
    for row, line in enumerate(lines):
        chain = ""
        number = 0
        if line.startswith("-A "):
            end = line.find(" ", 3)
            chain = line[3:] if end < 0 else line[3:end]
            key = (table, chain)
            number = counters.get(key, 0) + 1
            counters[key] = number
            row_of[(table, chain, number)] = row
            rest_width = max(rest_width, len(line) - 4 - len(chain))
            rule_width = max(rule_width, len(line) - 4)
        else:
            if line.startswith("*"):
                table = line[1:].strip()
            other_width = max(other_width, len(line))
        tables.append(table)
        chains.append(chain)
        numbers.append(number)
    chain_width = min(_CHAIN_CAP, max((len(c) for _, c in counters), default=0))
    widest_rule = max(chain_width + rest_width, rule_width) + 2 if row_of else 0
    return RuleIndex(
        lines=lines,
        tables=tuple(tables),
        chains=tuple(chains),
        numbers=tuple(numbers),
        row_of=row_of,
        width=max(other_width, widest_rule),
        rule_count=len(row_of),
        chain_width=chain_width,
        number_width=max(_MIN_DIGITS, len(str(max(counters.values(), default=0)))),
    )


@dataclass(frozen=True)
class WalkMarks:
    """Which rules one hop compared and matched, keyed the way `RuleIndex` is."""

    spans: dict[tuple[str, str], tuple[tuple[int, int], ...]]
    """(table, chain) → the (first, last) rule numbers compared."""
    matched: tuple[RuleRef, ...]
    """Every rule that matched, in walk order."""

    @classmethod
    def of(cls, hop: Hop) -> WalkMarks:
        """The marks of `hop` (empty for a hop that walked no table)."""
        spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
        matched: list[RuleRef] = []
        for walk in hop.tables:
            for span in walk.spans:
                spans.setdefault((walk.table.value, span.chain), []).append((span.first, span.last))
            matched.extend(walk.matched)
        return cls({key: tuple(value) for key, value in spans.items()}, tuple(matched))

    def walked(self, table: str, chain: str, number: int) -> bool:
        """The packet was compared with this rule."""
        return any(first <= number <= last for first, last in self.spans.get((table, chain), ()))

    @property
    def decisive(self) -> RuleRef | None:
        """The rule that decided the packet's fate: the last rewrite or drop, else last match."""
        for rule in reversed(self.matched):
            if any(target in rule.line for target in _DECISIVE_TARGETS):
                return rule
        return self.matched[-1] if self.matched else None


class RulesView(ScrollView, can_focus=True):
    """One node's kube-proxy rules in iptables-save order, the current hop's walk marked."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "-table",
        "-decl",
        "-commit",
        "-number",
        "-chain",
        "-walked",
        "-matched",
        "-target",
        "-message",
    }

    DEFAULT_CSS = """
    RulesView {
        height: 1fr;
        background: $surface;
        scrollbar-size-vertical: 1;
        /* A cut line ends in "…" instead: the rule's target comes first, and
           the full rule is in the Packet pane's Decision. */
        scrollbar-size-horizontal: 0;
    }

    RulesView > .-message {
        color: $text-muted;
        text-style: italic;
    }

    RulesView > .-table {
        text-style: bold;
        color: $accent;
    }

    RulesView > .-decl {
        color: $dim-text;
    }

    RulesView > .-commit {
        color: $faint-text;
    }

    RulesView > .-number {
        color: $dim-text;
    }

    RulesView > .-walked {
        background: $rule-walked;
    }

    RulesView > .-matched {
        background: $rule-matched;
        text-style: bold;
    }

    RulesView > .-chain {
        color: $dim-text;
    }

    RulesView > .-target {
        color: $rule-target;
    }
    """

    # Keys that act on the rules are the screen's, so they are declared once.
    BINDINGS: ClassVar[list[BindingType]] = []

    node: reactive[str | None] = reactive(None, layout=False)
    """The node whose rules are shown."""
    filter_text: reactive[str] = reactive("")
    """Only lines containing this (case-insensitive) are shown; "" shows all."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._index: RuleIndex = index_rules("")
        self._marks: WalkMarks | None = None
        self._rows: list[int] | None = None
        self._matched_rows: frozenset[int] = frozenset()
        self._cache: LRUCache[tuple[int, int, int], Strip] = LRUCache(512)
        self.focus_row: int | None = None
        """The line number of the decisive matched rule, scrolled into view."""
        self.placeholder = ""
        """Shown while there is no text (`Rendering node-a's rules…`), wrapped to the width."""

    @property
    def index(self) -> RuleIndex:
        """The index of the text shown."""
        return self._index

    @property
    def marks(self) -> WalkMarks | None:
        """The walk marked, None when the packet is not on this node's rules."""
        return self._marks

    @property
    def matched_rows(self) -> frozenset[int]:
        """Line numbers of the matched rules (styled `-matched`)."""
        return self._matched_rows

    @property
    def visible_rows(self) -> int:
        """How many lines the filter lets through."""
        return len(self._index.lines) if self._rows is None else len(self._rows)

    def show(self, node: str | None, text: str, hop: Hop | None, *, placeholder: str = "") -> None:
        """Show `text` (the rules of `node`) with `hop`'s walk marked, if it walked any."""
        self.placeholder = placeholder
        index = index_rules(text)
        text_changed = index is not self._index
        self._index = index
        self.node = node
        marks = WalkMarks.of(hop) if hop is not None and hop.tables else None
        self._marks = marks
        self._matched_rows = frozenset(
            row
            for rule in (marks.matched if marks else ())
            if (row := index.row_of.get((rule.table.value, rule.chain, rule.index))) is not None
        )
        decisive = marks.decisive if marks else None
        self.focus_row = (
            index.row_of.get((decisive.table.value, decisive.chain, decisive.index))
            if decisive
            else None
        )
        if text_changed:
            self._apply_filter()
        self._cache.clear()
        self._update_size()
        self.refresh()
        self.call_after_refresh(self.scroll_to_focus)

    def scroll_to_focus(self) -> None:
        """Scroll so the decisive matched rule sits a third of the way down."""
        if self.focus_row is None:
            return
        position = self._position_of(self.focus_row)
        if position is not None:
            self.scroll_to(
                y=max(0, position - self.scrollable_content_region.height // 3),
                animate=False,
                immediate=True,
            )

    def _position_of(self, row: int) -> int | None:
        if self._rows is None:
            return row
        # Filtered rows are in order, so bisect finds the row's position.
        position = bisect_left(self._rows, row)
        return position if position < len(self._rows) and self._rows[position] == row else None

    def watch_filter_text(self) -> None:
        self._apply_filter()
        self._cache.clear()
        self._update_size()
        self.scroll_to(y=0, animate=False)
        self.scroll_to_focus()
        self.refresh()

    def _apply_filter(self) -> None:
        needle = self.filter_text.strip().lower()
        if not needle:
            self._rows = None
            return
        self._rows = [row for row, line in enumerate(self._index.lines) if needle in line.lower()]

    def _update_size(self) -> None:
        self.virtual_size = Size(self._index.row_width, self.visible_rows)

    @property
    def message(self) -> str:
        """What the view says instead of rules: the placeholder, or that the filter matched none."""
        if self.visible_rows:
            return ""
        if self.filter_text.strip() and self._index.lines:
            return (
                f"No line of {self.node or 'these rules'} contains "
                f"“{self.filter_text.strip()}”. Esc clears the filter."
            )
        return self.placeholder

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        position = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if position >= self.visible_rows:
            lines = textwrap.wrap(literal(self.message), max(10, width - 4)) if y < 10 else []
            if y < len(lines):
                style = base + self.get_component_rich_style("-message")
                return Strip([Segment(f"  {lines[y]}", style)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        row = position if self._rows is None else self._rows[position]
        key = (row, scroll_x, width)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        strip, length = self._render_row(row, base)
        if length > scroll_x + width and width > 1:
            # Cut: say so where the eye stops, as a terminal pager does.
            segments = list(strip.crop(scroll_x, scroll_x + width - 1))
            ellipsis = Segment("…", segments[-1].style if segments else base)
            strip = Strip([*segments, ellipsis], width)
        else:
            strip = strip.crop_extend(scroll_x, scroll_x + width, None)
        self._cache[key] = strip
        return strip

    def _render_row(self, row: int, base: Style) -> tuple[Strip, int]:
        """The row drawn, and its length before padding to the pane's edge."""
        index = self._index
        line = literal(index.lines[row])
        number = index.numbers[row]

        def style(name: str) -> Style:
            return self.get_component_rich_style(name, partial=True)

        line_style = base
        marker = " "
        if number:
            table, chain = index.tables[row], index.chains[row]
            # Marked lines take the full (blended) style, so the bar's
            # translucent colour is mixed over the pane's background.
            if row in self._matched_rows:
                line_style = base + self.get_component_rich_style("-matched")
                marker = "▶"
            elif self._marks is not None and self._marks.walked(table, chain, number):
                line_style = base + self.get_component_rich_style("-walked")
                marker = "│"
            gutter = Segment(
                f"{marker}{number:>{index.number_width}} ", line_style + style("-number")
            )
            # Columns: chain, target, then the matches, so the target (the part
            # that says what happens) stays in view however long the matches are.
            rest = line[4 + len(chain) :]
            cut = rest.find("-j ") if rest.startswith("-j ") else rest.find(" -j ")
            if cut < 0:
                cut = rest.find(" -g ")
            target, matches = (rest[cut:].strip(), rest[:cut]) if cut >= 0 else ("", rest)
            segments = [
                gutter,
                Segment(f"{chain:<{index.chain_width}} ", line_style + style("-chain")),
                Segment(target, line_style + style("-target")),
                Segment(f"  {matches}" if matches else "", line_style),
            ]
        else:
            if line.startswith("*"):
                line_style = base + style("-table")
            elif line.startswith(":"):
                line_style = base + style("-decl")
            elif line.startswith(("COMMIT", "#")):
                line_style = base + style("-commit")
            segments = [Segment(" " * index.gutter, line_style), Segment(line, line_style)]
        strip = Strip(segments)
        # A marked line is styled to the pane's edge, so the highlight reads as a bar.
        length = strip.cell_length
        width = max(self.virtual_size.width, self.size.width)
        return strip.extend_cell_length(width, line_style), length
