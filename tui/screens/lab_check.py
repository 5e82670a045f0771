"""Checking a trace in the real-kernel lab (`kubehop lab up`): send it for real, compare."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rich.markup import escape

from model.errors import KubehopError
from model.trace import Trace

if TYPE_CHECKING:
    from tui.screens.trace import TraceScreen


class LabCheck:
    """The trace screen's `L`: the request on show, sent through the lab's kernel.

    The check runs in a worker thread of the screen (group "lab"); its verdict
    goes to the screen's title, unless another trace is on show by then.
    """

    def __init__(self, screen: TraceScreen) -> None:
        self._screen = screen

    def check(self) -> None:
        """Send the trace on show through the real kernel and compare."""
        screen = self._screen
        if screen.trace is None:
            screen.notify("Pick a request first (p, or 1–4).", severity="warning")
            return
        screen.notify("Sending it through the real kernel…", title="Lab", timeout=2)
        trace = screen.trace
        screen.run_worker(
            partial(self._check_in_worker, trace),
            name="_verify",
            group="lab",
            exclusive=True,
            thread=True,
        )

    def _check_in_worker(self, trace: Trace) -> None:
        screen = self._screen
        try:
            check = screen.session.check_in_lab(trace)
        except KubehopError as err:
            screen.app.call_from_thread(
                screen.notify, escape(str(err)), title="Lab", severity="error", timeout=8
            )
            return
        screen.app.call_from_thread(self._checked, trace, check.agree, check.differences)

    def _checked(self, trace: Trace, agree: bool, differences: tuple[str, ...]) -> None:
        screen = self._screen
        if trace is not screen.trace:
            return  # another trace is on show by now
        if agree:
            result = "lab ✔ the kernel agrees"
            screen.notify("The kernel did what the trace shows.", title="Lab ✔")
        else:
            result = f"lab ✘ {len(differences)} differences"
            screen.notify(
                escape("\n".join(differences)),
                title="Lab ✘ the kernel differs",
                severity="error",
                timeout=15,
            )
        screen.show_lab_result(result)
