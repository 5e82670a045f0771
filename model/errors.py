"""Errors a user can cause. Each message is one line naming what and where."""


class KubehopError(Exception):
    """A user mistake: bad input, an unknown name, an impossible request."""

    def __str__(self) -> str:
        # The last guard for "one line": a name quoted from the user's input
        # (a newline, an escape sequence) is shown escaped, never acted on.
        message = super().__str__()
        if message.isprintable():
            return message
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


class ClusterFileError(KubehopError):
    """A cluster file that cannot be read or fails Kubernetes' validation."""


class RulesParseError(KubehopError):
    """An iptables-save text that cannot be parsed."""


class RequestError(KubehopError):
    """A source or destination that does not name anything in the cluster."""
