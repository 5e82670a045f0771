"""How one direction of a walk ended: delivered, dropped, rejected, refused or unreachable."""

from __future__ import annotations

from model.frozen import frozen
from model.packet import Packet
from model.trace import Verdict

__all__ = ["End"]


@frozen
class End:
    """How one direction of the walk ended."""

    verdict: Verdict
    """How it ended."""
    reason: str
    """Why, in one sentence (empty when delivered)."""
    packet: Packet
    """The packet as it was when it ended."""
    netns: str
    """Where it ended."""
