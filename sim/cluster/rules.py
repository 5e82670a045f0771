"""A node's netfilter rules as its kernel holds them: kubelet's and kube-proxy's, and the CNI's.

kube-proxy's mode (`sim.proxy`) renders its rules; the CNI (`sim.cni`) adds
its own chains (Flannel's FLANNEL-POSTRTG and FLANNEL-FWD, Calico's `cali-*`)
and the ipsets they look up; all end up in the same tables, in the order the
agents write them. Every trace goes render → text → parse → evaluate, so the
engine that walks kubehop's own rules is the one that walks a real node's dump.

Each mode's renderer places the CNI's user chains and appended rules in the
iptables tables it prints (iptables mode: filter and nat; nftables mode, whose
iptables-save text is kubelet's: mangle too). What it does not place is placed
here, on its text: rules an agent keeps above everyone else's in a built-in
chain (`ForeignRules.first`: Felix inserts its jumps and puts them back on top
when kube-proxy prepends its own), and whatever chains and rules of a table
the renderer left out (Felix's raw table); what a renderer placed is left as
it is. The mode's rules keep their type, with the CNI's ipsets.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, is_dataclass, replace
from typing import Any, overload

from model.cluster import Cluster, ProxyMode
from model.errors import RequestError
from model.frozen import frozen
from model.ipset import IpSets
from model.netfilter import Ruleset
from sim.cni import cni_of
from sim.kernel.rules import ForeignRules, NodeRules
from sim.proxy import mode_of
from sim.proxy.iptables import IptablesMode
from sim.readers.pages import ListingPages, Pages

__all__ = [
    "CACHE_BYTES",
    "Listing",
    "Pages",
    "cached_bytes",
    "held_bytes",
    "listing_ready",
    "listing_text",
    "listings",
    "node_listing",
    "node_pages",
    "node_rules",
    "pages_ready",
    "render_rules",
    "rules_for",
]


def render_rules(cluster: Cluster, node: str) -> str:
    """What a person sees of `node`'s rules, as `node_listing` gives it, for a node no packet
    walks: iptables mode's `iptables-save` text is rendered without being read back."""
    if cluster.kube_proxy.mode is not ProxyMode.IPTABLES:
        return node_listing(cluster, node)
    foreign = _cni_rules(cluster, node)
    text = mode_of(cluster).render(cluster, node, foreign)
    if foreign is None or not _to_place(foreign):
        return text
    return _placed(text, foreign)


# Rendering a node of a 10,000-Service cluster takes a while; the same cluster
# object asks for the same node many times (every trace, every screen refresh).
# The caches are bounded by what they hold, not by how many nodes: in iptables
# mode a node holds only what packets reached (a few hundred kB), a node rendered
# whole holds its text and what parsing it holds (tens of MB at the scale limits).
_CACHE: OrderedDict[tuple[int, str], tuple[Cluster, NodeRules]] = OrderedDict()
CACHE_BYTES = 384 << 20
"""About how many bytes the rendered nodes' rules may hold together, as `held_bytes`
estimates them (the newest is always kept, whatever its size). Estimates, not counts: on a
500-node cluster in iptables mode, dropping the caches after 200 traces freed 1.4 times
what they estimated."""
LISTED_BYTES = 256 << 20
"""How many characters of listings (`node_listing`) are kept together."""
WHOLE_TEXT_FACTOR = 4
"""What a node rendered whole holds, in bytes per character of its texts: the text and its
lines split by chain (measured 3.1 for a node of a 500-node cluster); the chains packets
had parsed come on top, unseen (3.2 kB a rule)."""


def held_bytes(rules: NodeRules) -> int:
    """About how many bytes `rules` holds: as it says (iptables mode counts what it rendered
    and parsed so far), else its texts' length times `WHOLE_TEXT_FACTOR`."""
    own = getattr(rules, "held_bytes", None)
    if isinstance(own, int):
        return own
    size = len(rules.text)
    for name in ("nft_text", "transaction"):
        more = getattr(rules, name, "")
        size += len(more) if isinstance(more, str) else 0
    # IPVS mode: ipvsadm-save and ipset save beside iptables-save, and the virtual
    # servers and sets they were printed from.
    size += sum(len(listing.text) for listing in getattr(rules, "listings", ()))
    return WHOLE_TEXT_FACTOR * size


def cached_bytes() -> int:
    """About how many bytes the cached nodes' rules hold together."""
    return sum(held_bytes(rules) for _, rules in _CACHE.values())


def _bound() -> None:
    total = cached_bytes()
    while total > CACHE_BYTES and len(_CACHE) > 1:
        _, (_, rules) = _CACHE.popitem(last=False)
        total -= held_bytes(rules)
        # A walk's chains may still refer to the rules (the kernel's index cache);
        # dropping their parts frees them all the same.
        release = getattr(rules, "release", None)
        if callable(release):
            release()


def node_rules(cluster: Cluster, node: str) -> NodeRules:
    """The rules on `node`, rendered and parsed once per cluster object."""
    key = (id(cluster), node)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is cluster:
        _CACHE.move_to_end(key)
        return hit[1]
    if cluster.node(node) is None:
        names = ", ".join(n.name for n in cluster.nodes[:10])
        raise RequestError(f"no node {node!r} in the cluster (nodes: {names})")
    foreign = _cni_rules(cluster, node)
    mode = mode_of(cluster)
    placing = foreign is not None and _to_place(foreign)
    if isinstance(mode, IptablesMode):
        # iptables mode renders a node a Service port at a time, so it places the
        # CNI's rules itself, on the part of the text it renders first.
        place = functools.partial(_placed, foreign=foreign) if foreign and placing else None
        rules = mode.node_rules(cluster, node, foreign, place)
    else:
        rules = mode.node_rules(cluster, node, foreign)
    if foreign is not None and placing and not isinstance(mode, IptablesMode):
        # The reader parses a user's iptables-save too; imported here, as the
        # mode does, so that rendering alone (`kubehop rules`) does not load it.
        from sim.readers.iptables_save import parse_iptables_save

        text = _placed(rules.text, foreign)
        parsed = parse_iptables_save(text, source=f"{node} (rendered)", lazy=True)
        if is_dataclass(rules) and not isinstance(rules, type):
            # kube-proxy's sets (IPVS mode's) and the CNI's (Calico's) side by side.
            sets = {**rules.ipsets, **foreign.ipsets}
            own = getattr(rules, "listings", None)
            if own is not None:
                # The node's commands show what the kernel walks: the placed text.
                rules = replace(rules, listings=_PlacedListings(own, text))
            rules = replace(rules, text=text, ruleset=parsed, ipsets=sets)
        else:
            rules = _Placed(node, text, parsed, rules.rendered, {**rules.ipsets, **foreign.ipsets})
    _CACHE[key] = (cluster, rules)
    # Checked when a node comes in: the others grew only by what walks reached since.
    _bound()
    return rules


def rules_for(
    cluster: Cluster, node: str, overrides: Mapping[str, NodeRules] | None = None
) -> NodeRules:
    """The rules a trace walks on `node`: a real dump when one was given, else the rendered."""
    if overrides and node in overrides:
        return overrides[node]
    return node_rules(cluster, node)


@frozen
class Listing:
    """One command a person runs on a node to see its rules, and what it prints."""

    command: str
    """`iptables-save`, `nft list table ip kube-proxy`, …"""
    text: str
    """Its output."""


def listings(rules: NodeRules) -> tuple[Listing, ...]:
    """The commands that show `rules` on the node, and what each prints.

    A node's rules may say themselves (a `listings` attribute: IPVS mode's
    ipvsadm, ipset and iptables); otherwise its nft tables come first where it
    has them (nftables mode: kube-proxy's table; a real node's whole ruleset),
    then its iptables-save (in nftables mode, kubelet's and the CNI's chains).
    """
    own = getattr(rules, "listings", None)
    if own is not None:
        return tuple(own)
    found: list[Listing] = []
    nft_text = getattr(rules, "nft_text", "")
    if isinstance(nft_text, str) and nft_text:
        command = "nft list table ip kube-proxy" if rules.rendered else "nft list ruleset"
        found.append(Listing(command, nft_text))
    if rules.text or not found:
        found.append(Listing("iptables-save", rules.text))
    return tuple(found)


def listing_text(found: tuple[Listing, ...]) -> str:
    """One text of `found`: a lone listing as its command prints it; several, each under a
    `# COMMAND` line (a comment to iptables-restore, nft -f and ipset restore alike)."""
    if len(found) == 1:
        return found[0].text
    return "\n".join(f"# {item.command}\n{item.text.rstrip()}\n" for item in found)


def listing_ready(cluster: Cluster, node: str) -> bool:
    """`node_listing(cluster, node)` returns at once: the node's whole text is rendered.

    A trace through a node no longer renders its whole text (iptables mode renders
    the Service ports its packets reach), so having traced a node does not say it.
    """
    hit = _CACHE.get((id(cluster), node))
    if hit is None or hit[0] is not cluster:
        return False
    rendered = getattr(hit[1], "text_rendered", True)
    return rendered is True


def node_listing(
    cluster: Cluster, node: str, overrides: Mapping[str, NodeRules] | None = None
) -> str:
    """What a person sees of `node`'s rules on the node, every command's output in one text
    (`kubehop rules`, the app's rules pane)."""
    rules = rules_for(cluster, node, overrides)
    hit = _LISTED.get(id(rules))
    if hit is not None and hit[0] is rules:
        return hit[1]
    # The same object each time, so what indexes the text (the rules pane) does it once.
    text = listing_text(listings(rules))
    _LISTED[id(rules)] = (rules, text)
    total = sum(len(listed) for _, listed in _LISTED.values())
    while total > LISTED_BYTES and len(_LISTED) > 1:
        total -= len(_LISTED.popitem(last=False)[1][1])
    return text


_LISTED: OrderedDict[int, tuple[NodeRules, str]] = OrderedDict()


def node_pages(cluster: Cluster, node: str) -> Pages | None:
    """`node`'s listing (what `node_listing` gives) as rows made when read, where its mode
    gives them (`ProxyMode.pages`: the node's own part counted, the part every node shares
    counted once per cluster); None where it does not (`node_listing` gives the text)."""
    rules = node_rules(cluster, node)
    hit = _PAGED.get(id(rules))
    if hit is not None and hit[0] is rules:
        _PAGED.move_to_end(id(rules))
        return hit[1]
    parts = mode_of(cluster).pages(cluster, rules)
    if parts is None:
        return None
    pages = ListingPages(parts)
    _PAGED[id(rules)] = (rules, pages)
    while len(_PAGED) > _PAGED_KEPT:
        _PAGED.popitem(last=False)
    return pages


def pages_ready(cluster: Cluster, node: str) -> bool:
    """`node_pages(cluster, node)` returns quickly: the node's pages are made, or the part
    every node shares is (each node's own part then takes milliseconds at the scale limits)."""
    hit = _CACHE.get((id(cluster), node))
    if hit is not None and hit[0] is cluster:
        paged = _PAGED.get(id(hit[1]))
        if paged is not None and paged[0] is hit[1]:
            return True
    return mode_of(cluster).pages_quick(cluster)


_PAGED: OrderedDict[int, tuple[NodeRules, Pages]] = OrderedDict()
_PAGED_KEPT = 8
"""Nodes whose pages are kept: each holds its chains' names and where they start (a few MB at
the scale limits, the names shared with every node's)."""


def _cni_rules(cluster: Cluster, node: str) -> ForeignRules | None:
    found = cluster.node(node)
    return cni_of(cluster).iptables_rules(found) if found is not None else None


@frozen
class _Placed:
    """A node's rules once the CNI's rules the renderer does not place are in the text."""

    node: str
    """The node."""
    text: str
    """The iptables-save text, every agent's rules in place."""
    ruleset: Ruleset
    """The text, parsed lazily."""
    rendered: bool
    """kubehop rendered them."""
    ipsets: IpSets = field(default_factory=dict)
    """The sets the rules look up."""


class _PlacedListings(Sequence[Any]):
    """A mode's own listings (IPVS mode's, rendered when first read) with `iptables-save`
    printing the text the CNI's rules were placed in."""

    def __init__(self, listings: Sequence[Any], text: str) -> None:
        self._listings = listings
        self._text = text

    def _placed(self, listing: Any) -> Any:
        return replace(listing, text=self._text) if listing.command == "iptables-save" else listing

    @overload
    def __getitem__(self, at: int) -> Any: ...
    @overload
    def __getitem__(self, at: slice) -> Sequence[Any]: ...
    def __getitem__(self, at: int | slice) -> Any:
        if isinstance(at, slice):
            return [self._placed(listing) for listing in self._listings[at]]
        return self._placed(self._listings[at])

    def __len__(self) -> int:
        return len(self._listings)


_RENDERER_PLACES = frozenset({"filter", "nat"})
"""The tables whose foreign user chains and appended rules every mode's renderer places:
a CNI with rules only there, and none on top, needs nothing more."""

_TABLE_ORDER = ("mangle", "raw", "filter", "nat")
"""The order iptables-nft-save prints tables in (its mangle, security, raw, filter, nat)."""

_BUILTINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}


def _to_place(foreign: ForeignRules) -> bool:
    """Whether `foreign` has rules kube-proxy's renderer does not place."""
    if any(foreign.first.values()):
        return True
    others = (set(foreign.chains) | set(foreign.rules)) - _RENDERER_PLACES
    return any(foreign.chains.get(t) or foreign.rules.get(t) for t in others)


@dataclass
class _Table:
    """One table of an iptables-save text: its chains' declarations and rules."""

    declared: dict[str, str] = field(default_factory=dict)
    rules: dict[str, list[str]] = field(default_factory=dict)


def _placed(text: str, foreign: ForeignRules) -> str:
    """`text` with `foreign`'s chains and rules in place, its top rules on top; what `text`
    already has of them stays where it is (but for top rules, moved up)."""
    tables: dict[str, _Table] = {}
    current: _Table | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], _Table())
        elif line.startswith(":") and current is not None:
            current.declared[line[1:].split()[0]] = line
        elif line.startswith("-A ") and current is not None:
            current.rules.setdefault(line.split()[1], []).append(line)
    for name in _TABLE_ORDER:
        first = foreign.first.get(name, ())
        chains = foreign.chains.get(name, ())
        rules = foreign.rules.get(name, ())
        if not (first or chains or rules):
            continue
        table = tables.get(name)
        if table is None:
            table = tables[name] = _Table({c: f":{c} ACCEPT [0:0]" for c in _BUILTINS[name]}, {})
        for chain in chains:
            table.declared.setdefault(chain, f":{chain} - [0:0]")
        placed: dict[str, set[str]] = {}
        for line in rules:
            chain = line.split()[1]
            have = placed.setdefault(chain, set(table.rules.get(chain, ())))
            if line not in have:
                table.rules.setdefault(chain, []).append(line)
                have.add(line)
        on_top: dict[str, list[str]] = {}
        for line in first:
            on_top.setdefault(line.split()[1], []).append(line)
        for chain, lines in on_top.items():
            rest = [r for r in table.rules.get(chain, []) if r not in lines]
            table.rules[chain] = lines + rest
    out: list[str] = []
    for name in sorted(tables, key=lambda t: _TABLE_ORDER.index(t)):
        table = tables[name]
        builtins = [c for c in _BUILTINS[name] if c in table.declared]
        users = sorted(c for c in table.declared if c not in _BUILTINS[name])
        out.append(f"*{name}")
        out += [table.declared[c] for c in (*builtins, *users)]
        for chain in (*builtins, *users):
            out += table.rules.get(chain, [])
        out.append("COMMIT")
    return "\n".join(out) + "\n"
