"""Errors a user can cause. Each message is one line naming what and where."""


class KubehopError(Exception):
    """A user mistake: bad input, an unknown name, an impossible request."""


class ClusterFileError(KubehopError):
    """A cluster file that cannot be read or fails Kubernetes' validation."""


class RulesParseError(KubehopError):
    """An iptables-save text that cannot be parsed."""


class FlowError(KubehopError):
    """A source or destination that does not name anything in the cluster."""
