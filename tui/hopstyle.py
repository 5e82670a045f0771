"""How a hop looks on screen: a symbol and a label per effect, read in monochrome too.

What a hop did (DNAT, MASQUERADE, ENCAP…) is decided once, in `sim.trace.effects`,
for the text report, the JSON and the app alike; the session hands the screen
each hop's effect by name with its label, and `badge_of` gives it a symbol and
a colour here. The colour of each effect is named once, in `PALETTE`
(`$hop-dnat`, …); a badge only carries the name of its colour, so widgets can
look up the component style.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from enum import StrEnum

from rich.text import Text

from model.frozen import frozen
from model.trace import HopKind

PALETTE: dict[str, str] = {
    "hop-dnat": "$warning",
    "hop-snat": "$secondary",
    "hop-unnat": "$accent",
    "hop-bridge": "$success",
    "hop-route": "$primary",
    "hop-hook": "$text-muted",
    "hop-drop": "$error",
    "hop-deliver": "$success",
    "hop-plain": "$foreground",
    "rule-matched": "$warning 35%",
    "rule-walked": "$primary 15%",
    "rule-target": "$accent",
    "pane-border": "$panel-lighten-2",
    "pane-border-focus": "$accent",
    "changed": "$warning",
    "here": "$accent",
    "dim-text": "$foreground-darken-2",
    "faint-text": "$foreground-darken-3",
}
"""kubehop's colours, named from the theme's (every effect has a symbol too, for NO_COLOR)."""

_REFERENCE = re.compile(r"\$([\w-]+)")


def palette(theme: Mapping[str, str]) -> dict[str, str]:
    """`PALETTE` in `theme`'s colours, as CSS variables every stylesheet can use.

    A variable declared in a .tcss is seen by that file alone, and a theme's
    variables are values, not references: so each `$name` is replaced here by
    the theme's value, and the app hands the result to Textual with the theme's.
    """
    return {
        name: _REFERENCE.sub(lambda ref: theme[ref.group(1)], value)
        for name, value in PALETTE.items()
    }


class Effect(StrEnum):
    """What a hop did to the packet, as the screen colours it."""

    DNAT = "dnat"
    """The destination was rewritten (a Service's endpoint chosen)."""
    SNAT = "snat"
    """The source was rewritten (SNAT or MASQUERADE)."""
    UNNAT = "unnat"
    """Conntrack reversed an earlier NAT on a reply."""
    BRIDGE = "bridge"
    """The node bridge forwarded the frame (an FDB decision)."""
    ROUTE = "route"
    """A routing decision (and a MAC rewrite when the packet leaves by a new link)."""
    HOOK = "hook"
    """Netfilter tables walked without a rewrite."""
    DROP = "drop"
    """The packet died here."""
    DELIVER = "deliver"
    """A socket received the packet."""
    PLAIN = "plain"
    """Anything else: send, veth, loopback, the wire."""


@frozen
class Badge:
    """A hop's effect as a fixed-width symbol and label."""

    effect: Effect
    """The effect, which names the component style."""
    symbol: str
    """One cell, so the effect reads without colour."""
    label: str
    """A short tag, at most seven cells."""

    def text(self) -> str:
        """`◆ DNAT   `: symbol, label, padded to a fixed width."""
        return f"{self.symbol} {self.label:<7}"


_KIND_BADGES: dict[HopKind, Badge] = {
    HopKind.DNS: Badge(Effect.PLAIN, "?", "DNS"),
    HopKind.SEND: Badge(Effect.PLAIN, "●", "SEND"),
    HopKind.ROUTE: Badge(Effect.ROUTE, "↳", "ROUTE"),
    HopKind.NETFILTER: Badge(Effect.HOOK, "◇", "HOOK"),
    HopKind.LOOPBACK: Badge(Effect.PLAIN, "↺", "LO"),
    HopKind.VETH: Badge(Effect.PLAIN, "═", "VETH"),
    HopKind.BRIDGE: Badge(Effect.BRIDGE, "⊞", "BRIDGE"),
    HopKind.WIRE: Badge(Effect.PLAIN, "~", "WIRE"),
    HopKind.RECEIVE: Badge(Effect.PLAIN, "▸", "RECV"),
    HopKind.DELIVER: Badge(Effect.DELIVER, "✔", "DELIVER"),
    HopKind.DROP: Badge(Effect.DROP, "✘", "DROP"),
    HopKind.UNKNOWN: Badge(Effect.PLAIN, "◌", "UNKNOWN"),
    HopKind.ENCAP: Badge(Effect.PLAIN, "⊂", "ENCAP"),
    HopKind.DECAP: Badge(Effect.PLAIN, "⊃", "DECAP"),
}

LEGEND: tuple[tuple[Badge, str], ...] = (
    (_KIND_BADGES[HopKind.DNS], "the Service name is resolved (CoreDNS, one summarised step)"),
    (_KIND_BADGES[HopKind.SEND], "a process writes to its socket"),
    (_KIND_BADGES[HopKind.ROUTE], "a routing decision (MACs rewritten on the next link)"),
    (_KIND_BADGES[HopKind.LOOPBACK], "the packet loops through lo inside one network namespace"),
    (_KIND_BADGES[HopKind.VETH], "the packet crosses a veth pair into the peer namespace"),
    (_KIND_BADGES[HopKind.BRIDGE], "the node bridge forwards by its FDB"),
    (_KIND_BADGES[HopKind.NETFILTER], "netfilter tables walked, nothing rewritten"),
    (Badge(Effect.DNAT, "◆", "DNAT"), "destination rewritten: kube-proxy chose an endpoint"),
    (Badge(Effect.SNAT, "◆", "SNAT"), "source rewritten by an SNAT rule"),
    (Badge(Effect.SNAT, "◆", "MASQ"), "source rewritten to the outgoing interface's address"),
    (Badge(Effect.UNNAT, "◆", "UN-NAT"), "conntrack undoes the NAT on the reply"),
    (_KIND_BADGES[HopKind.ENCAP], "a tunnel wraps the packet in an outer header (VXLAN, IPIP)"),
    (_KIND_BADGES[HopKind.WIRE], "the packet crosses the network between nodes"),
    (_KIND_BADGES[HopKind.DECAP], "the tunnel's outer header is taken off"),
    (_KIND_BADGES[HopKind.RECEIVE], "an interface takes a frame addressed to it"),
    (_KIND_BADGES[HopKind.DELIVER], "a socket receives it"),
    (_KIND_BADGES[HopKind.DROP], "the packet dies here, silently"),
    (Badge(Effect.DROP, "✘", "REJECT"), "the packet dies here and the sender is told: refused"),
    (Badge(Effect.DROP, "✘", "REFUSED"), "nothing listens on the port: the kernel answers RST"),
    (_KIND_BADGES[HopKind.UNKNOWN], "what happens next, the files given cannot tell"),
)
"""Every badge a hop can get and what it means, in the order a packet meets them."""


_EFFECT_LOOKS: dict[str, tuple[str, Effect]] = {
    "dns": ("?", Effect.PLAIN),
    "send": ("●", Effect.PLAIN),
    "route": ("↳", Effect.ROUTE),
    "hook": ("◇", Effect.HOOK),
    "dnat": ("◆", Effect.DNAT),
    "snat": ("◆", Effect.SNAT),
    "masquerade": ("◆", Effect.SNAT),
    "unnat": ("◆", Effect.UNNAT),
    "loopback": ("↺", Effect.PLAIN),
    "veth": ("═", Effect.PLAIN),
    "bridge": ("⊞", Effect.BRIDGE),
    "wire": ("~", Effect.PLAIN),
    "encap": ("⊂", Effect.PLAIN),
    "decap": ("⊃", Effect.PLAIN),
    "receive": ("▸", Effect.PLAIN),
    "deliver": ("✔", Effect.DELIVER),
    "drop": ("✘", Effect.DROP),
    "reject": ("✘", Effect.DROP),
    "refused": ("✘", Effect.DROP),
    "unknown": ("◌", Effect.PLAIN),
}
"""The symbol and colour of each effect `sim.trace.effects` names (by its value)."""


def badge_of(effect: str, label: str) -> Badge:
    """The badge of a hop whose effect is `effect` (`masquerade`), labelled `label` (`MASQ`)
    as the text report labels it."""
    symbol, look = _EFFECT_LOOKS.get(effect, ("◌", Effect.PLAIN))
    return Badge(look, symbol, label)


def literal(value: object) -> str:
    """`value` as text that shows every character: control characters are escaped.

    Names come from user files; an escape sequence in one must not repaint the
    terminal, and Rich markup in one must not be interpreted (callers wrap the
    result in `Text`, never in markup).
    """
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        ch
        if ch.isprintable() or unicodedata.category(ch) == "Zs"
        else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


Wording = tuple[tuple[str, str], ...]
"""(phrase, the app's phrase) pairs: where the text `sim` writes for the command line reads
differently in the app (`--pick` is a scenario's choice there)."""


def reword(text: str, wording: Wording) -> str:
    """`text` with each phrase of `wording` replaced by the app's, in order."""
    for phrase, instead in wording:
        text = text.replace(phrase, instead)
    return text


def plain(value: object, style: str = "") -> Text:
    """A `Text` of `value`, shown literally (see `literal`)."""
    return Text(literal(value), style=style)
