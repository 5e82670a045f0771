"""The rules pane: what a node's commands print of its rules, virtualised, the packet's walk marked.

In iptables mode that is `iptables-save`; in nftables mode `nft list table ip
kube-proxy` first, then kubelet's and the CNI's `iptables-save`, each under a
`# COMMAND` line. Both are indexed: an iptables rule is numbered in its chain as
`iptables -L --line-numbers` counts, an nft rule as `nft list` lists it (a base
chain's `type … hook …` line and a `comment` line are not rules), so a hop's
walk (`TableWalk.spans`, `matched`) finds its rows either way.

A node of a cluster at Kubernetes' scale limits has about 100,000 rules, so this
is a Line API widget: it keeps the text as a list of lines and draws only the
rows on screen. Nothing is built per rule up front except one index entry.
"""

from __future__ import annotations

import re
import textwrap
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, cast, overload

from rich.segment import Segment
from rich.style import Style
from textual.binding import BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from model.netfilter import RuleRef
from model.pages import Pages, Row, RowKeyer
from model.trace import Hop
from tui.hopstyle import literal

_MIN_DIGITS = 2
"""The rule number's column is at least this wide, so the chains line up from node to node."""

_CHAIN_CAP = 28
"""Chain names wider than this push their rule's columns right."""

_TAB = 2
"""Cells an nft listing's tab is drawn as (nft indents with tabs: 16 cells to a rule at 8)."""

_DECISIVE_TARGETS = ("-j DNAT", "-j SNAT", "-j MASQUERADE", "-j DROP", "-j REJECT")
"""iptables targets that decide what happens to the packet; the view scrolls to these first."""

_NFT_DECISIVE = re.compile(r"(?:^|\s)(?:dnat|snat|masquerade|drop|reject)(?:\s|$)")
"""The same statements in nft's spelling (`jump mark-for-masquerade` is not one)."""

_NFT_STATEMENT = re.compile(
    r"(?:^|\s)(?=(?:jump|goto|return|accept|drop|reject|dnat|snat|masquerade|redirect|vmap"
    r"|counter|log|notrack|queue|limit|update|add|meta mark set|ct mark set|mark set)(?:\s|$))"
)
"""Where an nft rule's statements begin: what it does, after what it matches."""

_IPVS_DETAIL = "ipvs: "
"""How a hop's detail starts where IPVS decided, its servers in ipvsadm-save's words after."""

_NFT_COMMENT = re.compile(r'\scomment "[^"]*"$')
"""A rule's trailing comment."""


def is_nft(table: str) -> bool:
    """Whether `table`, as the index keys it, is an nft table (`ip kube-proxy`), not iptables'."""
    return " " in table


class _Gutter:
    """The cells a view draws before each line and the widest row, from an index's widths."""

    number_width: int
    width: int

    @property
    def gutter(self) -> int:
        """Cells before each line: a walk marker, the rule number and a space."""
        return self.number_width + 2

    @property
    def row_width(self) -> int:
        """The widest row as the view draws it (chain, target, then the matches)."""
        return self.gutter + self.width


@dataclass(frozen=True)
class RuleIndex(_Gutter):
    """Where each rule of a node's listings is, found in one pass over their lines."""

    lines: tuple[str, ...]
    """The text's lines, unchanged."""
    tables: tuple[str, ...]
    """The table each line belongs to: iptables' (`nat`) or an nft table's label
    (`ip kube-proxy`, with its family); "" outside every table."""
    chains: tuple[str, ...]
    """For `-A CHAIN` lines the chain; for the lines of an nft chain (its `chain NAME {`
    line, its header lines and its rules) the chain; else ""."""
    numbers: tuple[int, ...]
    """For rules the 1-based rule number in its chain, else 0."""
    row_of: dict[tuple[str, str, int], int]
    """(table, chain, number) → line number."""
    width: int
    """The widest line as drawn, in characters (without the gutter)."""
    rule_count: int
    """How many rules there are (iptables `-A` lines and nft rules)."""
    chain_width: int
    """The column width for iptables chain names (the longest, capped)."""
    number_width: int = _MIN_DIGITS
    """The column width for rule numbers (the most digits)."""
    heads: dict[tuple[str, str], int] | None = None
    """(nft table, chain) → the line number of its `chain NAME {` line."""
    nft_rows: tuple[tuple[int, int], ...] = ()
    """The (first, after last) line numbers of each nft table."""
    ipvs_rows: dict[str, int] | None = None
    """An `ipvsadm-save -n` line (`-A -t 10.96.0.10:53 -s rr`, `-a -t … -r …`) → its line number."""

    def rule_row(self, table: str, chain: str, number: int) -> int | None:
        """The line of rule `number` of `chain` in `table`, None if there is none."""
        return self.row_of.get((table, chain, number))

    def ipvs_row(self, line: str) -> int | None:
        """The line of an `ipvsadm-save -n` line, None if there is none."""
        return self.ipvs_rows.get(line) if self.ipvs_rows is not None else None


class LineIndex(Protocol):
    """What the view reads of a listing's lines: a `RuleIndex`, or a `PagedIndex` whose
    lines are made as they are read."""

    @property
    def lines(self) -> Sequence[str]: ...
    @property
    def tables(self) -> Sequence[str]: ...
    @property
    def chains(self) -> Sequence[str]: ...
    @property
    def numbers(self) -> Sequence[int]: ...
    @property
    def width(self) -> int: ...
    @property
    def rule_count(self) -> int: ...
    @property
    def chain_width(self) -> int: ...
    @property
    def number_width(self) -> int: ...
    @property
    def heads(self) -> Mapping[tuple[str, str], int] | None: ...
    @property
    def nft_rows(self) -> Sequence[tuple[int, int]]: ...
    def rule_row(self, table: str, chain: str, number: int) -> int | None:
        """The line of rule `number` of `chain` in `table`, None if there is none."""
        ...

    def ipvs_row(self, line: str) -> int | None:
        """The line of an `ipvsadm-save -n` line, None if there is none."""
        ...

    @property
    def gutter(self) -> int: ...
    @property
    def row_width(self) -> int: ...


class _Column(Sequence[object]):
    """One column (line, table, chain or rule number) of a `PagedIndex`'s rows."""

    def __init__(self, index: PagedIndex, column: int) -> None:
        self._index = index
        self._column = column

    def __len__(self) -> int:
        return len(self._index.pages)

    @overload
    def __getitem__(self, i: int) -> object: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[object]: ...
    def __getitem__(self, i: int | slice) -> object | Sequence[object]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._index.row(i if i >= 0 else i + len(self))[self._column]


_ROWS_KEPT = 4096
"""Rows a `PagedIndex` keeps spelled (a screen redraws the same few dozen)."""


class PagedIndex(_Gutter):
    """A big node's listing (`Pages`) indexed as `RuleIndex` indexes a text, without
    spelling it: each row is spelled when the view reads it (filtering needs the whole
    text: the rules pane renders it first)."""

    heads: Mapping[tuple[str, str], int] | None = None
    nft_rows: Sequence[tuple[int, int]] = ()

    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        """The rows."""
        self._rows: OrderedDict[int, Row] = OrderedDict()
        self.lines = cast("Sequence[str]", _Column(self, 0))
        self.tables = cast("Sequence[str]", _Column(self, 1))
        self.chains = cast("Sequence[str]", _Column(self, 2))
        self.numbers = cast("Sequence[int]", _Column(self, 3))
        self.rule_count = pages.rule_count
        self.chain_width = min(_CHAIN_CAP, pages.chain_width)
        self.number_width = max(_MIN_DIGITS, len(str(pages.most_rules)))
        self.width = 0
        """The widest row read so far, as drawn (it grows as rows are read)."""

    def rule_row(self, table: str, chain: str, number: int) -> int | None:
        """The row of rule `number` of `chain` in `table`, found from where each chain starts."""
        return self.pages.find(table, chain, number)

    def ipvs_row(self, line: str) -> int | None:
        """The row of an `ipvsadm-save -n` line."""
        return self.pages.find_line(line)

    def row(self, r: int) -> Row:
        """Row `r`: (line, table, chain, rule number)."""
        found = self._rows.get(r)
        if found is None:
            found = self.pages.row(r)
            line, table, chain, number = found
            if number and not is_nft(table):
                rest = len(line) - 4 - len(chain)
                drawn = max(self.chain_width + rest, len(line) - 4) + 2
            else:
                drawn = len(line.expandtabs(_TAB)) if "\t" in line else len(line)
            self.width = max(self.width, drawn)
            self._rows[r] = found
            if len(self._rows) > _ROWS_KEPT:
                self._rows.popitem(last=False)
        return found


_PAGED: OrderedDict[int, tuple[Pages, PagedIndex]] = OrderedDict()


def index_pages(pages: Pages) -> PagedIndex:
    """The index of `pages`, made once per pages object (a few are kept)."""
    hit = _PAGED.get(id(pages))
    if hit is None or hit[0] is not pages:
        hit = (pages, PagedIndex(pages))
        _PAGED[id(pages)] = hit
        while len(_PAGED) > _INDEXES_KEPT:
            _PAGED.popitem(last=False)
    _PAGED.move_to_end(id(pages))
    return hit[1]


_INDEXES: OrderedDict[int, tuple[str, RuleIndex]] = OrderedDict()
_INDEXES_KEPT = 4
"""At the scale limits a node has 760,000 lines and its index ~250 MB, so few are kept."""


def cached_index(text: str) -> RuleIndex | None:
    """The index of `text` if it is made already (so showing it is quick)."""
    hit = _INDEXES.get(id(text))
    return hit[1] if hit is not None and hit[0] is text else None


def index_rules(text: str) -> RuleIndex:
    """Index `text` (iptables-save, nft list output, or both under `# COMMAND` lines), once
    per text object (the session keeps them)."""
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
    heads: dict[tuple[str, str], int] = {}
    nft_rows: list[tuple[int, int]] = []
    ipvs_rows: dict[str, int] = {}
    keyer = RowKeyer()
    nft_start = 0
    # Widths as drawn: a rule's `-A CHAIN ` becomes a chain column, and its
    # target and matches follow with one more space between them.
    other_width = rest_width = rule_width = 0
    for row, line in enumerate(lines):
        table, chain, number = keyer.key(line)
        event = keyer.event
        if number:
            row_of[(table, chain, number)] = row
        if event == "table":
            nft_start = row
        elif event == "end":
            nft_rows.append((nft_start, row + 1))
        elif event == "chain":
            heads[(table, chain)] = row
        elif not table and line.startswith(("-A -", "-a -")):
            # ipvsadm-save's virtual (-A) and real (-a) servers: outside every iptables
            # table, as IPVS mode's listing puts them; a hop names them in its detail.
            ipvs_rows[line] = row
        if number and not is_nft(table):
            rest_width = max(rest_width, len(line) - 4 - len(chain))
            rule_width = max(rule_width, len(line) - 4)
        else:
            drawn = len(line.expandtabs(_TAB)) if "\t" in line else len(line)
            other_width = max(other_width, drawn)
        tables.append(table)
        chains.append(chain)
        numbers.append(number)
    if keyer.in_nft:
        nft_rows.append((nft_start, len(lines)))  # a listing cut short: indexed as far as it goes
    counts = keyer.counts
    iptables_chains = [c for t, c in counts if not is_nft(t)]
    chain_width = min(_CHAIN_CAP, max((len(c) for c in iptables_chains), default=0))
    widest_rule = max(chain_width + rest_width, rule_width) + 2 if iptables_chains else 0
    return RuleIndex(
        lines=lines,
        tables=tuple(tables),
        chains=tuple(chains),
        numbers=tuple(numbers),
        row_of=row_of,
        width=max(other_width, widest_rule),
        rule_count=len(row_of),
        chain_width=chain_width,
        number_width=max(_MIN_DIGITS, len(str(max(counts.values(), default=0)))),
        heads=heads,
        nft_rows=tuple(nft_rows),
        ipvs_rows=ipvs_rows,
    )


def filter_rows(index: LineIndex, needle: str) -> list[int]:
    """The lines of `index` that contain `needle` (lower case), in order.

    An nft rule does not name its chain, so it is also found by its chain's name,
    and its `chain NAME {` line comes with it: a rule is never shown without the
    chain it is in. (An iptables rule starts with `-A CHAIN`.)
    """
    lines = index.lines
    rows: list[int] = []
    start = 0
    for first, end in (*index.nft_rows, (len(lines), len(lines))):
        rows += [row for row in range(start, first) if needle in lines[row].lower()]
        start = end
        heads = index.heads or {}
        added = -1
        for row in range(first, end):
            chain = index.chains[row]
            if not (needle in lines[row].lower() or (chain and needle in chain.lower())):
                continue
            head = heads.get((index.tables[row], chain), -1) if chain else -1
            if 0 <= head < row and head != added:
                rows.append(head)
            added = head
            rows.append(row)
    return rows


@dataclass(frozen=True)
class WalkMarks:
    """Which rules one hop compared and matched, keyed the way `RuleIndex` is."""

    spans: dict[tuple[str, str], tuple[tuple[int, int], ...]]
    """(table, chain) → the (first, last) rule numbers compared."""
    matched: tuple[tuple[str, RuleRef], ...]
    """Every rule that matched, in walk order, with its table as the index keys it
    (iptables' `nat`, or the nft table's label `ip kube-proxy`)."""
    ipvs: tuple[str, ...] = ()
    """The virtual server and real server IPVS chose at this hop, as `ipvsadm-save -n`
    prints them (IPVS mode); they decided the packet's fate, not a rule."""

    @classmethod
    def of(cls, hop: Hop) -> WalkMarks:
        """The marks of `hop` (empty for a hop that walked no table and met no IPVS)."""
        spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
        matched: list[tuple[str, RuleRef]] = []
        for walk in hop.tables:
            # An nft base chain's walk names the nft table's chains and rules; the
            # table it plays (nat, filter) is only its part in the hook.
            table = walk.nft or walk.table.value
            for span in walk.spans:
                spans.setdefault((table, span.chain), []).append((span.first, span.last))
            matched.extend((table, rule) for rule in walk.matched)
        # IPVS's choice is the hop's decision in kernel terms: `ipvs: -A …; -a …`.
        ipvs = hop.detail.removeprefix(_IPVS_DETAIL) if hop.detail.startswith(_IPVS_DETAIL) else ""
        return cls(
            {key: tuple(value) for key, value in spans.items()},
            tuple(matched),
            tuple(ipvs.split("; ")) if ipvs else (),
        )

    def walked(self, table: str, chain: str, number: int) -> bool:
        """The packet was compared with this rule."""
        return any(first <= number <= last for first, last in self.spans.get((table, chain), ()))

    @property
    def decisive(self) -> tuple[str, RuleRef] | None:
        """The rule that decided the packet's fate: the last rewrite or drop, else last match."""
        for table, rule in reversed(self.matched):
            if decides(table, rule.line):
                return table, rule
        return self.matched[-1] if self.matched else None


def decides(table: str, line: str) -> bool:
    """Whether the rule `line` of `table` rewrites or stops the packet (DNAT, masquerade, drop…)."""
    if is_nft(table):
        return bool(_NFT_DECISIVE.search(_NFT_COMMENT.sub("", line)))
    return any(target in line for target in _DECISIVE_TARGETS)


def nft_parts(rule: str) -> tuple[str, str, str]:
    """An nft rule as (what it matches, what it does, its comment): `ip saddr 10.0.0.1 `,
    `jump mark-for-masquerade`, ``."""
    comment = _NFT_COMMENT.search(rule)
    cut = comment.start() if comment else len(rule)
    body, tail = rule[:cut], rule[cut:]
    statement = _NFT_STATEMENT.search(body)
    at = statement.end() if statement else len(body)
    return body[:at], body[at:], tail


class RulesView(ScrollView, can_focus=True):
    """One node's rules as its commands print them, the current hop's walk marked."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "-table",
        "-decl",
        "-commit",
        "-number",
        "-chain",
        "-head",
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

    RulesView > .-head {
        text-style: bold;
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
        self._index: LineIndex = index_rules("")
        self._marks: WalkMarks | None = None
        self._rows: list[int] | None = None
        self._matched_rows: frozenset[int] = frozenset()
        self._cache: LRUCache[tuple[int, int, int], Strip] = LRUCache(512)
        self.focus_row: int | None = None
        """The line number of the decisive matched rule, scrolled into view."""
        self.placeholder = ""
        """Shown while there is no text (`Rendering node-a's rules…`), wrapped to the width."""

    @property
    def index(self) -> LineIndex:
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

    def show(
        self,
        node: str | None,
        text: str | Pages,
        hop: Hop | None,
        *,
        placeholder: str = "",
    ) -> None:
        """Show `text` (the rules of `node`, whole or as pages spelled when read) with `hop`'s
        walk marked, if it walked any."""
        self.placeholder = placeholder
        index = index_rules(text) if isinstance(text, str) else index_pages(text)
        text_changed = index is not self._index
        self._index = index
        self.node = node
        marks = WalkMarks.of(hop) if hop is not None else None
        if marks is not None and not (marks.matched or marks.spans or marks.ipvs):
            marks = None
        self._marks = marks
        ipvs_rows = [
            row
            for line in (marks.ipvs if marks else ())
            if (row := index.ipvs_row(line)) is not None
        ]
        self._matched_rows = frozenset(
            row
            for table, rule in (marks.matched if marks else ())
            if (row := index.rule_row(table, rule.chain, rule.index)) is not None
        ) | frozenset(ipvs_rows)
        decisive = marks.decisive if marks else None
        # Where IPVS chose a real server, that line decided: the rules only let it by.
        self.focus_row = (
            ipvs_rows[-1]
            if ipvs_rows
            else index.rule_row(decisive[0], decisive[1].chain, decisive[1].index)
            if decisive
            else None
        )
        if text_changed:
            self._apply_filter()
        if isinstance(index, PagedIndex):
            # Pages are measured as they are read: read the rows about to be drawn first,
            # so the pane is laid out once, at their width.
            height = max(self.scrollable_content_region.height, 1)
            first = (
                max(0, self.focus_row - height // 3)
                if self.focus_row is not None
                else int(self.scroll_offset.y)
            )
            for row in range(first, min(first + height, len(index.pages))):
                index.row(row)
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
        if not needle or isinstance(self._index, PagedIndex):
            # Pages are searched once the whole text is rendered (the rules pane does it).
            self._rows = None
            return
        self._rows = filter_rows(self._index, needle)

    def _widen(self) -> None:
        self._cache.clear()
        self._update_size()
        self.refresh()

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
        if self._index.row_width > self.virtual_size.width:
            # A row wider than any read before (pages are measured as they are read).
            self.call_after_refresh(self._widen)
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
        raw = index.lines[row]
        # nft indents with tabs; drawn as two cells each, the nesting shows and a
        # rule keeps the width for its statement.
        line = literal(raw.expandtabs(_TAB) if "\t" in raw else raw)
        number = index.numbers[row]
        table = index.tables[row]

        def style(name: str) -> Style:
            return self.get_component_rich_style(name, partial=True)

        line_style = base
        marker = " "
        if number:
            chain = index.chains[row]
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
            if is_nft(table):
                # nft's own order (what it matches, then what it does), as `nft list`
                # prints it: the chain is the `chain NAME {` line above.
                body = line.lstrip(" ")
                matches, statement, comment = nft_parts(body)
                segments = [
                    gutter,
                    Segment(line[: len(line) - len(body)], line_style),
                    Segment(matches, line_style),
                    Segment(statement, line_style + style("-target")),
                    Segment(comment, line_style + style("-chain")),
                ]
            else:
                segments = [gutter, *self._iptables_columns(line, chain, line_style)]
        elif row in self._matched_rows:
            # An ipvsadm-save line IPVS chose: marked as a matched rule, with no number
            # (IPVS keeps no rule order).
            line_style = base + self.get_component_rich_style("-matched")
            blank = " " * (index.gutter - 2)
            segments = [
                Segment(f"▶{blank} ", line_style + style("-number")),
                Segment(line, line_style + style("-target")),
            ]
        else:
            stripped = line.strip()
            if line.startswith("*") or (
                line.startswith("# ") and (row == 0 or not index.lines[row - 1].strip())
            ):
                # A table, or the command whose output follows (`# iptables-save`).
                line_style = base + style("-table")
            elif is_nft(table) and stripped.startswith(("table ", "chain ")):
                line_style = base + style("-table" if stripped.startswith("table") else "-head")
            elif line.startswith(":") or (is_nft(table) and stripped):
                line_style = base + style("-decl")
            elif line.startswith(("COMMIT", "#")):
                line_style = base + style("-commit")
            segments = [Segment(" " * index.gutter, line_style), Segment(line, line_style)]
        strip = Strip(segments)
        # A marked line is styled to the pane's edge, so the highlight reads as a bar.
        length = strip.cell_length
        width = max(self.virtual_size.width, self.size.width)
        return strip.extend_cell_length(width, line_style), length

    def _iptables_columns(self, line: str, chain: str, line_style: Style) -> list[Segment]:
        """An `-A CHAIN …` rule in columns: chain, target, then the matches, so the target
        (the part that says what happens) stays in view however long the matches are."""
        index = self._index
        rest = line[4 + len(chain) :]
        cut = rest.find("-j ") if rest.startswith("-j ") else rest.find(" -j ")
        if cut < 0:
            cut = rest.find(" -g ")
        target, matches = (rest[cut:].strip(), rest[:cut]) if cut >= 0 else ("", rest)
        return [
            Segment(
                f"{chain:<{index.chain_width}} ",
                line_style + self.get_component_rich_style("-chain", partial=True),
            ),
            Segment(target, line_style + self.get_component_rich_style("-target", partial=True)),
            Segment(f"  {matches}" if matches else "", line_style),
        ]
