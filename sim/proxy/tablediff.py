"""What the modes' `rules --diff` share: comparing two listings place by place, and printing it.

A place is a chain, a set or map, or a virtual server; its items are lines
as the node's command prints them. Items are compared as multisets, so the
order a command lists them in does not count; what only kubehop renders is
missing on the node (`-`), what only the node has is extra (`+`, with its
line in the node's file).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Change", "TableDiff", "compare_items", "endpoint_lines", "hunks"]


@dataclass(frozen=True)
class Change:
    """One item in one place that the other side lacks."""

    where: str
    """`chain service-…`, `map service-ips`, `virtual server TCP 10.96.0.1:443`."""
    what: str
    """The item as the node's command prints it."""
    lineno: int = 0
    """The node's line, for what only the node has (0: none known)."""


@dataclass(frozen=True)
class TableDiff:
    """How a node's listing differs from what kube-proxy should have left there."""

    node: str
    """The node."""
    rendered: str
    """Where the expected listing came from."""
    real: str
    """The node's file."""
    missing: tuple[Change, ...]
    """What kube-proxy should have written that the node lacks."""
    extra: tuple[Change, ...]
    """What the node has that the cluster does not explain."""
    missing_endpoints: tuple[str, ...] = ()
    """Endpoints only the rendered listing has, as the mode names them."""
    stale_endpoints: tuple[str, ...] = ()
    """Endpoints only the node has."""
    no_table: bool = False
    """The node's file holds none of this listing at all."""

    @property
    def same(self) -> bool:
        """The node's listing is what kube-proxy should have written."""
        return not self.missing and not self.extra and not self.no_table


def compare_items(
    where: str,
    ours: Iterable[str],
    theirs: Iterable[tuple[str, int]],
    missing: list[Change],
    extra: list[Change],
) -> None:
    """Add to `missing` what `ours` has more often than `theirs` (items with their line), and
    to `extra` the other way round."""
    have = list(theirs)
    pool = [text for text, _ in have]
    for text in ours:
        if text in pool:
            pool.remove(text)
        else:
            missing.append(Change(where, text))
    for text, lineno in have:
        if text in pool:
            pool.remove(text)
            extra.append(Change(where, text, lineno))


def hunks(
    places: Iterable[str],
    missing: Iterable[Change],
    extra: Iterable[Change],
    real: str,
    *,
    heading: str = "{}",
) -> list[str]:
    """`@@ place @@` then its `-missing` and `+extra (file:line)` lines, place by place in the
    order of `places`; `heading` formats the place's name."""
    grouped: dict[str, list[str]] = {}
    for change in missing:
        grouped.setdefault(change.where, []).append(f"-{change.what}")
    for change in extra:
        at = f"   ({real}:{change.lineno})" if change.lineno else ""
        grouped.setdefault(change.where, []).append(f"+{change.what}{at}")
    lines: list[str] = []
    for where in places:
        if where in grouped:
            lines.append(f"@@ {heading.format(where)} @@")
            lines += grouped.pop(where)
    return lines


def endpoint_lines(missing: Iterable[str], stale: Iterable[str], table: str) -> list[str]:
    """The summary's endpoint lines: those only the cluster has, those only `table` has."""
    return [
        *(f"missing endpoint: {e} (in the EndpointSlices, not in {table})" for e in missing),
        *(
            f"stale endpoint: {e} (in {table}, in no EndpointSlice: kube-proxy has not synced,"
            " or the dump is older than the table)"
            for e in stale
        ),
    ]
