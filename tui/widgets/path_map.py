"""The path map: the places a packet passes, as one line, with where it is now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from model.trace import Direction, Hop, HopKind, Trace
from tui.hopstyle import Effect, badge, literal


@dataclass(frozen=True)
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
    if hop.kind is HopKind.BRIDGE or (
        hop.kind is HopKind.NETFILTER and hop.where.interface == bridge
    ):
        return hop.where.interface or bridge
    netns = hop.where.netns
    if "/" in netns:
        return netns.rsplit("/", 1)[1]
    return netns


def places(trace: Trace, direction: Direction, bridge: str = "cni0") -> tuple[Place, ...]:
    """The places of one direction, in the order the packet visits them."""
    found: list[Place] = []
    for hop in trace.hops:
        if hop.direction is not direction:
            continue
        name = place_name(hop, bridge)
        if (
            hop.kind is HopKind.NETFILTER
            and found
            and found[-1].name == place_name(hop.model_copy(update={"kind": HopKind.ROUTE}), bridge)
        ):
            # A hook after the node's own routing (FORWARD, POSTROUTING of a
            # routed packet) is the node's, even if the packet came in by the
            # bridge: only bridged frames belong to the bridge on the map.
            name = found[-1].name
        effect = badge(hop).effect
        effects = (effect,) if effect in _SHOWN_EFFECTS else ()
        if found and found[-1].name == name:
            last = found[-1]
            found[-1] = Place(name, last.first, hop.seq, last.effects + effects)
        else:
            found.append(Place(name, hop.seq, hop.seq, effects))
    return tuple(found)


EFFECT_SYMBOLS = {Effect.DNAT: "◆D", Effect.SNAT: "◆S", Effect.UNNAT: "◆U", Effect.DROP: "✘"}


class PathMap(Widget):
    """pod → veth → bridge → node → wire → node → bridge → pod, the packet's place marked."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "-here",
        "-visited",
        "-ahead",
        "-link",
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

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True, default=Style())

    def render(self) -> Text:
        trace = self.trace
        if trace is None or not trace.hops:
            return Text("no trace")
        hop = trace.hops[min(self.index, len(trace.hops) - 1)]
        reply = hop.direction is Direction.REPLY
        stops = places(trace, hop.direction, self.bridge)
        if reply:
            # The reply retraces the path, so it is drawn right to left under
            # the same picture: the client stays on the left.
            stops = tuple(reversed(stops))
        link = " ◀ " if reply else " ▶ "
        text = Text(justify="left")
        text.append("reply   " if reply else "request ", self._style("-direction"))
        for n, place in enumerate(stops):
            if n:
                text.append(link, self._style("-link"))
            here = place.first <= hop.seq <= place.last
            done = place.last < hop.seq
            name_style = self._style("-here" if here else "-visited" if done else "-ahead")
            label = literal(place.name)
            text.append(f"[{label}]" if here else label, name_style)
            for effect in dict.fromkeys(place.effects):
                if place.first <= hop.seq or here:
                    text.append(EFFECT_SYMBOLS[effect], self._style(f"-{effect.value}"))
        text.append(f"   {hop.seq + 1}/{len(trace.hops)}", self._style("-direction"))
        return text
