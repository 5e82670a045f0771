"""A trace for other places: Markdown for docs, Graphviz dot of the path, and the
commands that confirm it on the live cluster.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from model.packet import Proto
from model.trace import Direction, Hop, HopKind, Trace
from sim.trace.challenge import Question
from sim.trace.report import hop_number, hop_title, packet_line
from sim.trace.summary import summarize, summary_lines

__all__ = ["questions_text", "reproduce_commands", "trace_dot", "trace_markdown"]


def _md(text: str) -> str:
    """`text` safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def trace_markdown(trace: Trace) -> str:
    """The trace as a Markdown section: a table of hops and the verdict."""
    lines = [
        f"### `kubehop trace {trace.source} {trace.destination} --seed {trace.seed}`",
        "",
        f"**{trace.verdict.value.upper()}**: {trace.reason}",
        "",
    ]
    if trace.rule:
        lines += [f"Rule: `{trace.rule}`", ""]
    lines += [
        "| # | µs | direction | where | what happened | packet after |",
        "|---|---|---|---|---|---|",
    ]
    for hop in trace.hops:
        what = _md(hop.sentence)
        if hop.detail:
            what += f"<br>`{_md(hop.detail)}`"
        lines.append(
            f"| {hop_number(hop)} | {hop.t_us} | {hop.direction.value} | {_md(hop_title(hop))} | {what} |"
            f" `{_md(packet_line(hop.after))}` |"
        )
    if trace.warnings:
        lines += ["", "Warnings:", ""] + [f"- {_md(w)}" for w in trace.warnings]
    lines += ["", "Summary:", ""] + [_md_item(line) for line in summary_lines(summarize(trace))[1:]]
    return "\n".join(lines) + "\n"


def _md_item(line: str) -> str:
    """A summary line (indented by two spaces per level) as a Markdown list item."""
    text = line.lstrip(" ")
    depth = (len(line) - len(text)) // 2 - 1
    return "  " * depth + f"- {text}"


def questions_text(questions: Sequence[Question], *, markdown: bool = False) -> str:
    """Challenge mode's questions as an answer key: each with the hop it is asked before, its
    lettered choices, and the answer with its explanation."""
    if not questions:
        return "questions: none for this trace\n"
    lines = ["Questions (challenge mode):" if markdown else "questions (challenge mode):", ""]
    for number, q in enumerate(questions, start=1):
        lines.append(
            f"{number}. before hop {q.before + 1}: {_md(q.prompt) if markdown else q.prompt}"
        )
        for letter, choice in zip("abcd", q.choices, strict=False):
            lines.append(f"   {letter}) {_md(choice) if markdown else choice}")
        right = f"{'abcd'[q.answer]}) {q.choices[q.answer]}"
        why = q.explanation.split(": ", 1)[-1]
        lines.append(f"   answer: {right}. {why[:1].upper()}{why[1:]}")
        lines.append("")
    return "\n".join(lines)


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def trace_dot(trace: Trace) -> str:
    """The path as a Graphviz digraph: one cluster per node, one edge per hop."""
    places: dict[str, str | None] = {}
    for hop in trace.hops:
        places.setdefault(hop.where.netns, hop.where.node)
    lines = [
        "digraph kubehop {",
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace"];',
        f"  label={_dot_id(f'{trace.source} → {trace.destination}: {trace.verdict.value}')};",
    ]
    by_node: dict[str | None, list[str]] = {}
    for netns, node in places.items():
        by_node.setdefault(node, []).append(netns)
    for number, (node, members) in enumerate(by_node.items()):
        if node is None:
            lines += [f"  {_dot_id(n)};" for n in members]
            continue
        lines.append(f"  subgraph cluster_{number} {{")
        lines.append(f"    label={_dot_id(node)};")
        lines += [f"    {_dot_id(n)};" for n in members]
        lines.append("  }")
    previous: Hop | None = None
    for hop in trace.hops:
        if previous is not None and previous.where.netns != hop.where.netns:
            style = "solid" if hop.direction is Direction.REQUEST else "dashed"
            label = f"{hop_number(hop)}: {packet_line(hop.before).split(' ttl')[0]}"
            lines.append(
                f"  {_dot_id(previous.where.netns)} -> {_dot_id(hop.where.netns)}"
                f" [label={_dot_id(label)}, style={style}];"
            )
        if hop.kind is HopKind.DROP:
            lines.append(
                f"  {_dot_id(hop.where.netns)} [color=red, xlabel={_dot_id('✗ ' + trace.verdict.value)}];"
            )
        previous = hop
    lines.append("}")
    return "\n".join(lines) + "\n"


def reproduce_commands(trace: Trace, *, container: str | None = None) -> str:
    """Shell commands to watch this flow on the live cluster and compare with the trace.

    First the capture on each node the request crosses (the TRACE rules log
    every rule the first packet passes: iptables-nft shows them with
    `xtables-monitor --trace`, iptables-legacy writes them to the kernel log;
    `conntrack -E` shows the NAT mapping as it is made; tcpdump the packet on
    each interface), then the request, then removing the TRACE rules.
    `container` is the source pod's, for `kubectl exec -c` (give it when the
    pod has several, or kubectl picks its default). Interface names are
    kubehop's: on a node, `ip route get POD_IP` names the real veth.
    """
    # These lines are pasted into a root shell, and the names in them come from
    # a cluster file (a CNIConfig's bridge `x;reboot;` is a valid interface
    # name): every value is quoted as the shell needs, and comments stay on one line.
    first = trace.hops[0].before
    proto = first.proto.value
    source, _, traced_container = trace.source.partition(" -c ")
    again = ["kubehop", "trace", source, trace.destination]
    if traced_container:
        again += ["-c", traced_container]
    lines = [_comment(f"Confirm `{_command(*again)} --seed {trace.seed}` on the cluster.")]
    # Per node, the interfaces the request crossed and the packet as it was there.
    nodes: dict[str, dict[str, tuple[str, int]]] = {}
    arriving: dict[str, tuple[object, ...]] = {}
    output_hook: set[str] = set()
    for hop in trace.hops:
        node = hop.where.node
        if node is None or hop.where.netns != node or hop.direction is not Direction.REQUEST:
            continue
        seen = nodes.setdefault(node, {})
        # TRACE must match the packet as it reaches this node (after any DNAT before it).
        pkt = hop.before
        arriving.setdefault(node, ("-p", proto, "-s", pkt.src, "-d", pkt.dst, "--dport", pkt.dport))
        if hop.where.interface and hop.where.interface not in seen:
            seen[hop.where.interface] = (str(hop.after.dst), hop.after.dport)
        if hop.where.hook is not None and hop.where.hook.value == "OUTPUT":
            output_hook.add(node)

    def chains(node: str) -> list[str]:
        return ["PREROUTING"] + (["OUTPUT"] if node in output_hook else [])

    for node, interfaces in nodes.items():
        ssh = _command("ssh", node)
        lines += [
            "",
            _comment(f"1. on {node} ({ssh}, as root), before sending; each watcher runs until"),
            "#    Ctrl-C, so start each in a terminal of its own:",
        ]
        for chain in chains(node):
            lines.append(
                _command("iptables", "-t", "raw", "-I", chain, *arriving[node], "-j", "TRACE")
            )
        lines.append(
            "xtables-monitor --trace   # iptables-nft; with iptables-legacy: dmesg -w | grep TRACE"
        )
        # Conntrack keys an entry by the packet as this node first saw it.
        dst, dport = arriving[node][5], arriving[node][7]
        lines.append(
            _command("conntrack", "-E", "-p", proto, "-d", dst, "--dport", dport)
            + "   # the connection as conntrack records it, NAT included"
        )
        for interface, (dst, dport) in interfaces.items():
            lines.append(
                _command("tcpdump", "-ni", interface, f"{proto} and host {dst} and port {dport}")
            )
    lines += ["", *_send(trace, container)]
    for node in nodes:
        lines += ["", _comment(f"3. afterwards, on {node}, remove the TRACE rules:")]
        for chain in chains(node):
            lines.append(
                _command("iptables", "-t", "raw", "-D", chain, *arriving[node], "-j", "TRACE")
            )
    lines += [
        "",
        _comment(f"kubehop expects: {trace.verdict.value.upper()}: {trace.reason}"),
        "# (interface names are kubehop's; on a node `ip route get <pod IP>` names the real veth)",
    ]
    return "\n".join(lines) + "\n"


def _send(trace: Trace, container: str | None) -> list[str]:
    """The request, sent from where the trace starts."""
    first = trace.hops[0].before
    nc = ["nc", "-vz" if first.proto is Proto.TCP else "-vzu", "-w", "2", first.dst, first.dport]
    where = trace.hops[0].where
    if where.netns.startswith("pod/"):
        ns, _, pod = where.netns.removeprefix("pod/").partition("/")
        exec_in = ["-c", container] if container else []
        return [
            "# 2. send the request (from your machine):",
            _command("kubectl", "exec", "-n", ns, pod, *exec_in, "--", *nc),
        ]
    if where.node is not None and where.netns == where.node:
        return [
            _comment(f"2. send the request from {where.node}:"),
            _command("ssh", where.node, "--", *nc),
        ]
    client = where.netns.removeprefix("client/")
    return [_comment(f"2. send the request from {client} ({first.src}):"), _command(*nc)]


def _command(*argv: object) -> str:
    """One shell command line, each argument quoted where the shell would split or act on it."""
    return shlex.join(str(arg) for arg in argv)


def _comment(text: str) -> str:
    """A shell comment that stays one line, whatever names `text` holds."""
    return "# " + " ".join(text.splitlines())
