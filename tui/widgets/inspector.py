"""The packet inspector: the packet before and after the current hop, changes highlighted.

A plain packet is a table of fields, before and after. A packet inside a tunnel
(VXLAN, IP-in-IP) is shown as Wireshark shows a capture, one line a header from
the outside in: the outer Ethernet, IPv4, UDP and VXLAN headers, then the frame
they carry, indented; at the hop that wraps it the outer headers are marked
added (+), at the hop that unwraps it removed (−).
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from model.frozen import frozen
from model.packet import ConntrackEntry, ConntrackTuple, CtState, Packet, Proto
from model.trace import Hop, TableWalk
from tui.hopstyle import Badge, literal

# (layer, field, label): the rows of the before/after table, L2 to L4.
_ROWS: tuple[tuple[str, str, str], ...] = (
    ("L2", "src_mac", "src MAC"),
    ("", "dst_mac", "dst MAC"),
    ("L3", "src", "src IP"),
    ("", "dst", "dst IP"),
    ("", "ttl", "TTL"),
    ("L4", "proto", "proto"),
    ("", "sport", "sport"),
    ("", "dport", "dport"),
    ("", "tcp_flags", "flags"),
    ("", "mark", "mark"),
)


_PROTO_NUMBERS = {Proto.TCP: 6, Proto.UDP: 17, Proto.SCTP: 132, Proto.IPIP: 4, Proto.ICMP: 1}
"""The IPv4 header's protocol field, as Wireshark shows it beside the name."""


def _depth(packet: Packet) -> int:
    """How many tunnel headers `packet` is inside of (0 for a plain packet)."""
    return 0 if packet.inner is None else 1 + _depth(packet.inner)


def _levels(packet: Packet) -> list[Packet]:
    """`packet` and the packets inside it, from the outside in."""
    found = [packet]
    while found[-1].inner is not None:
        inner = found[-1].inner
        assert inner is not None
        found.append(inner)
    return found


def _mac(value: str | None) -> str:
    return value or "—"


def headers(packet: Packet, *, outermost: bool) -> list[tuple[str, str, tuple[str, ...]]]:
    """`packet`'s own headers, one line each as Wireshark lists them: (layer, what it says,
    the `Packet` fields it shows). A packet inside IP-in-IP has no Ethernet header; the
    outermost one not framed yet (before its route's link) says so."""
    found: list[tuple[str, str, tuple[str, ...]]] = []
    macs = ("src_mac", "dst_mac")
    if packet.src_mac or packet.dst_mac:
        found.append(("Eth", f"{_mac(packet.src_mac)} → {_mac(packet.dst_mac)}", macs))
    elif outermost:
        found.append(("Eth", "not framed yet: the next link frames it", macs))
    number = _PROTO_NUMBERS.get(packet.proto)
    proto = f"{packet.proto.value} ({number})" if number is not None else packet.proto.value
    found.append(
        (
            "IPv4",
            f"{packet.src} → {packet.dst} {proto} ttl {packet.ttl}",
            ("src", "dst", "ttl", "proto"),
        )
    )
    if packet.proto is Proto.TCP:
        flags = f"  [{packet.tcp_flags}]" if packet.tcp_flags else ""
        found.append(
            ("TCP", f"{packet.sport} → {packet.dport}{flags}", ("sport", "dport", "tcp_flags"))
        )
    elif packet.proto in (Proto.UDP, Proto.SCTP):
        found.append((packet.proto.name, f"{packet.sport} → {packet.dport}", ("sport", "dport")))
    elif packet.proto is Proto.ICMP:
        # kubehop sends ICMP only as a destination unreachable error (after a REJECT, to a
        # closed port); which code, the hop's Decision says.
        found.append(("ICMP", "type 3 destination unreachable, quoting:", ()))
    if packet.vni is not None:
        found.append(("VXLAN", f"VNI {packet.vni}", ("vni",)))
    return found


def _tunnel(packet: Packet) -> str:
    """What kind of tunnel header `packet` is (its outermost)."""
    if packet.vni is not None:
        return "VXLAN"
    if packet.proto is Proto.IPIP:
        return "IP-in-IP"
    return "a tunnel header"


class ConntrackView(Protocol):
    """A hop's conntrack entry in its netns before and after the hop, as the core worked it out."""

    @property
    def before(self) -> ConntrackEntry | None:
        """The entry as the packet found it (None: no entry yet in this netns)."""

    @property
    def after(self) -> ConntrackEntry | None:
        """The entry as the packet leaves the hop."""

    @property
    def at_hook(self) -> bool:
        """The hop is a netfilter hook, the only place the entry can change."""

    @property
    def changed(self) -> frozenset[str]:
        """What the hop changed: `state`, `nat`, `mark`, `confirmed`, `reply`, or `new`."""


@frozen
class _AsItStands:
    """A hop's own entry, for a hop shown without its trace: nothing to compare it with."""

    before: ConntrackEntry | None
    after: ConntrackEntry | None
    at_hook: bool = True
    changed: frozenset[str] = frozenset()


def _value(packet: Packet, name: str) -> str:
    value = getattr(packet, name)
    if value is None:
        return "—"
    if name == "mark":
        return f"{value:#x}"
    return literal(value)


def _endpoint(t: ConntrackTuple) -> str:
    return f"{t.src}:{t.sport} → {t.dst}:{t.dport}"


def walk_line(walk: TableWalk) -> str:
    """`nat: PREROUTING 1 → KUBE-SERVICES 1-4 → … ⇒ DNAT`, one table's walk."""
    if walk.skipped:
        return f"{walk.table.value}: skipped — {walk.skipped}"
    spans = " → ".join(
        f"{s.chain} {s.first}"
        if s.first == s.last
        else (f"{s.chain} (empty)" if s.last < s.first else f"{s.chain} {s.first}–{s.last}")
        for s in walk.spans
    )
    return f"{walk.table.value}: {spans} ⇒ {walk.verdict}"


class PacketInspector(VerticalScroll):
    """L2/L3/L4 fields before and after the hop, the conntrack entry, the tables walked.

    Each part is its own line of widgets, so when the pane is too short for them
    all (80×24) a line at the bottom names the parts below the fold.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"-heading", "-layer", "-changed", "-same", "-dim"}

    DEFAULT_CSS = """
    PacketInspector {
        padding: 0 1;
        /* The line at the bottom says what is below; a scrollbar beside the
           explanation's would read as two. */
        scrollbar-size-vertical: 0;
    }

    PacketInspector > Static {
        width: 1fr;
    }

    PacketInspector > #inspector-more {
        dock: bottom;
        display: none;
        height: 1;
        background: $boost;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }

    PacketInspector > #inspector-more.-shown {
        display: block;
    }

    PacketInspector > .-heading {
        text-style: bold;
        color: $accent;
    }

    PacketInspector > .-layer {
        color: $dim-text;
        text-style: bold;
    }

    PacketInspector > .-changed {
        color: $changed;
        text-style: bold;
    }

    PacketInspector > .-same {
        color: $dim-text;
    }

    PacketInspector > .-dim {
        color: $faint-text;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.hop: Hop | None = None
        """The hop inspected."""
        self.badge: Badge | None = None
        """What the hop did (DNAT, MASQ, ENCAP…), as the screen was told."""
        self._conntrack: ConntrackView | None = None
        self._ready = False
        # Set on mount (`is_mounted` is set only after the mount handlers have run).

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(id="inspector-body")
        yield Static(id="inspector-conntrack")
        yield Static(id="inspector-tables")
        yield Static(id="inspector-decision")
        yield Static(id="inspector-more")

    def on_mount(self) -> None:
        self._ready = True
        self._draw()

    def show(self, hop: Hop, conntrack: ConntrackView, badge: Badge) -> None:
        """Inspect `hop`, whose netns's conntrack entry the core gives as `conntrack`, and
        which did what `badge` says."""
        self.hop = hop
        self.badge = badge
        self._conntrack = conntrack
        self._draw()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._draw()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._say_what_is_below()

    def on_resize(self) -> None:
        self.call_after_refresh(self._say_what_is_below)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True, default=Style())

    def _draw(self) -> None:
        if not self._ready:
            return  # drawn on mount
        hop = self.hop
        parts: dict[str, RenderableType | None] = {
            "#inspector-body": self._render_hop(),
            "#inspector-conntrack": None,
            "#inspector-tables": None,
            "#inspector-decision": None,
        }
        if hop is not None:
            view = self._conntrack
            if view is None:  # shown without a trace: the hop's own entry
                view = _AsItStands(hop.conntrack, hop.conntrack)
            parts["#inspector-conntrack"] = self._conntrack_part(view)
            if hop.tables:
                parts["#inspector-tables"] = Group(
                    Text("Tables walked", self._style("-heading")),
                    *(Text(literal(walk_line(w))) for w in hop.tables),
                )
            if hop.detail:
                parts["#inspector-decision"] = Group(
                    Text("Decision", self._style("-heading")), Text(literal(hop.detail))
                )
        for selector, part in parts.items():
            widget = self.query_one(selector, Static)
            widget.display = part is not None
            if part is not None:
                widget.update(part)
        self.call_after_refresh(self._say_what_is_below)

    def _say_what_is_below(self) -> None:
        """Name the parts whose first line is below the fold (`↓ Conntrack · Decision`)."""
        if not self._ready:
            return
        more = self.query_one("#inspector-more", Static)
        # The line itself covers the last row.
        bottom = self.scroll_y + self.scrollable_content_region.height - 1
        below = [
            name
            for selector, name in (
                ("#inspector-conntrack", self._conntrack_title()),
                ("#inspector-tables", "Tables walked"),
                ("#inspector-decision", "Decision"),
            )
            if (part := self.query_one(selector)).display and part.virtual_region.y >= bottom
        ]
        # At the end, the last row must not stay covered.
        shown = self.scroll_y < self.max_scroll_y
        more.set_class(shown, "-shown")
        if shown:
            what = f"below: {' · '.join(below)}" if below else "more below"
            more.update(Text(f"↓ {what}", no_wrap=True))

    def _conntrack_title(self) -> str:
        entry = self._conntrack.after if self._conntrack is not None else None
        if entry is None:
            return "Conntrack"
        return f"Conntrack {_state(entry)}"

    def _render_hop(self) -> RenderableType:
        hop = self.hop
        if hop is None:
            return Text("No trace yet: press p to pick a source and a destination.")
        changed = set(hop.changed)
        heading = Text(no_wrap=False)
        if self.badge is not None:
            heading.append(f"{self.badge.text().rstrip()}  ", self._style("-heading"))
        heading.append(literal(str(hop.where)))
        if hop.before.inner is not None or hop.after.inner is not None:
            return Group(heading, *self._render_layers(hop))
        fields = Table(box=None, expand=True, padding=(0, 0, 0, 1), show_edge=False)
        fields.add_column("", width=2, style=self._style("-layer"), no_wrap=True)
        fields.add_column("field", no_wrap=True, width=10)
        fields.add_column("before", overflow="fold", ratio=1)
        fields.add_column("after", overflow="fold", ratio=1)
        for layer, name, label in _ROWS:
            before, after = _value(hop.before, name), _value(hop.after, name)
            if name in changed:
                style = self._style("-changed")
                fields.add_row(layer, Text(f"✱ {label}", style), Text(before), Text(after, style))
            else:
                fields.add_row(
                    layer, Text(f"  {label}"), Text(before), Text(after, self._style("-same"))
                )
        return Group(heading, fields)

    def _render_layers(self, hop: Hop) -> list[RenderableType]:
        """A packet in a tunnel, header by header from the outside in, as Wireshark lists it.

        The packet shown is the one with the tunnel header: after the hop that wraps it,
        before the hop that unwraps it; each of its packets is compared with the packet at
        the same depth on the hop's other side.
        """
        before, after = hop.before, hop.after
        device = literal(hop.where.interface or "the tunnel")
        icmp = after.proto is Proto.ICMP
        if icmp and before.proto is not Proto.ICMP:
            # A new packet, not the old one wrapped: every header is the kernel's new one;
            # the header it quotes is compared with the packet refused.
            shown, other, sign = after, before, "+"
            intro = (
                "The kernel answers with an ICMP error (+, a new packet) quoting the refused "
                "packet's header"
            )
        elif icmp and _depth(after) == _depth(before) and before.proto is Proto.ICMP:
            shown, other, sign = after, before, ""
            intro = "An ICMP error: its headers, then the refused packet's header it quotes"
        elif _depth(after) > _depth(before):
            shown, other, sign = after, before, "+"
            intro = f"{device} wraps the packet in {_tunnel(after)}: + marks the headers added"
        elif _depth(after) < _depth(before):
            shown, other, sign = before, after, "−"
            intro = (
                f"{device} takes the {_tunnel(before)} header off (−): the packet inside goes on"
            )
        else:
            shown, other, sign = after, before, ""
            intro = f"A {_tunnel(after)} packet: the outer headers, then the packet inside"
        levels, others = _levels(shown), _levels(other)
        offset = len(levels) - len(others)
        # Wireshark's short names (Eth, IPv4, UDP, VXLAN), so a header fits one line
        # of the 52-cell pane.
        rows = Table(
            box=None, expand=True, padding=(0, 1, 0, 0), show_edge=False, show_header=False
        )
        rows.add_column("", width=1, no_wrap=True)
        rows.add_column("layer", no_wrap=True, width=5 + 2 * (len(levels) - 1))
        rows.add_column("value", overflow="fold", ratio=1)
        changed_style, same_style = self._style("-changed"), self._style("-same")
        for depth, packet in enumerate(levels):
            compared = others[depth - offset] if depth >= offset else None
            indent = "  " * depth
            for layer, value, names in headers(packet, outermost=depth == 0):
                if compared is None:
                    style = changed_style if sign == "+" else same_style
                    rows.add_row(Text(sign, style), Text(indent + layer, style), Text(value, style))
                    continue
                if any(getattr(packet, n) != getattr(compared, n) for n in names):
                    rows.add_row(
                        Text("✱", changed_style),
                        Text(indent + layer, changed_style),
                        Text(value, changed_style),
                    )
                    was = next(
                        (v for name, v, _ in headers(compared, outermost=True) if name == layer),
                        "none",
                    )
                    rows.add_row("", "", Text(f"was {was}", self._style("-dim")))
                else:
                    rows.add_row("", Text(indent + layer), Text(value))
        mark_changed = shown.mark != other.mark
        rows.add_row(
            Text("✱" if mark_changed else "", changed_style),
            Text("mark", changed_style if mark_changed else Style()),
            Text(f"{shown.mark:#x}", changed_style if mark_changed else same_style),
        )
        return [Text(intro, self._style("-dim")), rows]

    def _conntrack_part(self, view: ConntrackView) -> RenderableType:
        changed, same = self._style("-changed"), Style()
        entry, before = view.after, view.before
        text = Text()
        text.append("Conntrack", self._style("-heading"))
        if entry is None:
            text.append("   no entry in this netns", self._style("-dim"))
            return text
        new = "new" in view.changed
        text.append(f" {entry.original.proto.value} ")
        if "state" in view.changed:
            text.append(f"✱ {_state(entry)}", changed)
        else:
            text.append(_state(entry), changed if new else same)
        flags = " ".join(f for f, on in (("DNAT", entry.dnat), ("SNAT", entry.snat)) if on)
        if flags:
            text.append(f" {flags}", changed if new or "nat" in view.changed else same)
        text.append("\n  mark     ")
        text.append(f"{entry.mark:#x}", changed if "mark" in view.changed else same)
        if not entry.confirmed:
            text.append(", unconfirmed", self._style("-dim"))
        elif "confirmed" in view.changed:
            text.append(", ✱ confirmed: in the table now", changed)
        else:
            text.append(", confirmed", self._style("-dim"))
        text.append("\n  before   ")
        if before is None:
            text.append("no entry yet: this packet creates it", self._style("-dim"))
        elif before == entry:
            why = "" if view.at_hook else " (only netfilter hooks change it)"
            text.append(f"the same{why}", self._style("-dim"))
        else:
            text.append(_summary(before), self._style("-dim"))
        text.append("\n  original ")
        text.append(_endpoint(entry.original))
        text.append("\n  reply    ")
        reply = Text(_endpoint(entry.reply))
        if "reply" in view.changed or (new and entry.reply != entry.original.inverted()):
            reply.stylize(changed)
        text.append_text(reply)
        return text


def _state(entry: ConntrackEntry) -> str:
    return entry.state.value if entry.state is not CtState.NEW else "NEW [UNREPLIED]"


def _summary(entry: ConntrackEntry) -> str:
    """One entry in a line: state, NAT flags, mark, and whether it is confirmed yet."""
    flags = "".join(f" {f}" for f, on in (("DNAT", entry.dnat), ("SNAT", entry.snat)) if on)
    unconfirmed = "" if entry.confirmed else " unconfirmed"
    return f"{_state(entry)}{flags} mark {entry.mark:#x}{unconfirmed}"
