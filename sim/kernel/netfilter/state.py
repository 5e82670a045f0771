"""Netfilter's state and its inputs and outputs at one hook.

A netns's state (`NetfilterState`: conntrack, `-m recent` lists, nth counters,
entries in flight between hooks) is immutable: each hook returns a new one in
its `HookResult`. `HookContext` is what the kernel knows about a packet at a
hook besides the packet itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import field
from ipaddress import IPv4Address
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from model.frozen import frozen
from model.netfilter import Hook, Rule, Table, UnknownMatch
from model.packet import ConntrackEntry, ConntrackTuple, CtState, Packet
from model.trace import TableWalk
from sim.kernel.conntrack import ConntrackTable, CtDirection

if TYPE_CHECKING:
    from model.ipvs import IpvsState
    from model.nftables import NftRule
    from sim.kernel.ipvs.hooks import IpvsVerdict, Steer

__all__ = [
    "RECENT_STAMPS",
    "HookContext",
    "HookResult",
    "HookVerdict",
    "InFlight",
    "NetfilterState",
    "NftKey",
    "RecentTable",
]

RECENT_STAMPS = 20
"""Timestamps kept per `-m recent` entry (xt_recent's `ip_pkt_list_tot` default)."""

HookVerdict = Literal["ACCEPT", "DROP", "REJECT"]
"""What a hook decides about a packet."""

NftKey = tuple[int | str | frozenset[str], ...]
"""An nft set element's key as the kernel compares it: each component's value."""


@frozen
class HookContext:
    """What the kernel knows about a packet at a hook, besides the packet."""

    hook: Hook
    """The hook being traversed."""
    in_iface: str | None = None
    """The input interface (`-i`); None at OUTPUT and POSTROUTING of local packets."""
    out_iface: str | None = None
    """The output interface (`-o`); None at PREROUTING and INPUT."""
    local_addrs: frozenset[IPv4Address] = frozenset()
    """Addresses of this netns (`-m addrtype --dst-type LOCAL`); 127.0.0.0/8 is always local."""
    out_iface_addr: IPv4Address | None = None
    """The primary address of `out_iface`, which MASQUERADE uses."""
    in_iface_addrs: frozenset[IPv4Address] = frozenset()
    """Addresses of `in_iface`, for `--limit-iface-in`."""
    broadcast_addrs: frozenset[IPv4Address] = frozenset()
    """Subnet broadcast addresses of this netns, for `--dst-type BROADCAST`."""
    physdev_in: str | None = None
    """The bridge port a bridged packet entered by (`-m physdev --physdev-in`)."""
    physdev_out: str | None = None
    """The bridge port a bridged packet leaves by (`-m physdev --physdev-out`)."""
    bridged: bool = False
    """The packet is being bridged and br_netfilter passes it through iptables."""
    now_s: float = 0.0
    """The virtual clock in seconds, for `-m recent --seconds`."""
    decide: Callable[[Rule], bool | None] | None = None
    """Overrides the draw of a rule's `-m statistic --mode random` (True: it matches);
    returning None, or no callable, draws from the generator as the kernel does."""
    foreign: Callable[[UnknownMatch, Packet], bool | None] | None = None
    """Evaluates a match the engine has no model of (`-m set` given an `ipset save`);
    returning None, or no callable, assumes it does not match and says so."""
    numgen: Callable[[NftRule], int | None] | None = None
    """Picks the branch of an nft `numgen random mod N vmap { … }` rule (to reach a pinned
    endpoint); returning None, or no callable, draws from the generator as the kernel does."""
    ipvs_steer: Steer | None = None
    """Picks the real server IPVS gives a new connection (to reach a pinned endpoint);
    returning None, or no callable, lets the virtual server's scheduler pick."""
    reinjected: bool = False
    """IPVS sent this packet on itself (ip_vs_nat_send_or_cont: NF_HOOK(LOCAL_OUT) again): it
    carries its conntrack entry, whose destination NAT was settled before, and IPVS's own
    hooks let it pass (`skb->ipvs_property`)."""


@frozen
class RecentTable:
    """The `-m recent` lists of a netns: list name → address → timestamps, oldest first."""

    lists: Mapping[str, Mapping[IPv4Address, tuple[float, ...]]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Each list's entries."""

    def stamps(self, name: str, addr: IPv4Address) -> tuple[float, ...] | None:
        """The timestamps of `addr` in list `name`, None when it has no entry."""
        entries = self.lists.get(name)
        return None if entries is None else entries.get(addr)

    def with_stamps(
        self, name: str, addr: IPv4Address, stamps: tuple[float, ...] | None
    ) -> RecentTable:
        """A new table where `addr` has `stamps` in list `name` (None removes the entry)."""
        entries = dict(self.lists.get(name, {}))
        if stamps is None:
            entries.pop(addr, None)
        else:
            entries[addr] = stamps
        lists = dict(self.lists)
        lists[name] = MappingProxyType(entries)
        return RecentTable(MappingProxyType(lists))


@frozen
class InFlight:
    """The conntrack entry a packet carries between two hooks of one netns (`skb->_nfct`)."""

    entry: ConntrackEntry | None
    """The entry, None for an untracked packet."""
    direction: CtDirection
    """The packet's direction in that connection."""
    ctstate: CtState
    """The packet's conntrack state."""


@frozen
class NetfilterState:
    """One netns's netfilter state, shared by every flow through that netns."""

    conntrack: ConntrackTable = field(default_factory=ConntrackTable)
    """Confirmed connections."""
    recent: RecentTable = field(default_factory=RecentTable)
    """`-m recent` lists."""
    nth: Mapping[tuple[Table, str, int], int] = field(default_factory=lambda: MappingProxyType({}))
    """`-m statistic --mode nth` counters, one per rule as in the kernel."""
    in_flight: Mapping[ConntrackTuple, InFlight] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Entries carried by packets between hooks, keyed by each packet's tuple as it left.

    This is how a first packet's unconfirmed entry reaches POSTROUTING or
    INPUT, where it is confirmed, and how a packet looped through `lo` keeps
    its entry.
    """
    nft_sets: Mapping[str, Mapping[NftKey, float]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Elements nft rules added to sets from the packet path (`update @affinity-… { ip saddr
    }`), per `family table set`: the element's key → the virtual time it expires at."""
    ipvs: IpvsState | None = None
    """IPVS's connections, persistence templates and scheduler positions (`rr`'s turn); None
    until IPVS first runs in the netns (so a node without IPVS never imports it)."""


@frozen
class HookResult:
    """What one hook did to a packet."""

    verdict: HookVerdict
    """ACCEPT lets the packet continue; DROP and REJECT end it here."""
    packet: Packet
    """The packet after NAT and MARK."""
    tables: tuple[TableWalk, ...]
    """Each table consulted (or skipped, with the reason), in priority order."""
    state: NetfilterState
    """The netns's state after this packet."""
    entry: ConntrackEntry | None
    """This packet's conntrack entry after the hook; None when untracked."""
    ctstate: CtState
    """The packet's conntrack state (`--ctstate`), without the virtual DNAT/SNAT."""
    direction: CtDirection | None = None
    """The packet's direction in its connection; None when untracked."""
    reject_with: str | None = None
    """For REJECT, what is sent back (`icmp-port-unreachable`, `tcp-reset`)."""
    assumptions: tuple[str, ...] = ()
    """Where the simulation had to guess: unknown matches and targets that were reached."""
    ipvs: IpvsVerdict | None = None
    """What IPVS did at this hook (None: it left the packet alone, or the node has none)."""
