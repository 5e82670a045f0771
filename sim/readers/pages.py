"""A node's listing (what `kubehop rules` prints of it) as rows made when read.

At Kubernetes' scale limits a node's listing has about 760,000 lines and
rendering it whole takes seconds, while a view shows a screenful. Each
kube-proxy mode can give its big listings as `Pages`: the number of rows, and
any row with where it is (keyed as `model.pages` says), made when asked.

`ListingPages` puts several commands' pages one after another, each under its
`# COMMAND` line, exactly as `sim.cluster.rules.listing_text` joins their texts.
`TextPages` gives a text already rendered (a small part of a listing) as pages.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from model.pages import Pages, Row, RowKeyer

__all__ = ["ListingPages", "Pages", "Row", "TextPages", "index_rows", "locate", "pages_text"]


def locate(firsts: Sequence[int], length: int, r: int) -> tuple[int, int]:
    """Which of the parts starting at rows `firsts` holds row `r` of `length`, and where in it;
    IndexError for a row past either end."""
    if not 0 <= r < length:
        raise IndexError(r)
    at = bisect_right(firsts, r) - 1
    return at, r - firsts[at]


def index_rows(lines: Sequence[str]) -> list[Row]:
    """Each of `lines` with where it is (`model.pages`)."""
    keyer = RowKeyer()
    return [(line, *keyer.key(line)) for line in lines]


class TextPages:
    """A rendered text as pages (a listing's small parts: kubelet's iptables-save)."""

    def __init__(self, text: str) -> None:
        self._rows = index_rows(text.splitlines())
        self._found = {(t, c, k): r for r, (_, t, c, k) in enumerate(self._rows) if k}
        self._lines = {line: r for r, (line, t, _, _) in enumerate(self._rows) if not t}
        self.rule_count = len(self._found)
        self.most_rules = max((k for _, _, _, k in self._rows), default=0)
        self.chain_width = max(
            (len(c) for _, t, c, k in self._rows if k and " " not in t), default=0
        )

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, r: int) -> Row:
        """Row `r`."""
        if not 0 <= r < len(self._rows):
            raise IndexError(r)
        return self._rows[r]

    def find(self, table: str, chain: str, number: int) -> int | None:
        """The row of rule `number` of `chain` in `table`."""
        return self._found.get((table, chain, number))

    def find_line(self, line: str) -> int | None:
        """The row of a line outside every table."""
        return self._lines.get(line)


class ListingPages:
    """Several commands' pages, each under its `# COMMAND` line and a blank line between
    (a lone command's pages as they are), as `listing_text` joins their texts."""

    def __init__(self, parts: Sequence[tuple[str, Pages]]) -> None:
        self._parts = tuple(parts)
        self._headed = len(parts) > 1
        self._firsts: list[int] = []
        first = 0
        for _, pages in self._parts:
            self._firsts.append(first)
            # An empty output still prints its line (`listing_text` strips, then ends it).
            first += max(len(pages), 1) + 2 if self._headed else len(pages)
        # The blank line after the last part is not there: the text ends with its last row.
        self._len = first - (1 if self._headed and self._parts else 0)
        self.rule_count = sum(pages.rule_count for _, pages in self._parts)
        self.most_rules = max((pages.most_rules for _, pages in self._parts), default=0)
        self.chain_width = max((pages.chain_width for _, pages in self._parts), default=0)

    def __len__(self) -> int:
        return self._len

    def row(self, r: int) -> Row:
        """Row `r`."""
        at, offset = locate(self._firsts, self._len, r)
        command, pages = self._parts[at]
        if not self._headed:
            return pages.row(offset)
        if offset == 0:
            return f"# {command}", "", "", 0
        if offset > len(pages):
            return "", "", "", 0  # an empty output's line, or the blank line after a part
        return pages.row(offset - 1)

    def find(self, table: str, chain: str, number: int) -> int | None:
        """The row of rule `number` of `chain` in `table`, in whichever part holds it."""
        for first, (_, pages) in zip(self._firsts, self._parts, strict=True):
            found = pages.find(table, chain, number)
            if found is not None:
                return first + found + (1 if self._headed else 0)
        return None

    def find_line(self, line: str) -> int | None:
        """The row of an `ipvsadm-save -n` line, in whichever part holds it."""
        for first, (_, pages) in zip(self._firsts, self._parts, strict=True):
            found = pages.find_line(line)
            if found is not None:
                return first + found + (1 if self._headed else 0)
        return None

    def text(self) -> str:
        """Every row joined: the listing's whole text."""
        return pages_text(self)


def pages_text(pages: Pages) -> str:
    """Every row of `pages` joined: the listing's whole text (for checks: it makes them all)."""
    return "".join(f"{pages.row(r)[0]}\n" for r in range(len(pages)))
