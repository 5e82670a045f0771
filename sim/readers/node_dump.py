"""A real node's `iptables-save` (and `ipset save`), for a trace to walk instead of kubehop's.

`kubehop trace --node-rules node-a=node-a.rules` reads what
`ssh node-a sudo iptables-save` printed; the packet then crosses node-a
through those rules — kube-proxy's, the CNI's, Docker's, whatever is there.
Rules the engine cannot evaluate are named in the ruleset's `warnings`, and the
trace says where it had to assume. `ipset save` or `ipset list` output, given
with `--ipset node-a=node-a.ipset` or appended to the same file, lets
`-m set --match-set` be evaluated instead of assumed.

A node whose kube-proxy runs in IPVS mode (`sim.readers.proxy_mode`) is
refused with one line saying what showed it: its Services live in the
kernel's IPVS tables, which `iptables-save` does not show and kubehop does not
simulate yet, so walking its iptables rules would end in wrong verdicts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from model.cluster import Cluster, ProxyMode
from model.errors import KubehopError, RulesParseError
from model.ipset import IpSets
from model.netfilter import Ruleset, UnknownMatch
from sim.readers.cluster.files import read_text
from sim.readers.ipset import ipset_format, parse_ipsets
from sim.readers.iptables_save import parse_iptables_save
from sim.readers.proxy_mode import infer_proxy_mode

__all__ = ["NodeDump", "load_node_rules", "node_rules_from_text", "parse_node_spec"]


@dataclass(frozen=True)
class NodeDump:
    """A real node's rules, with the ipsets its `-m set` matches look up."""

    node: str
    """The node."""
    text: str
    """The iptables-save text as the user gave it (ipset lines blanked)."""
    ruleset: Ruleset
    """The text, parsed."""
    rendered: bool = False
    """Always False: a real node's dump, not kubehop's rendering."""
    ipsets: IpSets = field(default_factory=dict)
    """`ipset save` of the node, by set name; empty when none was given."""
    kube_proxy_version: str | None = None
    """The node's status.nodeInfo.kubeProxyVersion in the cluster dump, when it reports one."""


def parse_node_spec(spec: str, option: str) -> tuple[str, str]:
    """`node-a=node-a.rules` → ("node-a", "node-a.rules")."""
    node, sep, path = spec.partition("=")
    if not sep or not node or not path:
        raise KubehopError(f"{option} {spec!r}: expected NODE=FILE, e.g. node-a=node-a.rules")
    return node, path


def _split_ipset(text: str) -> tuple[str, str]:
    """A file holding `iptables-save; ipset save` (or `ipset list`): the rules and the sets.

    Each part keeps the file's line numbers (the other part's lines blanked),
    so a message about either names the line of the file.
    """
    rules: list[str] = []
    sets: list[str] = []
    in_table = False
    listing = False  # inside `ipset list` output, which goes on to the next table
    for line in text.splitlines(keepends=True):
        word = line.strip()
        if word.startswith("*"):
            in_table, listing = True, False
        elif word == "COMMIT":
            in_table = False
            rules.append(line)
            sets.append("\n")
            continue
        if not in_table and word.startswith("Name: "):
            listing = True
        if not in_table and (listing or word.startswith("create ") or word.startswith("add ")):
            sets.append(line)
            rules.append("\n")
        else:
            rules.append(line)
            sets.append("\n")
    return "".join(rules), "".join(sets)


def node_rules_from_text(
    cluster: Cluster,
    node: str,
    text: str,
    source: str,
    ipsets: str | None = None,
    ipset_source: str | None = None,
) -> NodeDump:
    """`text` (iptables-save output of `node`) parsed for a trace to walk.

    `ipsets` is the node's `ipset save` or `ipset list` output, read from
    `ipset_source`. A node in kube-proxy's IPVS mode is refused in one line.
    """
    known = cluster.node(node)
    if known is None:
        names = ", ".join(n.name for n in cluster.nodes[:10])
        raise KubehopError(f"{source}: no node {node!r} in the cluster (nodes: {names})")
    form = ipset_format(text)
    if form is not None:
        raise RulesParseError(
            f"{source}: this is `ipset {form}` output; give it with --ipset {node}={source}"
        )
    rules_text, inline_sets = _split_ipset(text)
    parsed_sets = parse_ipsets(inline_sets, source) if inline_sets.strip() else {}
    sets_source = source
    if ipsets is not None:
        sets_source = ipset_source or f"{source} (ipset)"
        if any(line.lstrip().startswith("*") for line in ipsets.splitlines()):
            raise RulesParseError(
                f"{sets_source}: this is `iptables-save` output, not ipsets; give it with"
                f" --node-rules {node}={sets_source}"
            )
        parsed_sets.update(parse_ipsets(ipsets, sets_source))
    if not any(line.startswith("*") for line in rules_text.splitlines()):
        raise RulesParseError(
            f"{source}: no tables in it (expected the output of `iptables-save`, which starts"
            " each table with a line like *nat)"
        )
    ruleset = parse_iptables_save(rules_text, source=source)
    mode = infer_proxy_mode(ruleset, parsed_sets, ipset_source=sets_source)
    if mode.mode is ProxyMode.IPVS:
        raise RulesParseError(
            f"{source}: {node}'s kube-proxy runs in IPVS mode ({mode.said(about=source)});"
            " kubehop simulates iptables mode only, not IPVS yet, so it cannot walk this node's"
            " rules"
        )
    ruleset = ruleset.model_copy(
        update={"warnings": _set_warnings(ruleset, parsed_sets, node, source)}
    )
    return NodeDump(node, rules_text, ruleset, False, parsed_sets, known.kube_proxy_version)


def _set_warnings(ruleset: Ruleset, sets: IpSets, node: str, source: str) -> tuple[str, ...]:
    """The parser's warnings, less those about `-m set` rules whose sets are known."""
    answered: set[int] = set()
    for chains in ruleset.tables.values():
        for chain in chains.values():
            for rule in chain.rules:
                names = [
                    m.args[m.args.index("--match-set") + 1]
                    for m in rule.matches
                    if isinstance(m, UnknownMatch)
                    and m.module == "set"
                    and "--match-set" in m.args[:-1]
                ]
                if names and all(name in sets for name in names):
                    answered.add(rule.lineno)
    kept: list[str] = []
    for warning in dict.fromkeys(ruleset.warnings):
        if "cannot evaluate -m set" in warning:
            line = warning.removeprefix(f"{source}:").split(":", 1)[0]
            if line.isdigit() and int(line) in answered:
                continue
            warning += f" (give the node's `ipset save` with --ipset {node}=FILE)"
        kept.append(warning)
    return tuple(kept)


def load_node_rules(
    cluster: Cluster,
    specs: Sequence[str],
    ipset_specs: Sequence[str] = (),
) -> dict[str, NodeDump]:
    """`--node-rules NODE=FILE` and `--ipset NODE=FILE` options, read and parsed."""
    ipsets: dict[str, tuple[str, str]] = {}
    for spec in ipset_specs:
        node, path = parse_node_spec(spec, "--ipset")
        ipsets[node] = (
            os.fspath(path),
            read_text(
                path,
                what="`ipset save` or `ipset list` output",
                error=RulesParseError,
                ask_what=True,
            ),
        )
    found: dict[str, NodeDump] = {}
    for spec in specs:
        node, path = parse_node_spec(spec, "--node-rules")
        if node in found:
            raise KubehopError(f"--node-rules {spec!r}: rules for {node} were already given")
        text = read_text(path, what="`iptables-save` output", error=RulesParseError, ask_what=True)
        sets = ipsets.pop(node, None)
        found[node] = node_rules_from_text(
            cluster,
            node,
            text,
            os.fspath(path),
            sets[1] if sets else None,
            sets[0] if sets else None,
        )
    for node, (path, _) in ipsets.items():
        raise KubehopError(f"--ipset {node}={path}: give {node}'s rules with --node-rules too")
    return found
