"""Challenge mode's question: predict a hop before it is shown, then see the answer and why."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui.hopstyle import literal
from tui.screens.dialog import Dialog

if TYPE_CHECKING:
    from tui.session import Question


class QuestionScreen(Dialog[int | None]):
    """One question before a hop: the choices by number (or arrows and Enter), then the
    right answer marked and explained; Enter goes on to the hop. Esc skips the question,
    unscored."""

    DEFAULT_CSS = """
    QuestionScreen #question-prompt {
        text-style: bold;
        margin: 0 0 1 0;
    }

    QuestionScreen #question-choices {
        height: auto;
        max-height: 8;
        border: none;
        padding: 0;
        background: $panel;
    }

    QuestionScreen #question-choices:focus {
        border: none;
    }

    QuestionScreen #question-verdict {
        margin: 1 0 0 0;
        text-style: bold;
        display: none;
    }

    QuestionScreen #question-verdict.-right {
        color: $success;
    }

    QuestionScreen #question-verdict.-wrong {
        color: $warning;
    }

    QuestionScreen #question-explanation {
        display: none;
    }

    QuestionScreen.-revealed #question-verdict,
    QuestionScreen.-revealed #question-explanation {
        display: block;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "skip", "Skip"),
        *(Binding(str(n), f"choose({n - 1})", f"Answer {n}", show=False) for n in range(1, 5)),
    ]

    def __init__(
        self,
        question: Question,
        number: int,
        total: int,
        answered: Callable[[bool], None],
    ) -> None:
        super().__init__()
        self.question = question
        """The question asked."""
        self.number = number
        """Its number in the trace's questions, from 1."""
        self.total = total
        """How many questions the trace asks."""
        self.choice: int | None = None
        """The learner's choice (an index into the choices), None until answered."""
        self._answered = answered

    def compose(self) -> ComposeResult:
        question = self.question
        with VerticalScroll(classes="dialog-body") as body:
            body.border_title = (
                f"Challenge · question {self.number} of {self.total} · before hop"
                f" {question.before + 1}"
            )
            body.border_subtitle = "1–4 or ↑↓ Enter answers · Esc skips"
            yield Static(Text(literal(question.prompt)), id="question-prompt")
            yield OptionList(
                *(self._option(i) for i in range(len(question.choices))), id="question-choices"
            )
            yield Static(id="question-verdict")
            yield Static(id="question-explanation")

    def _option(self, index: int, mark: str = " ") -> Option:
        return Option(
            Text(f"{mark} {index + 1}  {literal(self.question.choices[index])}"), id=str(index)
        )

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if self.choice is not None:
            self.dismiss(self.choice)
            return
        self.action_choose(event.option_index)

    def action_choose(self, index: int) -> None:
        """Answer with choice `index` (from 0); once answered, any choice goes on."""
        question = self.question
        if self.choice is not None:
            self.dismiss(self.choice)
            return
        if not 0 <= index < len(question.choices):
            return
        self.choice = index
        right = question.is_right(index)
        choices = self.query_one(OptionList)
        for i in range(len(question.choices)):
            mark = "✔" if question.is_right(i) else "✘" if i == index else " "
            choices.replace_option_prompt_at_index(i, self._option(i, mark).prompt)
        choices.highlighted = question.answer
        verdict = self.query_one("#question-verdict", Static)
        if right:
            verdict.update(Text("✔ Right."))
        else:
            verdict.update(Text(f"✘ Not quite: the answer is {question.answer + 1}."))
        verdict.set_class(right, "-right")
        verdict.set_class(not right, "-wrong")
        self.query_one("#question-explanation", Static).update(Text(literal(question.explanation)))
        body = self.query_one(".dialog-body")
        body.border_subtitle = f"Enter shows hop {question.before + 1} · Esc too"
        self.add_class("-revealed")
        self._answered(right)

    def action_skip(self) -> None:
        """Go on without answering (unscored), or after the answer, go on."""
        self.dismiss(self.choice)
