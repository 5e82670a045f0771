"""IPVS, the kernel's layer-4 load balancer, as kube-proxy's IPVS mode uses it.

`hooks` holds what IPVS does at its netfilter hooks (schedule a new
connection and NAT it to a real server; put the virtual address back on a
reply), `schedule` its schedulers. A node's virtual servers come with its
rules (`ipvs_of`), as its nft tables do; the netfilter walk calls IPVS at its
hook priorities, and the walker sends a packet IPVS took on to the real server.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from model.ipvs import IpvsTable, RealServer, VirtualServer
from sim.kernel.ipvs.hooks import IpvsVerdict, Steer, reply, request
from sim.kernel.ipvs.schedule import LIVE_COUNTS, schedule
from sim.kernel.rules import NodeRules

__all__ = [
    "LIVE_COUNTS",
    "IpvsSteering",
    "IpvsVerdict",
    "Steer",
    "ipvs_match",
    "ipvs_of",
    "reply",
    "request",
    "schedule",
]


def ipvs_of(rules: NodeRules) -> IpvsTable | None:
    """The node's IPVS virtual servers, None when it has none (iptables or nftables mode).

    Not a member of the `NodeRules` protocol, as `nft_of` is not: a node's rules
    that have them give them as an `ipvs` attribute.
    """
    found = getattr(rules, "ipvs", None)
    return found if isinstance(found, IpvsTable) else None


@runtime_checkable
class IpvsSteering(Protocol):
    """An interpreter that can pick IPVS's real server in advance (`--pick`, the fork view).

    The walker asks it when it has this method, as it asks `NumgenSteering`.
    """

    def ipvs_pick(self, vs: VirtualServer, rules: NodeRules) -> RealServer | None:
        """The real server `vs` gives a new connection (None: its scheduler picks)."""


def ipvs_match(args: tuple[str, ...], sent: IpvsVerdict | None) -> bool:
    """xt_ipvs (`-m ipvs [--ipvs] --vaddr A[/M] --vproto P --vport N`): the packet is one
    IPVS handled, for that virtual server. Options other than these are taken to match."""
    if sent is None or sent.server is None:
        return "--ipvs" in args and "!" in args[: args.index("--ipvs")]
    vs = sent.service
    words = list(args)
    for at, word in enumerate(words[:-1]):
        value = words[at + 1]
        if word == "--vaddr" and str(vs.ip) != value.split("/")[0]:
            return False
        if word == "--vproto" and vs.proto.value != value.lower():
            return False
        if word == "--vport" and str(vs.port) != value:
            return False
    return True
