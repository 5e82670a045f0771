"""A listing's rows made when read: the contract between what renders a big node's rules
(`sim.readers.pages`, each kube-proxy mode's `paged` module) and what draws them (the rules
view), which imports no `sim`. How a row is keyed is said in `sim.readers.pages`."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Pages", "Row"]

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
