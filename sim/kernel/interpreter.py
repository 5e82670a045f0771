"""What the walk asks of whoever wrote a node's rules: what they meant, in words.

The kernel evaluates rules; it does not know why they are there. A hop's
sentence ("DNAT in KUBE-SEP-…: an endpoint of default/web, chosen by …"),
which random branch leads to an endpoint the user pinned, and why no rule
claims an address all depend on kube-proxy's mode. The walker asks an
`Interpreter` (for iptables mode, `sim.proxy.iptables.interpret`) and never
imports one.
"""

from __future__ import annotations

from typing import Protocol

from model.frozen import frozen
from model.netfilter import Hook, Rule
from model.packet import Packet
from sim.kernel.netfilter import HookResult
from sim.kernel.rules import NodeRules

__all__ = ["HookStory", "Interpreter"]


@frozen
class HookStory:
    """A netfilter hop in words."""

    sentence: str
    """What the hook did to the packet, in one sentence."""
    detail: str
    """The decisive rule as the node's tables print it (empty when no rule decided)."""
    notes: tuple[str, ...] = ()
    """Where the article the project started from says otherwise, and other remarks."""
    finding: str | None = None
    """What a real node's rules did that the cluster dump does not explain (a stale rule)."""


class Interpreter(Protocol):
    """Reads a node's rules as the component that wrote them meant them; one per trace."""

    def explain(
        self,
        hook: Hook,
        before: Packet,
        result: HookResult,
        rules: NodeRules,
        *,
        node: str | None,
        out_iface: str | None,
        request: bool,
    ) -> HookStory:
        """`result` of `hook` on `node` in words (`request`: the packet is not a reply)."""

    def decide(self, rule: Rule, rules: NodeRules) -> bool | None:
        """Whether a random rule matches, to reach a pinned endpoint (None: draw as the kernel)."""

    def unclaimed(self, pkt: Packet) -> str:
        """Why no rule and no interface takes `pkt`'s destination, in a clause."""

    def reply_begins(self) -> None:
        """The reply starts: forget what was learned about the request's packet."""
