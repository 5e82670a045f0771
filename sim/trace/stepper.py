"""The async driver the app steps: a cursor over one or more traces on a virtual clock.

The stepper computes nothing: traces are complete before it starts. It only
sequences their hops (interleaved by virtual time when several flows run at
once) and paces playback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from model.frozen import frozen
from model.trace import Direction, Hop, Trace

BASE_DELAY_S = 0.6
"""Seconds between hops at speed 1 while playing."""


@frozen
class Step:
    """One hop on the shared timeline, with the trace it belongs to."""

    trace: int
    """Index of the trace in the stepper."""
    hop: Hop
    """The hop."""
    t_us: int
    """Virtual time on the shared clock."""


class Stepper:
    """A cursor over the hops of one or more traces."""

    def __init__(
        self,
        *traces: Trace,
        stagger_us: int = 1000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not traces:
            raise ValueError("a stepper needs at least one trace")
        self.traces = traces
        """The traces being stepped."""
        steps = [
            Step(index, hop, index * stagger_us + hop.t_us)
            for index, trace in enumerate(traces)
            for hop in trace.hops
        ]
        self.steps: tuple[Step, ...] = tuple(sorted(steps, key=lambda s: (s.t_us, s.trace)))
        """Every hop of every trace, in virtual-time order."""
        self.index = 0
        """The position of the current step."""
        self._sleep = sleep

    @property
    def current(self) -> Hop:
        """The hop at the cursor."""
        return self.steps[self.index].hop

    @property
    def at_start(self) -> bool:
        """The cursor is on the first hop."""
        return self.index == 0

    @property
    def at_end(self) -> bool:
        """The cursor is on the last hop."""
        return self.index == len(self.steps) - 1

    def seek(self, index: int) -> Hop:
        """Move the cursor to `index` (clamped) and return that hop."""
        self.index = max(0, min(index, len(self.steps) - 1))
        return self.current

    def forward(self) -> Hop:
        """One hop on (stays on the last)."""
        return self.seek(self.index + 1)

    def back(self) -> Hop:
        """One hop back (stays on the first)."""
        return self.seek(self.index - 1)

    def to_start(self) -> Hop:
        """The first hop."""
        return self.seek(0)

    def to_end(self) -> Hop:
        """The last hop."""
        return self.seek(len(self.steps) - 1)

    def to_reply(self) -> Hop:
        """The first hop of the reply, or the last hop when there is no reply."""
        for i, step in enumerate(self.steps):
            if step.hop.direction is Direction.REPLY:
                return self.seek(i)
        return self.to_end()

    async def play(self, speed: float = 1.0) -> AsyncIterator[Hop]:
        """Advance hop by hop until the end, yielding each; cancel the consumer to pause."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        while not self.at_end:
            await self._sleep(BASE_DELAY_S / speed)
            yield self.forward()
