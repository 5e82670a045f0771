"""The path map: the places a packet passes, as one line, with where it is now.

Where the CNI tunnels between nodes (Flannel's VXLAN, Calico's IP-in-IP or
VXLAN), the device that wraps the packet is a place of its own (`flannel.1⊂`),
so is the one that unwraps it (`flannel.1⊃`), and the places the packet passes
inside the outer header are joined by `═` instead of `▶`: the node network
sees only the outer packet between the two, whose addresses the wire shows
(`wire 10.0.0.11→10.0.0.12`).
"""

from __future__ import annotations

from itertools import pairwise
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from model.frozen import frozen
from model.trace import Direction, Hop, HopKind, Trace
from tui.hopstyle import Badge, Effect, literal


@frozen
class Place:
    """A stretch of consecutive hops in one place (a pod, a veth, a bridge, a node)."""

    name: str
    """What the map shows: `pod1`, `veth`, `cni0`, `node-a`, `wire`."""
    first: int
    """Position of the first hop here."""
    last: int
    """Position of the last hop here."""
    effects: tuple[Effect, ...]
    """Rewrites that happened here (DNAT, SNAT, …), in order."""
    mouth: str = ""
    """`encap` where a tunnel wraps the packet, `decap` where one unwraps it, else ""."""
    inside: bool = False
    """The packet is inside a tunnel's outer header here (between the two mouths)."""
    outer: str = ""
    """On the wire inside a tunnel, the outer packet's addresses (`10.0.0.11→10.0.0.12`):
    all the node network sees."""

    def joins(self, following: Place) -> bool:
        """The packet goes from here to `following` inside a tunnel."""
        return (self.inside or self.mouth == "encap") and (
            following.inside or following.mouth == "decap"
        )


_SHOWN_EFFECTS = (Effect.DNAT, Effect.SNAT, Effect.UNNAT, Effect.DROP)


def place_name(hop: Hop, bridge: str) -> str:
    """The place a hop happens in, at the map's grain.

    Netfilter hops on the bridge's interface are bridged traffic seen by
    iptables (br_netfilter), so they belong to the bridge on the map.
    """
    if hop.kind is HopKind.VETH:
        return "veth"
    if hop.kind is HopKind.WIRE:
        return "wire"
    if hop.kind in (HopKind.ENCAP, HopKind.DECAP):
        return hop.where.interface or hop.where.netns
    if hop.kind is HopKind.BRIDGE or (
        hop.kind is HopKind.NETFILTER and hop.where.interface == bridge
    ):
        return hop.where.interface or bridge
    netns = hop.where.netns
    if "/" in netns:
        return netns.rsplit("/", 1)[1]
    return netns


def places(
    trace: Trace, direction: Direction, badges: tuple[Badge, ...], bridge: str = "cni0"
) -> tuple[Place, ...]:
    """The places of one direction, in the order the packet visits them (`badges`: each hop's)."""
    found: list[Place] = []
    for hop in trace.hops:
        if hop.direction is not direction:
            continue
        name = place_name(hop, bridge)
        mouth = {HopKind.ENCAP: "encap", HopKind.DECAP: "decap"}.get(hop.kind, "")
        inside = hop.before.inner is not None and hop.after.inner is not None
        if (
            hop.kind is HopKind.NETFILTER
            and found
            and found[-1].name == place_name(hop.model_copy(update={"kind": HopKind.ROUTE}), bridge)
        ):
            # A hook after the node's own routing (FORWARD, POSTROUTING of a
            # routed packet) is the node's, even if the packet came in by the
            # bridge: only bridged frames belong to the bridge on the map.
            name = found[-1].name
        effect = badges[hop.seq].effect if hop.seq < len(badges) else Effect.PLAIN
        effects = (effect,) if effect in _SHOWN_EFFECTS else ()
        if found and found[-1].name == name and not mouth and not found[-1].mouth:
            last = found[-1]
            found[-1] = Place(
                name,
                last.first,
                hop.seq,
                last.effects + effects,
                inside=last.inside and inside,
                outer=last.outer,
            )
        else:
            outer = (
                f"{hop.before.src}→{hop.before.dst}"
                if hop.kind is HopKind.WIRE and hop.before.inner is not None
                else ""
            )
            found.append(Place(name, hop.seq, hop.seq, effects, mouth, inside, outer))
    return tuple(found)


EFFECT_SYMBOLS = {Effect.DNAT: "◆D", Effect.SNAT: "◆S", Effect.UNNAT: "◆U", Effect.DROP: "✘"}

MOUTH_SYMBOLS = {"encap": "⊂", "decap": "⊃"}
"""After a tunnel device's name: it wraps the packet (⊂) or unwraps it (⊃), as the badges say."""


class PathMap(Widget):
    """pod → veth → bridge → node → wire → node → bridge → pod, the packet's place marked."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "-here",
        "-visited",
        "-ahead",
        "-link",
        "-tunnel",
        "-direction",
    } | {f"-{effect.value}" for effect in _SHOWN_EFFECTS}

    DEFAULT_CSS = """
    PathMap {
        height: auto;
        max-height: 3;
        padding: 0 1;
        background: $boost;
    }

    PathMap > .-here {
        text-style: bold reverse;
        color: $here;
    }

    PathMap > .-visited {
        color: $text;
    }

    PathMap > .-ahead {
        color: $faint-text;
    }

    PathMap > .-link,
    PathMap > .-direction {
        color: $dim-text;
    }

    PathMap > .-tunnel {
        color: $hop-route;
        text-style: bold;
    }

    PathMap > .-dnat { color: $hop-dnat; text-style: bold; }
    PathMap > .-snat { color: $hop-snat; text-style: bold; }
    PathMap > .-unnat { color: $hop-unnat; text-style: bold; }
    PathMap > .-drop { color: $hop-drop; text-style: bold; }
    """

    trace: reactive[Trace | None] = reactive(None, layout=True)
    """The trace mapped."""
    index: reactive[int] = reactive(0, layout=True)
    """The position of the current hop."""
    bridge: reactive[str] = reactive("cni0")
    """The CNI bridge's name, so bridged hops are drawn as the bridge."""
    badges: reactive[tuple[Badge, ...]] = reactive((), layout=True)
    """Each hop's badge, for the rewrites marked on the map (set before `trace`)."""

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True, default=Style())

    def render(self) -> Text:
        trace = self.trace
        if trace is None or not trace.hops:
            return Text("no trace")
        hop = trace.hops[min(self.index, len(trace.hops) - 1)]
        reply = hop.direction is Direction.REPLY
        stops = places(trace, hop.direction, self.badges, self.bridge)
        tunnelled = [a.joins(b) for a, b in pairwise(stops)]
        if reply:
            # The reply retraces the path, so it is drawn right to left under
            # the same picture: the client stays on the left.
            stops = tuple(reversed(stops))
            tunnelled.reverse()
        link = " ◀ " if reply else " ▶ "
        text = Text(justify="left")
        text.append("reply   " if reply else "request ", self._style("-direction"))
        for n, place in enumerate(stops):
            if n and tunnelled[n - 1]:
                text.append(" ═ ", self._style("-tunnel"))
            elif n:
                text.append(link, self._style("-link"))
            here = place.first <= hop.seq <= place.last
            done = place.last < hop.seq
            name_style = self._style("-here" if here else "-visited" if done else "-ahead")
            label = literal(place.name)
            text.append(f"[{label}]" if here else label, name_style)
            if place.mouth:
                text.append(MOUTH_SYMBOLS[place.mouth], self._style("-tunnel"))
            if place.outer:
                text.append(f" {place.outer}", self._style("-link"))
            for effect in dict.fromkeys(place.effects):
                if place.first <= hop.seq or here:
                    text.append(EFFECT_SYMBOLS[effect], self._style(f"-{effect.value}"))
        text.append(f"   {hop.seq + 1}/{len(trace.hops)}", self._style("-direction"))
        return text
