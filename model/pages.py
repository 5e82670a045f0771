"""A listing's rows: the contract between what renders a node's rules (`sim.readers.pages`,
each kube-proxy mode's `paged` module) and what draws them (the rules view), which imports no
`sim`.

A row is (line, table, chain, number), keyed line by line by `RowKeyer`:

- an iptables rule (`-A CHAIN …`): its table (`nat`), chain, and its 1-based
  number in the chain; the other lines of a table, from `*nat` to `COMMIT`: the
  table, "" and 0;
- inside an nft table (`table ip kube-proxy {` to its `}`): the table's label
  (`ip kube-proxy`); the lines of a chain (its `chain NAME {` line, its
  `type … hook …` and `comment` lines, its rules) the chain; each rule numbered
  in its chain as `nft list` lists it; a chain's closing `}` and the sets' lines
  have no chain;
- every other line (an `ipvsadm-save` line, an `ipset save` line, a `# COMMAND`
  line): "", "" and 0.
"""

from __future__ import annotations

import re
from typing import Literal, Protocol

__all__ = ["Pages", "Row", "RowKeyer"]

Row = tuple[str, str, str, int]
"""(line, table, chain, rule number): "" and 0 where the line has none."""


class Pages(Protocol):
    """A listing whose rows are made when read."""

    @property
    def rule_count(self) -> int:
        """How many rules (iptables `-A` lines and nft rules)."""
        ...

    @property
    def chain_width(self) -> int:
        """The longest name of an iptables chain that holds a rule (0: none)."""
        ...

    @property
    def most_rules(self) -> int:
        """The most rules one chain holds."""
        ...

    def __len__(self) -> int: ...

    def row(self, r: int) -> Row:
        """Row `r` (0-based); IndexError past the end."""
        ...

    def find(self, table: str, chain: str, number: int) -> int | None:
        """The row of rule `number` (1-based) of `chain` in `table`, None if there is none."""
        ...

    def find_line(self, line: str) -> int | None:
        """The row of an `ipvsadm-save -n` line (`-A -t …`, `-a -t …`), None if absent."""
        ...


_NFT_CHAIN_COMMENT = re.compile(r'comment "[^"]*"')


def _nft_chain_header(line: str) -> bool:
    """A line inside an nft chain that describes the chain (its hook, its comment), not a rule."""
    return (line.startswith("type ") and " hook " in line) or bool(
        _NFT_CHAIN_COMMENT.fullmatch(line)
    )


class RowKeyer:
    """Keys a listing's lines one after another, as the module says rows are keyed."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        """(table, chain) → how many rules keyed so far."""
        self.event: Literal["", "table", "end", "chain"] = ""
        """What the last line keyed did: opened an nft table, closed it, opened an nft chain."""
        self._table = ""  # the iptables table, from `*nat` to `COMMIT`
        self._nft = ""  # the nft table, from `table ip kube-proxy {` to its `}`
        self._chain = ""  # the nft chain, from `chain NAME {` to its `}`
        self._skipping = 0  # the brace depth of an nft block that is not a chain (a set, a map)

    @property
    def in_nft(self) -> bool:
        """An nft table is open (a listing cut short may end inside one)."""
        return bool(self._nft)

    def key(self, line: str) -> tuple[str, str, int]:
        """The next line's (table, chain, rule number)."""
        self.event = ""
        chain, number, owner = "", 0, self._table
        if self._nft:
            # `nft list` output, as sim.readers.nftables reads it: a chain's lines are
            # rules but for its header lines; sets and maps are skipped brace by brace.
            owner = self._nft
            stripped = line.strip()
            if self._chain:
                if stripped == "}":
                    self._chain = ""
                else:
                    chain = self._chain
                    rule = stripped and not stripped.startswith("#")
                    if rule and not _nft_chain_header(stripped):
                        number = self._count(owner, chain)
            elif self._skipping:
                self._skipping += stripped.count("{") - stripped.count("}")
            elif stripped == "}":
                self._nft = ""
                self.event = "end"
            elif stripped.startswith("chain ") and stripped.endswith("{"):
                self._chain = chain = stripped[6:-1].strip()
                self.event = "chain"
            elif stripped.endswith("{"):
                self._skipping = stripped.count("{") - stripped.count("}")
        elif line.startswith("-A ") and self._table:
            end = line.find(" ", 3)
            chain = line[3:] if end < 0 else line[3:end]
            number = self._count(self._table, chain)
        elif line.startswith("*"):
            self._table = owner = line[1:].strip()
        elif line.startswith("COMMIT"):
            self._table = ""
        elif line.startswith("table ") and line.rstrip().endswith("{"):
            words = line.split()
            if len(words) == 4:
                self._nft = owner = f"{words[1]} {words[2]}"
                self.event = "table"
        return owner, chain, number

    def _count(self, table: str, chain: str) -> int:
        number = self.counts[table, chain] = self.counts.get((table, chain), 0) + 1
        return number
