"""A real node's `iptables-save` (and `ipset save`), for a trace to walk instead of kubehop's.

`kubehop trace --node-rules node-a=node-a.rules` reads what
`ssh node-a sudo iptables-save` printed; the packet then crosses node-a
through those rules — kube-proxy's, the CNI's, Docker's, whatever is there.
Rules the engine cannot evaluate are named in the ruleset's `warnings`, and the
trace says where it had to assume. `ipset save` or `ipset list` output, given
with `--ipset node-a=node-a.ipset` or appended to the same file, lets
`-m set --match-set` be evaluated instead of assumed.

A node whose kube-proxy runs in nftables mode keeps its Services in nft's
`ip kube-proxy` table: the same file may hold `nft list ruleset` (or `nft
list table ip kube-proxy`) after the iptables-save text, and the trace walks
that table's base chains at their priorities among the iptables tables. The
tables iptables-nft keeps in nft (`ip nat`, `ip filter`, …) are the
iptables-save text over again, spelled with `xt` matches nft cannot show:
they are read from iptables-save, not twice.

A node whose kube-proxy runs in IPVS mode (`sim.readers.proxy_mode`) keeps its
Services in the kernel's IPVS table, which `iptables-save` does not show: its
`ipvsadm-save -n` (or `ipvsadm -Ln`) output must come in the same file, and
the cluster's KubeProxyConfiguration must say `mode: ipvs` (so that the node's
Service addresses sit on `kube-ipvs0`); without either it is refused in one
line saying what showed IPVS mode.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from model.cluster import Cluster, ProxyMode
from model.errors import KubehopError, RulesParseError
from model.ipset import IpSets
from model.ipvs import IpvsTable
from model.netfilter import Ruleset, UnknownMatch
from model.nftables import NftRuleset
from sim.readers.cluster.files import read_text
from sim.readers.ipset import ipset_format, parse_ipsets
from sim.readers.iptables_save import parse_iptables_save
from sim.readers.ipvsadm import parse_ipvsadm
from sim.readers.proxy_mode import infer_proxy_mode

__all__ = [
    "NodeDump",
    "load_node_rules",
    "node_rules_from_text",
    "parse_node_spec",
    "shown_mode",
]


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
    ipvs: IpvsTable | None = None
    """The node's IPVS virtual servers (`ipvsadm-save -n`), when it runs IPVS mode."""

    nft_text: str = ""
    """The `nft list` text of the file (other lines blanked), "" when it has none."""
    nft: NftRuleset | None = None
    """The nft tables the kernel walks (iptables-nft's left out: iptables-save has them)."""


_IPVSADM_STARTS = ("-A -t ", "-A -u ", "-a -t ", "-a -u ", "-A --sctp-service", "-a --sctp-service",
                   "IP Virtual Server", "Prot LocalAddress", "-> ", "TCP  ", "UDP  ", "SCTP ")  # fmt: skip


def _split_ipvsadm(text: str) -> tuple[str, str]:
    """A file holding `ipvsadm-save -n` (or `ipvsadm -Ln`) beside the rules: the rest and the
    ipvsadm part, each keeping the file's line numbers."""
    rest: list[str] = []
    ipvs: list[str] = []
    in_table = False
    for line in text.splitlines(keepends=True):
        word = line.strip()
        if word.startswith("*"):
            in_table = True
        elif word == "COMMIT":
            in_table = False
        if not in_table and word.startswith(_IPVSADM_STARTS):
            ipvs.append(line)
            rest.append("\n")
        else:
            rest.append(line)
            ipvs.append("\n")
    return "".join(rest), "".join(ipvs)


def parse_node_spec(spec: str, option: str) -> tuple[str, str]:
    """`node-a=node-a.rules` → ("node-a", "node-a.rules")."""
    node, sep, path = spec.partition("=")
    if not sep or not node or not path:
        raise KubehopError(f"{option} {spec!r}: expected NODE=FILE, e.g. node-a=node-a.rules")
    return node, path


_IPTABLES_NFT_TABLES = frozenset({"filter", "nat", "mangle", "raw", "security"})
"""The tables iptables-nft keeps in nft, in families ip and ip6."""


@dataclass(frozen=True)
class _Parts:
    """A node's file cut into what each command printed, every part keeping the file's line
    numbers (the other parts' lines blanked), so a message names the line of the file."""

    rules: str
    """iptables-save."""
    sets: str
    """ipset save or ipset list."""
    nft: str
    """nft list ruleset (or table)."""
    nft_tables: tuple[tuple[str, str, int, int], ...]
    """Each nft table: family, name, first and last line."""


def _split(text: str) -> _Parts:
    """Cut a file holding `iptables-save; ipset save; nft list ruleset` (any of them)."""
    parts: dict[str, list[str]] = {"rules": [], "sets": [], "nft": []}
    tables: list[tuple[str, str, int, int]] = []
    in_table = False
    listing = False  # inside `ipset list` output, which goes on to the next table
    depth = 0  # inside an nft table's braces
    opened: tuple[str, str, int] | None = None
    for lineno, line in enumerate(text.splitlines(keepends=True), start=1):
        word = line.strip()
        part = "rules"
        if depth:
            part = "nft"
            depth += word.count("{") - word.count("}")
            if depth <= 0 and opened is not None:
                tables.append((*opened, lineno))
                depth, opened = 0, None
        elif not in_table and word.startswith("table ") and word.endswith("{"):
            part, listing = "nft", False
            words = word.split()
            opened = (words[1], words[2], lineno) if len(words) == 4 else ("", "", lineno)
            depth = word.count("{") - word.count("}")
        elif word.startswith("# Warning: table ") and not in_table:
            part = "nft"  # iptables-nft's note above its tables
        elif word.startswith("*"):
            in_table, listing = True, False
        elif word == "COMMIT":
            in_table = False
        elif not in_table and word.startswith("Name: "):
            listing = True
        at_sets = listing or word.startswith(("create ", "add "))
        if part == "rules" and not in_table and word != "COMMIT" and at_sets:
            part = "sets"
        for name, lines in parts.items():
            lines.append(line if name == part else "\n")
    return _Parts(
        "".join(parts["rules"]), "".join(parts["sets"]), "".join(parts["nft"]), tuple(tables)
    )


def _kernel_nft(parts: _Parts, source: str) -> tuple[NftRuleset | None, tuple[str, ...]]:
    """The nft tables a trace walks, and what was left out of them and why."""
    if not parts.nft.strip():
        return None, ()
    from sim.readers.nftables import parse_nft

    parsed = parse_nft(parts.nft, source=source)
    skipped = [
        (first, last)
        for family, name, first, last in parts.nft_tables
        if family in ("ip", "ip6") and name in _IPTABLES_NFT_TABLES
    ]

    def left_out(lineno: int) -> bool:
        return any(first <= lineno <= last for first, last in skipped)

    kept = tuple(t for t in parsed.tables if not left_out(t.lineno))
    warnings = [
        w
        for w in parsed.warnings
        if not left_out(int(w.removeprefix(f"{source}:").split(":", 1)[0] or 0))
    ]
    said = tuple(
        f"{source}:{t.lineno}: table {t.label} is iptables-nft's; its rules are read from the"
        " iptables-save text"
        + ("" if parts.rules.strip() else ", which this file lacks, so they are unknown")
        for t in parsed.tables
        if left_out(t.lineno)
    )
    return parsed.model_copy(update={"tables": kept, "warnings": tuple(warnings)}), said


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
    `ipset_source`. A node in kube-proxy's IPVS mode needs its `ipvsadm-save -n` in `text`.
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
    text, ipvs_text = _split_ipvsadm(text)
    parts = _split(text)
    rules_text, inline_sets = parts.rules, parts.sets
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
    nft, nft_said = _kernel_nft(parts, source)
    has_tables = any(line.startswith("*") for line in rules_text.splitlines())
    if not has_tables and nft is None:
        raise RulesParseError(
            f"{source}: no tables in it (expected the output of `iptables-save`, which starts"
            " each table with a line like *nat, or of `nft list ruleset`)"
        )
    ruleset = parse_iptables_save(rules_text, source=source)
    mode = infer_proxy_mode(ruleset, parsed_sets, ipset_source=sets_source)
    ipvs = parse_ipvsadm(ipvs_text, source) if ipvs_text.strip() else None
    if mode.mode is ProxyMode.IPVS and ipvs is None:
        raise RulesParseError(
            f"{source}: {node}'s kube-proxy runs in IPVS mode ({mode.said(about=source)}), whose"
            " Services live in the kernel's IPVS table: add the node's `ipvsadm-save -n` output"
            " to the file"
        )
    if ipvs is not None and cluster.kube_proxy.mode is not ProxyMode.IPVS:
        raise KubehopError(
            f"{source}: {node} runs kube-proxy in IPVS mode, but the cluster's"
            f" KubeProxyConfiguration says mode {cluster.kube_proxy.mode.value}: say mode: ipvs"
            " there, so that the node's Service addresses sit on kube-ipvs0 as on the node"
        )
    warnings = _set_warnings(ruleset, parsed_sets, node, source) + nft_said
    if nft is not None:
        warnings += nft.warnings
    ruleset = ruleset.model_copy(update={"warnings": warnings})
    return NodeDump(
        node,
        rules_text,
        ruleset,
        False,
        parsed_sets,
        known.kube_proxy_version,
        nft_text=parts.nft if nft is not None else "",
        nft=nft,
        ipvs=ipvs,
    )


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


def shown_mode(dumps: Mapping[str, NodeDump]) -> tuple[str, ProxyMode] | None:
    """The kube-proxy mode a node's own rules show, where they show one the iptables text
    cannot: nftables mode, by kube-proxy's `ip kube-proxy` table (node, mode)."""
    for node, dump in dumps.items():
        if dump.nft is not None and dump.nft.table("ip", "kube-proxy") is not None:
            return node, ProxyMode.NFTABLES
    return None
