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

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, is_dataclass, replace

from model.cluster import Cluster, ProxyMode
from model.errors import RequestError
from model.ipset import IpSets
from model.netfilter import Ruleset
from sim.cni import cni_of
from sim.kernel.rules import ForeignRules, NodeRules
from sim.proxy import mode_of

__all__ = [
    "Listing",
    "listing_text",
    "listings",
    "node_listing",
    "node_rules",
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
_CACHE: OrderedDict[tuple[int, str], tuple[Cluster, NodeRules]] = OrderedDict()
_CACHE_SIZE = 32


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
    rules = mode_of(cluster).node_rules(cluster, node, foreign)
    if foreign is not None and _to_place(foreign):
        # The reader parses a user's iptables-save too; imported here, as the
        # mode does, so that rendering alone (`kubehop rules`) does not load it.
        from sim.readers.iptables_save import parse_iptables_save

        text = _placed(rules.text, foreign)
        parsed = parse_iptables_save(text, source=f"{node} (rendered)", lazy=True)
        if is_dataclass(rules) and not isinstance(rules, type):
            # kube-proxy's sets (IPVS mode's) and the CNI's (Calico's) side by side.
            sets = {**rules.ipsets, **foreign.ipsets}
            rules = replace(rules, text=text, ruleset=parsed, ipsets=sets)
        else:
            rules = _Placed(node, text, parsed, rules.rendered, {**rules.ipsets, **foreign.ipsets})
    _CACHE[key] = (cluster, rules)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return rules


def rules_for(
    cluster: Cluster, node: str, overrides: Mapping[str, NodeRules] | None = None
) -> NodeRules:
    """The rules a trace walks on `node`: a real dump when one was given, else the rendered."""
    if overrides and node in overrides:
        return overrides[node]
    return node_rules(cluster, node)


@dataclass(frozen=True)
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
    while len(_LISTED) > _CACHE_SIZE:
        _LISTED.popitem(last=False)
    return text


_LISTED: OrderedDict[int, tuple[NodeRules, str]] = OrderedDict()


def _cni_rules(cluster: Cluster, node: str) -> ForeignRules | None:
    found = cluster.node(node)
    return cni_of(cluster).iptables_rules(found) if found is not None else None


@dataclass(frozen=True)
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
