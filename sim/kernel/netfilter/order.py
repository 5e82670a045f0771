"""What runs at a netfilter hook, and in which order: the kernel's priorities.

The iptables tables and conntrack sit at fixed priorities; an nftables base
chain at its own; IPVS at the priorities `ip_vs_core.c` registers; every
`type nat` chain inside the NAT core's one hook. `traverse`
(`sim.kernel.netfilter.hook`) walks what `hook_steps` lists.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from model.netfilter import Hook, Table

if TYPE_CHECKING:
    from model.nftables import NftChain, NftRuleset, NftTable

__all__ = [
    "DST_MANIP_HOOKS",
    "IpvsStep",
    "NftStep",
    "Step",
    "Steps",
    "hook_steps",
    "with_ipvs",
]


class Step(Enum):
    CT_IN = "conntrack"
    CONFIRM = "confirm"


# Kernel priorities: raw -300, conntrack -200, mangle -150, nat dst -100,
# filter 0, nat src 100, conntrack confirm INT_MAX.
_HOOK_STEPS: dict[Hook, tuple[Table | Step, ...]] = {
    Hook.PREROUTING: (Table.RAW, Step.CT_IN, Table.MANGLE, Table.NAT),
    Hook.INPUT: (Table.MANGLE, Table.FILTER, Table.NAT, Step.CONFIRM),
    Hook.FORWARD: (Table.MANGLE, Table.FILTER),
    Hook.OUTPUT: (Table.RAW, Step.CT_IN, Table.MANGLE, Table.NAT, Table.FILTER),
    Hook.POSTROUTING: (Table.MANGLE, Table.NAT, Step.CONFIRM),
}

DST_MANIP_HOOKS = frozenset({Hook.PREROUTING, Hook.OUTPUT})

_PRIORITY: dict[Table | Step, int] = {
    Table.RAW: -300,
    Step.CT_IN: -200,
    Table.MANGLE: -150,
    Table.FILTER: 0,
    Step.CONFIRM: 2**31 - 1,
}


# This module's records are plain classes, not dataclasses: nothing compares, hashes or
# prints them, and a dataclass's methods are compiled from source as its module loads
# (~0.4 ms each, on every start-up).


class NftStep:
    """An nftables base chain registered at the hook."""

    __slots__ = ("chain", "table")

    def __init__(self, table: NftTable, chain: NftChain) -> None:
        self.table = table
        self.chain = chain


class IpvsStep:
    """One of IPVS's hooks: `request` schedules and NATs, `reply` puts the VIP back."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


# ip_vs_core.c's ip_vs_ops4: (priority, kind) per hook.
_IPVS_HOOKS: dict[Hook, tuple[tuple[int, IpvsStep], ...]] = {
    Hook.INPUT: ((98, IpvsStep("reply")), (99, IpvsStep("request"))),
    Hook.FORWARD: ((100, IpvsStep("reply")),),
    Hook.OUTPUT: ((-99, IpvsStep("reply")), (-98, IpvsStep("request"))),
}

Steps = tuple[Table | Step | NftStep | IpvsStep, ...]


def with_ipvs(hook: Hook, steps: Steps) -> Steps:
    """`steps` with IPVS's hooks at their priorities (after filter INPUT/FORWARD, after nat
    OUTPUT, before nat INPUT and conntrack's confirm)."""
    extra = _IPVS_HOOKS.get(hook, ())
    if not extra:
        return steps
    nat_at = -100 if hook in DST_MANIP_HOOKS else 100

    def priority(step: Table | Step | NftStep | IpvsStep) -> int:
        if isinstance(step, NftStep):
            return step.chain.priority or 0
        if isinstance(step, IpvsStep):
            return 0
        return nat_at if step is Table.NAT else _PRIORITY[step]

    entries = [(priority(step), 0, i, step) for i, step in enumerate(steps)]
    entries += [(at, 1, i, step) for i, (at, step) in enumerate(extra)]
    return tuple(step for *_, step in sorted(entries, key=lambda e: e[:3]))


def hook_steps(hook: Hook, nft: NftRuleset | None) -> tuple[Steps, tuple[NftStep, ...]]:
    """Everything registered at `hook` in the order the kernel runs it, and the nft nat chains.

    The iptables tables and conntrack sit at their fixed priorities; an nft base
    chain at its own. Of two hooks with the same priority the one registered
    later runs first (nf_hook_entries_grow inserts a new hook before existing
    ones of equal priority), and kube-proxy loads its table after kubelet's
    iptables rules exist, so nft chains go first at a tie. Every `type nat`
    chain, iptables' nat table included, runs inside the NAT core's one hook
    (at -100 for destination NAT, 100 for source NAT) in priority order.
    """
    base = _HOOK_STEPS[hook]
    if nft is None or not nft.tables:
        return base, ()
    name = hook.value.lower()
    hooked = [NftStep(t, c) for t in nft.tables for c in base_chains(t, name)]
    if not hooked:
        return base, ()
    nat = tuple(
        sorted((s for s in hooked if s.chain.type == "nat"), key=lambda s: s.chain.priority or 0)
    )
    nat_at = -100 if hook in DST_MANIP_HOOKS else 100
    entries: list[tuple[int, int, int, Table | Step | NftStep]] = [
        (nat_at if step is Table.NAT else _PRIORITY[step], 1, i, step)
        for i, step in enumerate(base)
    ]
    entries += [
        (s.chain.priority or 0, 0, i, s) for i, s in enumerate(hooked) if s.chain.type != "nat"
    ]
    return tuple(step for *_, step in sorted(entries, key=lambda e: e[:3])), nat


_BASES: dict[int, tuple[NftTable, dict[str, tuple[NftChain, ...]]]] = {}


def base_chains(table: NftTable, hook: str) -> tuple[NftChain, ...]:
    """`table.base_chains(hook)`, found once per table: a big table has 150,000 chains."""
    hit = _BASES.get(id(table))
    if hit is None or hit[0] is not table:
        if len(_BASES) > 64:
            _BASES.clear()
        hit = (table, {})
        _BASES[id(table)] = hit
    found = hit[1].get(hook)
    if found is None:
        found = hit[1][hook] = table.base_chains(hook)
    return found
