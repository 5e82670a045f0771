"""Netfilter at one hook: tables in kernel priority order, conntrack, NAT.

`state` holds what a hook reads and returns, `hook` walks the tables,
`matches` evaluates the match modules, `index` skips rules a packet cannot
match in big chains.

`traverse` is a pure function of the hook context, the packet, the ruleset
and the netns's state; it returns the verdict, the rewritten packet, what
each table did, and the new state. The caller calls it once per hook in path
order and routes again after a DNAT.

Simplifications, each also noted where it is made: `-m statistic --mode
random` draws a float from the caller's generator; SNAT/MASQUERADE with
`--random`/`--random-fully` draws the port uniformly from the range
(1024-65535 by default) and a clash walks upward instead of from a hashed
offset; NAT ranges use their first address and port; conntrack ASSURED equals
SEEN_REPLY; a packet unknown to conntrack is always NEW (nf_conntrack_tcp_loose);
`-m recent --rttl` is ignored; addresses not local, multicast or broadcast
are UNICAST for `-m addrtype`; unknown matches never match and unknown
targets continue, both reported in `HookResult.assumptions`.
"""

from sim.kernel.netfilter.hook import traverse
from sim.kernel.netfilter.index import INDEX_MIN_RULES
from sim.kernel.netfilter.state import (
    RECENT_STAMPS,
    HookContext,
    HookResult,
    HookVerdict,
    InFlight,
    NetfilterState,
    RecentTable,
)

__all__ = [
    "INDEX_MIN_RULES",
    "RECENT_STAMPS",
    "HookContext",
    "HookResult",
    "HookVerdict",
    "InFlight",
    "NetfilterState",
    "RecentTable",
    "traverse",
]
