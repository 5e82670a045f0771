"""A real node's `iptables-save` (and `ipset save`), for a trace to walk instead of kubehop's.

`kubehop trace --node-rules node-a=node-a.rules` reads what
`ssh node-a sudo iptables-save` printed; the packet then crosses node-a
through those rules — kube-proxy's, the CNI's, Docker's, whatever is there.
Rules the engine cannot evaluate are named in the ruleset's `warnings`, and the
trace says where it had to assume. `ipset save` output, given with
`--ipset node-a=node-a.ipset` or appended to the same file, lets
`-m set --match-set` be evaluated instead of assumed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from model.cluster import Cluster
from model.errors import KubehopError, RulesParseError
from model.ipset import IpSets
from model.netfilter import Ruleset, UnknownMatch
from sim.readers.cluster.files import read_text
from sim.readers.ipset import is_ipset_text, parse_ipset_save
from sim.readers.iptables_save import parse_iptables_save

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


def parse_node_spec(spec: str, option: str) -> tuple[str, str]:
    """`node-a=node-a.rules` → ("node-a", "node-a.rules")."""
    node, sep, path = spec.partition("=")
    if not sep or not node or not path:
        raise KubehopError(f"{option} {spec!r}: expected NODE=FILE, e.g. node-a=node-a.rules")
    return node, path


def _split_ipset(text: str) -> tuple[str, str]:
    """A file holding `iptables-save; ipset save`: the rules part and the sets part."""
    rules: list[str] = []
    sets: list[str] = []
    in_table = False
    for line in text.splitlines(keepends=True):
        word = line.strip()
        if word.startswith("*"):
            in_table = True
        elif word == "COMMIT":
            in_table = False
            rules.append(line)
            continue
        if not in_table and (word.startswith("create ") or word.startswith("add ")):
            sets.append(line)
            rules.append("\n")  # keep the rules' line numbers
        else:
            rules.append(line)
    return "".join(rules), "".join(sets)


def node_rules_from_text(
    cluster: Cluster, node: str, text: str, source: str, ipsets: str | None = None
) -> NodeDump:
    """`text` (iptables-save output of `node`) parsed for a trace to walk."""
    if cluster.node(node) is None:
        names = ", ".join(n.name for n in cluster.nodes[:10])
        raise KubehopError(f"{source}: no node {node!r} in the cluster (nodes: {names})")
    if is_ipset_text(text):
        raise RulesParseError(
            f"{source}: this is `ipset save` output; give it with --ipset {node}={source}"
        )
    rules_text, inline_sets = _split_ipset(text)
    parsed_sets = parse_ipset_save(inline_sets, source) if inline_sets.strip() else {}
    if ipsets is not None:
        parsed_sets.update(parse_ipset_save(ipsets, f"{source} (ipset)"))
    if not any(line.startswith("*") for line in rules_text.splitlines()):
        raise RulesParseError(
            f"{source}: no tables in it (expected the output of `iptables-save`, which starts"
            " each table with a line like *nat)"
        )
    ruleset = parse_iptables_save(rules_text, source=source)
    ruleset = ruleset.model_copy(
        update={"warnings": _set_warnings(ruleset, parsed_sets, node, source)}
    )
    return NodeDump(node, rules_text, ruleset, rendered=False, ipsets=parsed_sets)


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
            path,
            read_text(path, what="`ipset save` output", error=RulesParseError, ask_what=True),
        )
    found: dict[str, NodeDump] = {}
    for spec in specs:
        node, path = parse_node_spec(spec, "--node-rules")
        if node in found:
            raise KubehopError(f"--node-rules {spec!r}: rules for {node} were already given")
        text = read_text(path, what="`iptables-save` output", error=RulesParseError, ask_what=True)
        sets = ipsets.pop(node, None)
        found[node] = node_rules_from_text(
            cluster, node, text, os.fspath(path), sets[1] if sets else None
        )
    for node, (path, _) in ipsets.items():
        raise KubehopError(f"--ipset {node}={path}: give {node}'s rules with --node-rules too")
    return found
