"""What one table walk records for the trace: the chain spans compared, the rules matched.

A walk can enter chains millions of times (rules that fan out); the record
keeps the first `MAX_SHOWN` of each and counts the rest. A side-effect-free
chain walked again with the same packet is replayed from its first walk's
record (`Replay`), keyed by `MemoKey`.
"""

from __future__ import annotations

from model.netfilter import Chain, RuleRef, Table
from model.packet import Packet
from model.trace import ChainSpan

__all__ = ["MAX_SHOWN", "Frame", "MemoKey", "Replay", "Shown"]

MAX_SHOWN = 5_000
"""Spans and matched rules a table walk records for the screen; the rest are counted."""


MemoKey = tuple[Table, str, Packet]
Replay = tuple[tuple[ChainSpan, ...], tuple[RuleRef, ...], int]


class Frame:
    """Where a jump returns to, and how to remember the jumped chain's walk."""

    __slots__ = ("chain", "mark", "memo", "pos")

    def __init__(
        self, chain: Chain, pos: int, memo: MemoKey | None, mark: tuple[int, int, int]
    ) -> None:
        self.chain = chain
        self.pos = pos
        self.memo = memo
        self.mark = mark


class Shown:
    """What a table walk records for the trace: spans and matches up to `MAX_SHOWN`."""

    def __init__(self) -> None:
        self.spans: list[ChainSpan] = []
        self.matched: list[RuleRef] = []
        self.elided = 0

    def span(self, span: ChainSpan, *, always: bool = False) -> None:
        if always or len(self.spans) < MAX_SHOWN:
            self.spans.append(span)
        else:
            self.elided += 1

    def match(self, ref: RuleRef, *, always: bool = False) -> None:
        # The rule that ends the walk is always kept: the hop's sentence names it.
        if always or len(self.matched) < MAX_SHOWN:
            self.matched.append(ref)

    def mark(self) -> tuple[int, int, int]:
        return len(self.spans), len(self.matched), self.elided

    def since(self, mark: tuple[int, int, int]) -> Replay:
        spans, matched, elided = mark
        return tuple(self.spans[spans:]), tuple(self.matched[matched:]), self.elided - elided

    def replay(self, walk: Replay) -> None:
        spans, matched, elided = walk
        for span in spans:
            self.span(span)
        for ref in matched:
            self.match(ref)
        self.elided += elided
