"""Playing a trace: the trace screen's stepper advanced hop by hop at a chosen speed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.worker import Worker

if TYPE_CHECKING:
    from tui.screens.trace import TraceScreen

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Play speeds, as multiples of one hop per second of the virtual clock's pacing."""


class Player:
    """Play and pause (space), faster and slower (`>`, `<`).

    The playing runs in an async worker of the screen (group "play"); the
    screen's footer says whether space plays or pauses, so each start and stop
    refreshes the screen's bindings.
    """

    def __init__(self, screen: TraceScreen) -> None:
        self._screen = screen
        self.speed = 1.0
        """Play speed."""
        self._worker: Worker[None] | None = None

    @property
    def playing(self) -> bool:
        """The trace is playing."""
        return self._worker is not None and not self._worker.is_finished

    def play(self) -> None:
        """Play from the current hop (from the first, at the last)."""
        screen = self._screen
        if screen.stepper is None:
            return
        if screen.stepper.at_end:
            screen.stepper.to_start()
            screen.show_current()
        self._worker = self._start()
        screen.refresh_bindings()

    def stop(self) -> None:
        """Stop playing, if playing."""
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
            self._screen.refresh_bindings()

    def change_speed(self, step: int) -> None:
        """Play `step` speeds faster (slower if negative), within SPEEDS."""
        position = SPEEDS.index(self.speed) if self.speed in SPEEDS else 2
        self.speed = SPEEDS[max(0, min(len(SPEEDS) - 1, position + step))]
        self._screen.notify(f"Play speed ×{self.speed:g}", timeout=1.5)
        if self._worker is not None and self._worker.is_running:
            self.stop()
            self._worker = self._start()

    def _start(self) -> Worker[None]:
        return self._screen.run_worker(self._play, name="_play", group="play", exclusive=True)

    async def _play(self) -> None:
        screen = self._screen
        stepper = screen.stepper
        if stepper is None:
            return
        async for _ in stepper.play(self.speed):
            if screen.stepper is not stepper:
                return
            if screen.asks_before(stepper.index):
                # Challenge mode: the hop is not shown before its questions are answered;
                # playing goes on after them.
                stepper.back()
                self._worker = None
                screen.advance(stepper.index + 1, summary=True, resume=True)
                return
            screen.show_current()
        if screen.stepper is stepper and stepper.at_end:
            screen.reached_end()
