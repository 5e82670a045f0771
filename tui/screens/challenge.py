"""Challenge mode (`c`): before a decision hop is shown, the learner predicts it, and is scored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from model.trace import Trace
from tui.hopstyle import reword
from tui.session import scenario_wording

if TYPE_CHECKING:
    from tui.screens.trace import TraceScreen
    from tui.session import Question


class Challenge:
    """The trace screen's challenge mode: each question asked before the hop that answers it.

    Its state is the screen's (`challenging`, `questions`, `right`, `asked`), since
    the title and the summary show the score and a new trace brings new questions.
    A hop once shown is not asked about again; a question skipped is not scored.
    """

    def __init__(self, screen: TraceScreen) -> None:
        self._screen = screen

    def toggle(self) -> None:
        """Challenge mode on or off: on, from the first hop, the hops after it hidden again."""
        screen = self._screen
        screen.player.stop()
        screen.challenging = not screen.challenging
        if not screen.challenging:
            screen.questions = ()
            screen.update_title()
            screen.notify(f"Challenge mode off: {screen.right} of {screen.asked} right.")
            return
        screen.right = screen.asked = 0
        trace = screen.trace
        if trace is None or screen.stepper is None:
            screen.update_title()
            screen.notify(
                "Challenge mode on: pick a request, and before each decision hop you predict"
                " it. c turns it off."
            )
            return
        # From the first hop, the hops after it hidden again: they are what is asked.
        screen.questions = screen.session.questions(trace)
        screen.summarized = False
        screen.stepper.to_start()
        screen.furthest = 0
        screen.update_title()
        screen.show_current()
        count = len(screen.questions)
        screen.notify(
            f"Challenge mode on, from the first hop: {count} question{'s' if count != 1 else ''}"
            " in this trace, each asked before the hop that answers it. c turns it off.",
            title="Challenge",
        )

    def pending(self, index: int) -> list[Question]:
        """The questions to ask before hop `index` is shown: those on hops not shown yet."""
        screen = self._screen
        return [q for q in screen.questions if screen.furthest < q.before <= index]

    def ask_before(self, trace: Trace, index: int, then: Callable[[], None]) -> None:
        """Ask the questions before hop `index` of `trace` one after the other, then call
        `then` (at once if there are none, or challenge mode is off)."""
        self._ask(trace, self.pending(index), then)

    def _ask(self, trace: Trace, pending: list[Question], then: Callable[[], None]) -> None:
        screen = self._screen
        if screen.trace is not trace or screen.stepper is None:
            return  # another trace was loaded meanwhile
        if not pending:
            then()
            return
        from tui.screens.question import QuestionScreen

        question, rest = pending[0], pending[1:]
        number = screen.questions.index(question) + 1
        wording = scenario_wording(screen.scenario)
        question = replace(
            question,
            prompt=reword(question.prompt, wording),
            explanation=reword(question.explanation, wording),
        )

        def answered(right: bool) -> None:
            screen.asked += 1
            screen.right += right
            screen.update_title()

        def went_on(_: int | None) -> None:
            self._ask(trace, rest, then)

        screen.app.clear_notifications()  # a toast would cover the choices
        screen.app.push_screen(
            QuestionScreen(question, number, len(screen.questions), answered), went_on
        )
