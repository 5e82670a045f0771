"""One request traced under several kube-proxy modes, hop by hop, with where they differ.

`kubehop compare pod1 svc-b:80 --modes iptables,nftables` traces the same
request (same source port, same seed) in each mode. Each mode draws its
endpoint its own way (iptables mode's chain of `-m statistic` rules,
nftables mode's one `numgen`), so left alone the modes would often pick
different endpoints and differ everywhere after the DNAT for no reason of
their own; unless the request pins one, the endpoint the first mode drew is
pinned in the others, and the comparison says so.

The traces are lined up hop by hop by what each hop is (direction, kind,
where and hook), as a diff lines up lines: a hop only one mode has (IPVS's
extra LOCAL_IN, say) stands alone; hops in the same place are the same when
they say the same thing, else they differ, which is the point of the view.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from model.cluster import Cluster
from model.errors import RequestError
from model.trace import Hop, Trace
from sim.cluster.load import with_mode
from sim.trace.effects import hop_effect
from sim.trace.report import hop_number, hop_title, packet_line, trace_dict
from sim.trace.request import Request
from sim.trace.tracer import trace

__all__ = [
    "Comparison",
    "Row",
    "compare",
    "comparison_json",
    "comparison_markdown",
    "comparison_text",
]


@dataclass(frozen=True)
class Row:
    """One place on the path, and each mode's hop there (None: that mode has none)."""

    hops: tuple[Hop | None, ...]
    """One per mode, in the comparison's order."""

    @property
    def same(self) -> bool:
        """Every mode has this hop and says the same thing about it."""
        present = [h for h in self.hops if h is not None]
        if len(present) != len(self.hops):
            return False
        first = present[0]
        return all(_said(h) == _said(first) for h in present[1:])

    @property
    def first(self) -> Hop:
        """A hop of the row, to name where it is."""
        return next(h for h in self.hops if h is not None)


@dataclass(frozen=True)
class Comparison:
    """The traces of one request in each mode, lined up."""

    modes: tuple[str, ...]
    """The modes, in the order asked for."""
    traces: tuple[Trace, ...]
    """One trace per mode."""
    rows: tuple[Row, ...]
    """The hops lined up."""
    pinned: str | None
    """The endpoint pinned in the later modes, drawn by the first (None: the request pinned
    one itself, or there was none to pin)."""

    @property
    def differing(self) -> tuple[Row, ...]:
        """The rows where the modes differ."""
        return tuple(row for row in self.rows if not row.same)


def _key(hop: Hop) -> tuple[str, str, str, str]:
    # At a hook, the place alone: one mode's rules may let the packet pass where
    # another's reject it, and that is the difference to show side by side.
    where = hop.where
    what = where.hook.value if where.hook is not None else hop.kind.value
    return (hop.direction.value, what, where.netns, where.interface or "")


def _said(hop: Hop) -> tuple[str, str, str]:
    return (hop.sentence, packet_line(hop.after), str(hop.conntrack))


def _line_up(traces: Sequence[Trace]) -> tuple[Row, ...]:
    """Rows of hops, the first trace's order kept, every other trace matched against it."""
    rows: list[list[Hop | None]] = [[hop] for hop in traces[0].hops]
    for column, other in enumerate(traces[1:], start=1):
        base = [next(h for h in row if h is not None) for row in rows]
        matcher = difflib.SequenceMatcher(
            a=[_key(h) for h in base], b=[_key(h) for h in other.hops], autojunk=False
        )
        merged: list[list[Hop | None]] = []
        for op, a0, a1, b0, b1 in matcher.get_opcodes():
            if op == "equal":
                for i, j in zip(range(a0, a1), range(b0, b1), strict=True):
                    merged.append([*rows[i], other.hops[j]])
                continue
            merged += [[*rows[i], None] for i in range(a0, a1)]
            merged += [[*([None] * column), other.hops[j]] for j in range(b0, b1)]
        rows = merged
    return tuple(Row(tuple(row)) for row in rows)


def compare(cluster: Cluster, request: Request, modes: Sequence[str]) -> Comparison:
    """Trace `request` in each of `modes` (kube-proxy's, as `--mode` names them)."""
    if len(modes) < 2:
        raise RequestError("--modes: name at least two modes to compare, e.g. iptables,nftables")
    if len(set(modes)) != len(modes):
        raise RequestError(f"--modes {','.join(modes)}: a mode is named twice")
    clusters = [with_mode(cluster, mode) for mode in modes]
    first = trace(clusters[0], request)
    pinned: str | None = None
    later = replace(request, seed=first.seed)
    if request.pick is None and first.endpoint is not None:
        pinned = first.endpoint
        later = replace(later, pick=pinned)
    traces = [first, *(trace(c, later) for c in clusters[1:])]
    return Comparison(tuple(modes), tuple(traces), _line_up(traces), pinned)


def _header(result: Comparison) -> list[str]:
    first = result.traces[0]
    lines = [
        f"kubehop compare {first.source} → {first.destination}   (seed {first.seed};"
        f" modes {', '.join(result.modes)})"
    ]
    if result.pinned is not None:
        lines.append(
            f"endpoint {result.pinned}: drawn in {result.modes[0]} mode, pinned in the others so"
            " that the paths compare"
        )
    return lines


def _verdicts(result: Comparison) -> list[str]:
    return [
        f"{mode:<9} {t.verdict.value.upper()}: {t.reason}"
        for mode, t in zip(result.modes, result.traces, strict=True)
    ]


def _aspect(row: Row) -> tuple[str, Callable[[Hop], str]]:
    """What to show of each mode's hop in a row that differs: the sentence, or where every
    mode said the same words, the part that differs (the packet, the conntrack entry)."""
    present = [h for h in row.hops if h is not None]
    if len(present) < len(row.hops) or len({h.sentence for h in present}) > 1:
        return "", lambda hop: hop.sentence
    if len({packet_line(h.after) for h in present}) > 1:
        return "packet", lambda hop: f"packet: {packet_line(hop.after)}"
    return "conntrack entry", lambda hop: f"conntrack: {hop.conntrack}"


def _effects(row: Row) -> str:
    """`DNAT`, or `HOOK/REJECT` where the modes did different things there."""
    labels = [hop_effect(h).label for h in row.hops if h is not None]
    return "/".join(dict.fromkeys(labels))


def comparison_text(result: Comparison) -> str:
    """The comparison for a terminal: every place on the path, each mode's account of it where
    the modes differ, then each mode's verdict."""
    width = max(len(m) for m in result.modes)
    lines = [*_header(result), ""]
    for row in result.rows:
        hop = row.first
        place = f"{hop.direction.value:<7} {_effects(row):<10} {hop_title(hop)}"
        if row.same:
            lines.append(f"  = {place}   (the same in every mode)")
            continue
        aspect, show = _aspect(row)
        lines.append(
            f"  ≠ {place}" + (f"   (the same words; the {aspect} differs)" if aspect else "")
        )
        for mode, mine in zip(result.modes, row.hops, strict=True):
            said = "(no such hop)" if mine is None else f"#{hop_number(mine)} {show(mine)}"
            lines.append(f"      {mode:<{width}}  {said}")
    lines += ["", f"{len(result.differing)} of {len(result.rows)} hops differ", *_verdicts(result)]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def comparison_markdown(result: Comparison) -> str:
    """The comparison as a Markdown table: one row per place on the path, one column per mode."""
    lines = [f"**{_cell(line)}**" for line in _header(result)]
    lines += [
        "",
        "| hop | " + " | ".join(result.modes) + " |",
        "|---|" + "---|" * len(result.modes),
    ]
    for row in result.rows:
        hop = row.first
        where = f"{hop.direction.value} {_effects(row)} · {hop_title(hop)}"
        if row.same:
            cells = ["same"] * len(result.modes)
        else:
            cells = ["—" if h is None else _cell(h.sentence) for h in row.hops]
        lines.append(f"| {_cell(where)} | " + " | ".join(cells) + " |")
    lines += ["", *[f"- {_cell(line)}" for line in _verdicts(result)]]
    return "\n".join(lines) + "\n"


def comparison_dict(result: Comparison) -> dict[str, Any]:
    """The comparison as JSON-ready data: each mode's whole trace, and the rows as indexes."""
    return {
        "modes": list(result.modes),
        "pinned": result.pinned,
        "traces": {m: trace_dict(t) for m, t in zip(result.modes, result.traces, strict=True)},
        "rows": [
            {
                "same": row.same,
                "direction": row.first.direction.value,
                "effect": hop_effect(row.first).value,
                "where": hop_title(row.first),
                "seq": {
                    m: (h.seq if h is not None else None)
                    for m, h in zip(result.modes, row.hops, strict=True)
                },
            }
            for row in result.rows
        ],
    }


def comparison_json(result: Comparison) -> str:
    """`comparison_dict` as JSON text."""
    return json.dumps(comparison_dict(result), indent=2, ensure_ascii=False) + "\n"
