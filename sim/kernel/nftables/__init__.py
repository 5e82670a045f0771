"""nftables as the kernel runs it: a base chain's rules, sets and verdict maps, for one packet.

`walk` runs a base chain (`nft_do_chain`), `values` reads a selector from the
packet and a literal from a rule, `sets` indexes named sets and maps. The
hook (`sim.kernel.netfilter.hook`) calls `walk_base_chain` for each base chain
registered at it, between the iptables tables, by priority.

Simplifications, each also noted where it is made: `numgen random` draws
from the trace's seeded generator (the kernel scales a random u32); sets do
not enforce their `size`; `fib` answers only the address type, from the
netns's addresses; expressions kubehop cannot evaluate make the rule not
match, and the hop says so.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from model.nftables import NftRule
from sim.kernel.nftables.walk import NftHost, walk_base_chain
from sim.kernel.rules import NodeRules

__all__ = ["NftHost", "NumgenSteering", "walk_base_chain"]


@runtime_checkable
class NumgenSteering(Protocol):
    """An interpreter that can steer `numgen` draws towards a pinned endpoint.

    The walker asks it when it has this method; `sim.kernel.interpreter.Interpreter`
    may take it in later as a member of its own.
    """

    def numgen(self, rule: NftRule, rules: NodeRules) -> int | None:
        """The branch of `rule`'s `numgen … vmap` to take (None: draw as the kernel)."""
