"""A trace as text for a terminal or a file, and as JSON following the published schema."""

from __future__ import annotations

import json
from typing import Any

from model.packet import Packet
from model.trace import Hop, HopKind, Trace

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
    """`192.168.1.2:41234 → 10.101.100.102:80 tcp ttl 64`."""
    text = f"{pkt.src}:{pkt.sport} → {pkt.dst}:{pkt.dport} {pkt.proto.value} ttl {pkt.ttl}"
    if pkt.mark:
        text += f" mark {pkt.mark:#x}"
    if pkt.src_mac:
        text += f"  [{pkt.src_mac} → {pkt.dst_mac}]"
    return text


def hop_title(hop: Hop) -> str:
    """`node-a cni0 PREROUTING`: where the hop happens."""
    where = hop.where
    parts = [where.netns]
    if where.interface:
        parts.append(where.interface)
    if where.hook:
        parts.append(where.hook.value)
    return " ".join(parts)


def hop_text(hop: Hop) -> str:
    """A hop as a few indented lines."""
    changed = hop.changed
    lines = [
        f"{hop.seq:>3} {SYMBOLS[hop.kind]} {hop.t_us:>6}µs {hop.direction.value:<7} "
        f"{hop.kind.value.upper():<9} {hop_title(hop)}",
        f"      {hop.sentence}",
    ]
    if hop.detail:
        lines.append(f"      {hop.detail}")
    if changed:
        lines.append(f"      before: {packet_line(hop.before)}")
        lines.append(f"      after:  {packet_line(hop.after)}   (changed: {', '.join(changed)})")
    else:
        lines.append(f"      packet: {packet_line(hop.after)}")
    if hop.conntrack is not None:
        lines.append(f"      conntrack: {hop.conntrack}")
    if hop.note:
        lines.append(f"      note: {hop.note}")
    return "\n".join(lines)


def trace_text(trace: Trace) -> str:
    """The whole trace: a header, every hop, and the verdict."""
    lines = [
        f"kubehop trace {trace.source} → {trace.destination}   (seed {trace.seed})",
        "",
    ]
    lines += [hop_text(hop) for hop in trace.hops]
    lines.append("")
    if trace.warnings:
        lines += [f"warning: {w}" for w in trace.warnings]
    lines.append(f"verdict: {trace.verdict.value.upper()}: {trace.reason}")
    return "\n".join(lines) + "\n"


def trace_dict(trace: Trace) -> dict[str, Any]:
    """The trace as JSON-ready data (see `kubehop schema`)."""
    return trace.model_dump(mode="json")


def trace_json(trace: Trace) -> str:
    """The trace as JSON text, stable key order, byte-for-byte reproducible for a seed."""
    return json.dumps(trace_dict(trace), indent=2, ensure_ascii=False) + "\n"


def trace_schema() -> dict[str, Any]:
    """The JSON Schema `--json` output follows."""
    schema = Trace.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://kubehop.dev/schema/trace.schema.json"
    return schema
