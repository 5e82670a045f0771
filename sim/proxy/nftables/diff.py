"""What a node's `ip kube-proxy` table has that kube-proxy's should not, and the other way round.

`kubehop rules --mode nftables --node node-a --diff node-a.rules` compares
the node's own table (from `nft list ruleset` or `nft list table ip
kube-proxy` in the file) with the one kubehop renders from the cluster dump.

Things are compared by what nft lists, not where: chains by name with
their declaration (type, hook, priority, policy) and their rules in order;
sets and maps by their elements, whatever order and line breaks nft chose.
Counters and `# handle N` are run-time state, and so are the elements of a
set with the `dynamic` flag (the affinity sets the packets fill), so none of
them is compared. A chain named after an endpoint only the node has is a
stale endpoint; one only kubehop renders is a missing endpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from model.nftables import NftElement, NftTable
from sim.proxy.tablediff import Change, TableDiff, compare_items, endpoint_lines, hunks

__all__ = ["NftDiff", "diff_nft", "nft_diff_text"]

_COUNTER = re.compile(r"\s*\bcounter packets \d+ bytes \d+")

_ENDPOINT_CHAIN = re.compile(r"^endpoint-[A-Z0-9]+-(?P<service>.+)__(?P<ip>[\d.]+)/(?P<port>\d+)$")
"""kube-proxy's endpoint chains: `endpoint-HASH-ns/svc/proto/port__IP/PORT`."""


@dataclass(frozen=True)
class NftDiff(TableDiff):
    """The differences in kube-proxy's nft table between rendered and real; endpoints are
    `IP:PORT (ns/svc/proto/port)`, and `no_table` says the file has no `ip kube-proxy`."""


def _rule(text: str) -> str:
    return " ".join(_COUNTER.sub("", text).split())


def _element(element: NftElement) -> str:
    text = " . ".join(element.key)
    if element.comment is not None:
        text += f' comment "{element.comment}"'
    if element.value is not None:
        text += f" : {element.value}"
    return text


def _declaration(table: NftTable, name: str) -> str:
    chain = table.chains[name]
    if chain.hook is None:
        return "chain"
    return f"type {chain.type} hook {chain.hook} priority {chain.priority}; policy {chain.policy}"


def _contents(table: NftTable) -> dict[str, tuple[tuple[str, int], ...]]:
    """Everything compared, by where it is: each chain's declaration and rules, each set's
    elements (dynamic sets' left out), with the line each came from."""
    found: dict[str, tuple[tuple[str, int], ...]] = {}
    for name in table.chains:
        chain = table.chains[name]
        items = [(f"declared: {_declaration(table, name)}", chain.lineno)]
        items += [(_rule(rule.text), rule.lineno) for rule in chain.rules]
        found[f"chain {name}"] = tuple(items)
    for name, nft_set in table.sets.items():
        kind = "map" if nft_set.map else "set"
        if "dynamic" in nft_set.flags:
            found[f"{kind} {name}"] = (("declared", nft_set.lineno),)
            continue
        items = [("declared", nft_set.lineno)]
        items += sorted((_element(e), nft_set.lineno) for e in nft_set.elements)
        found[f"{kind} {name}"] = tuple(items)
    return found


def _endpoints(names: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in names:
        m = _ENDPOINT_CHAIN.match(name.removeprefix("chain "))
        if m is not None:
            found[name] = f"{m['ip']}:{m['port']} ({m['service']})"
    return found


def diff_nft(
    node: str, rendered: NftTable, real: NftTable | None, *, rendered_source: str, real_source: str
) -> NftDiff:
    """How the node's `ip kube-proxy` table (`real`) differs from kubehop's (`rendered`)."""
    if real is None:
        return NftDiff(node, rendered_source, real_source, (), (), no_table=True)
    ours, theirs = _contents(rendered), _contents(real)
    missing: list[Change] = []
    extra: list[Change] = []
    for where in ours.keys() | theirs.keys():
        mine = [text for text, _ in ours.get(where, ())]
        compare_items(where, mine, theirs.get(where, ()), missing, extra)
    only_ours = {w for w in ours if w not in theirs}
    only_theirs = {w for w in theirs if w not in ours}
    order = {where: i for i, where in enumerate([*ours, *theirs])}

    def key(change: Change) -> tuple[int, str]:
        return order[change.where], change.what

    return NftDiff(
        node,
        rendered_source,
        real_source,
        tuple(sorted(missing, key=key)),
        tuple(sorted(extra, key=key)),
        missing_endpoints=tuple(sorted(_endpoints(only_ours).values())),
        stale_endpoints=tuple(sorted(_endpoints(only_theirs).values())),
    )


def nft_diff_text(diff: NftDiff) -> str:
    """The differences as a unified-diff-like listing, then a summary in words."""
    lines = [f"--- {diff.rendered}", f"+++ {diff.real}"]
    if diff.no_table:
        lines += [
            "",
            f"{diff.node}: {diff.real} holds no table ip kube-proxy (give `nft list ruleset`"
            " of the node; is its kube-proxy in nftables mode?)",
        ]
        return "\n".join(lines) + "\n"
    places = dict.fromkeys(c.where for c in (*diff.missing, *diff.extra))
    lines += hunks(places, diff.missing, diff.extra, diff.real, heading="table ip kube-proxy {}")
    lines.append("")
    if diff.same:
        lines.append(
            f"{diff.node}: kube-proxy's nft table is what kube-proxy should have written for"
            " this cluster"
        )
    else:
        lines.append(
            f"{diff.node}: {len(diff.missing)} line(s) of kube-proxy's nft table missing,"
            f" {len(diff.extra)} the cluster does not explain"
        )
    lines += endpoint_lines(diff.missing_endpoints, diff.stale_endpoints, "the node's table")
    lines.append(
        "not compared: counters, rule handles, and the elements of dynamic sets (affinity),"
        " which packets fill at run time"
    )
    return "\n".join(lines) + "\n"
