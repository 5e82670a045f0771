"""What can go wrong in the lab that a user can fix: one line each, no traceback."""

from __future__ import annotations

from model.errors import KubehopError


class LabError(KubehopError):
    """The lab cannot do what was asked (a command failed, the kernel said no)."""


class LabUnavailable(LabError):
    """This machine cannot run the lab: not Linux, not root, or a tool is missing."""


class NoLabRunning(LabError):
    """A command needs a lab that `kubehop lab up` built, and none is up."""


class LabInterrupted(BaseException):
    """SIGTERM arrived; raised like KeyboardInterrupt so every `finally` cleans up."""
