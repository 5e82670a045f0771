"""A trace as text for a terminal or a file, and as JSON following the published schema."""

from __future__ import annotations

import json
from typing import Any

from model.packet import PORTLESS, Packet
from model.trace import Hop, HopKind, Trace, Verdict
from sim.kernel.mtu import size_text
from sim.trace.effects import Effect, hop_effect, trace_effects
from sim.trace.summary import TraceSummary, summarize, summary_lines

SYMBOLS: dict[HopKind, str] = {
    HopKind.DNS: "?",
    HopKind.SEND: ">",
    HopKind.ROUTE: "R",
    HopKind.NETFILTER: "#",
    HopKind.LOOPBACK: "o",
    HopKind.VETH: "=",
    HopKind.BRIDGE: "B",
    HopKind.WIRE: "~",
    HopKind.RECEIVE: "<",
    HopKind.DELIVER: "*",
    HopKind.DROP: "X",
    HopKind.UNKNOWN: "U",
    HopKind.ENCAP: "(",
    HopKind.DECAP: ")",
}
"""One character per hop kind, so a trace reads without colour."""


def packet_line(pkt: Packet) -> str:
    """`192.168.1.2:41234 → 10.101.100.102:80 tcp ttl 64` (`10.0.0.11 → 10.0.0.12 ipencap`:
    IP-in-IP has no ports)."""
    if pkt.proto in PORTLESS:
        text = f"{pkt.src} → {pkt.dst} {pkt.proto.value} ttl {pkt.ttl}"
    else:
        text = f"{pkt.src}:{pkt.sport} → {pkt.dst}:{pkt.dport} {pkt.proto.value} ttl {pkt.ttl}"
    if pkt.mark:
        text += f" mark {pkt.mark:#x}"
    if pkt.src_mac:
        text += f"  [{pkt.src_mac} → {pkt.dst_mac}]"
    return text


def hop_number(hop: Hop) -> int:
    """The hop's number as a person reads it, from 1, as the app counts `5/22`.

    The JSON's `seq` is the hop's index, from 0.
    """
    return hop.seq + 1


def hop_title(hop: Hop) -> str:
    """`node-a cni0 PREROUTING`: where the hop happens."""
    where = hop.where
    parts = [where.netns]
    if where.interface:
        parts.append(where.interface)
    if where.hook:
        parts.append(where.hook.value)
    return " ".join(parts)


def hop_text(hop: Hop, verdict: Verdict | None = None) -> str:
    """A hop as a few indented lines, headed by what it did (`DNAT`, `BRIDGE`, `UN-NAT`).

    `verdict` is the trace's, which tells a refused connection from a drop.
    """
    changed = hop.changed
    lines = [
        f"{hop_number(hop):>3} {SYMBOLS[hop.kind]} {hop.t_us:>6}µs {hop.direction.value:<7} "
        f"{hop_effect(hop, verdict).label:<7} {hop_title(hop)}",
        f"      {hop.sentence}",
    ]
    if hop.detail:
        lines.append(f"      {hop.detail}")
    if changed:
        lines.append(f"      before: {packet_line(hop.before)}")
        lines.append(f"      after:  {packet_line(hop.after)}   (changed: {', '.join(changed)})")
    else:
        lines.append(f"      packet: {packet_line(hop.after)}")
    size = _size_line(hop)
    if size is not None:
        lines.append(f"      size: {size}")
    if hop.conntrack is not None:
        lines.append(f"      conntrack: {hop.conntrack}")
    if hop.note:
        lines.append(f"      note: {hop.note}")
    return "\n".join(lines)


_SIZE_FIELDS = frozenset({"length", "df", "mf", "datagram", "frag_max", "mss"})
"""The packet fields a size line speaks of."""


def _size_line(hop: Hop) -> str | None:
    """The packet's size where it matters: where a packet is sent, wrapped or unwrapped,
    and where its size, DF or fragments change (`1500 bytes, DF`)."""
    changed = _SIZE_FIELDS & set(hop.changed)
    if changed:
        return f"{size_text(hop.before)} → {size_text(hop.after)}"
    if hop.kind in (HopKind.SEND, HopKind.ENCAP, HopKind.DECAP) or hop.after.mf:
        return size_text(hop.after)
    return None


def trace_text(trace: Trace) -> str:
    """The whole trace: a header, every hop, and the verdict."""
    lines = [
        f"kubehop trace {trace.source} → {trace.destination}   (seed {trace.seed})",
        "",
    ]
    lines += [hop_text(hop, trace.verdict) for hop in trace.hops]
    lines.append("")
    if trace.warnings:
        lines += [f"warning: {w}" for w in trace.warnings]
    lines.append(f"verdict: {trace.verdict.value.upper()}: {trace.reason}")
    lines += ["", *summary_lines(summarize(trace))]
    return "\n".join(lines) + "\n"


def trace_dict(trace: Trace) -> dict[str, Any]:
    """The trace as JSON-ready data (see `kubehop schema`): the model, each hop's effect, and
    the summary (both derived, so a reader of the model drops them)."""
    data = trace.model_dump(mode="json")
    data["hops"] = [
        _with_effect(hop, effect)
        for hop, effect in zip(data["hops"], trace_effects(trace), strict=True)
    ]
    data["summary"] = summarize(trace).model_dump(mode="json")
    return data


def _with_effect(hop: dict[str, Any], effect: Effect) -> dict[str, Any]:
    """`hop` with `effect` after its `kind`, where a reader looks for it."""
    out: dict[str, Any] = {}
    for key, value in hop.items():
        out[key] = value
        if key == "kind":
            out["effect"] = effect.value
    return out


def trace_json(trace: Trace) -> str:
    """The trace as JSON text, stable key order, byte-for-byte reproducible for a seed."""
    return json.dumps(trace_dict(trace), indent=2, ensure_ascii=False) + "\n"


def trace_schema() -> dict[str, Any]:
    """The JSON Schema `--json` output follows."""
    schema = Trace.model_json_schema()
    _add_effect(schema)
    _add_summary(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://kubehop.dev/schema/trace.schema.json"
    return schema


def _add_effect(schema: dict[str, Any]) -> None:
    """Declare the `effect` each hop carries in JSON (derived, so not a field of the model)."""
    hop = schema["$defs"]["Hop"]
    properties: dict[str, Any] = {}
    for key, value in hop["properties"].items():
        properties[key] = value
        if key == "kind":
            properties["effect"] = {
                "$ref": "#/$defs/Effect",
                "description": "What the hop did: the kind's effect, or for netfilter the"
                " rewrite (dnat, snat, masquerade, unnat) and for a drop the cause (reject,"
                " refused); the text report's header shows it",
            }
    hop["properties"] = properties
    required = hop["required"]
    required.insert(required.index("kind") + 1, "effect")
    schema["$defs"]["Effect"] = {
        "description": Effect.__doc__,
        "enum": [effect.value for effect in Effect],
        "title": "Effect",
        "type": "string",
    }
    schema["$defs"] = dict(sorted(schema["$defs"].items()))


def _add_summary(schema: dict[str, Any]) -> None:
    """Declare the optional `summary` the JSON carries (derived from the hops, so not a field
    of the model; older output without it stays valid)."""
    summary = TraceSummary.model_json_schema(ref_template="#/$defs/{model}")
    for name, definition in summary.pop("$defs", {}).items():
        schema["$defs"].setdefault(name, definition)
    schema["$defs"]["TraceSummary"] = summary
    schema["properties"]["summary"] = {
        "$ref": "#/$defs/TraceSummary",
        "description": "What the trace came to: NAT and where it was undone, the rules that"
        " decided, the nodes and tunnels crossed, how a refusal was answered; the text"
        " report ends with it",
    }
    schema["$defs"] = dict(sorted(schema["$defs"].items()))
