"""The packet inspector: the packet before and after the current hop, changes highlighted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from model.packet import ConntrackEntry, ConntrackTuple, CtState, Packet
from model.trace import Hop, TableWalk
from tui.hopstyle import badge, literal

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


@dataclass(frozen=True)
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
    """L2/L3/L4 fields before and after the hop, the conntrack entry, the tables walked."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"-heading", "-layer", "-changed", "-same", "-dim"}

    DEFAULT_CSS = """
    PacketInspector {
        padding: 0 1;
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

    hop: reactive[Hop | None] = reactive(None)
    """The hop inspected."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._conntrack: ConntrackView | None = None

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(id="inspector-body")

    def show(self, hop: Hop, conntrack: ConntrackView) -> None:
        """Inspect `hop`, whose netns's conntrack entry the core gives as `conntrack`."""
        self._conntrack = conntrack
        if hop == self.hop:
            self.watch_hop()
        else:
            self.hop = hop

    def watch_hop(self) -> None:
        if self.is_mounted:
            self.query_one("#inspector-body", Static).update(self._render_hop())

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.watch_hop()

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True, default=Style())

    def _render_hop(self) -> RenderableType:
        hop = self.hop
        if hop is None:
            return Text("No trace yet: press p to pick a source and a destination.")
        changed = set(hop.changed)
        mark = badge(hop)
        heading = Text(no_wrap=False)
        heading.append(f"{mark.text().rstrip()}  ", self._style("-heading"))
        heading.append(literal(str(hop.where)))
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
        parts: list[RenderableType] = [heading, fields]
        view = self._conntrack
        if view is None:  # shown without a trace: the hop's own entry
            view = _AsItStands(hop.conntrack, hop.conntrack)
        parts.append(self._conntrack_part(view))
        if hop.tables:
            parts.append(Text("Tables walked", self._style("-heading")))
            parts.extend(Text(literal(walk_line(w))) for w in hop.tables)
        if hop.detail:
            parts.append(Text("Decision", self._style("-heading")))
            parts.append(Text(literal(hop.detail)))
        return Group(*parts)

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
