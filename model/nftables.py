"""nftables' vocabulary: tables, chains, rules, sets and maps, as `nft list` prints them.

A rule is a list of expressions the kernel runs in order: a comparison that
fails ends the rule ("breaks"), a statement acts (sets the mark, NATs,
updates a set), a verdict ends the chain. The classes below are data only;
`sim.readers.nftables` builds them from `nft list table …` or `nft -f` text and
`sim.kernel.nftables` evaluates them. One module, like `model.netfilter`,
because every reader and evaluator speaks all of it.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


# --- expressions --------------------------------------------------------------


class NftCmp(_Frozen):
    """A comparison: `ip daddr 10.96.0.10`, `ct state new`, `ip saddr != { … }`, `ip daddr @set`.

    `left` is one selector or a concatenation (`ip daddr . meta l4proto . th
    dport`); the right side is literal values or a named set.
    """

    kind: Literal["cmp"] = "cmp"
    left: tuple[str, ...]
    """The selectors compared, as nft spells them (`ip daddr`, `meta l4proto`, `fib daddr type`)."""
    mask: int | None = None
    """`meta mark & 0x4000 == …`: the value is masked before the comparison."""
    op: Literal["==", "!="] = "=="
    """Equal (or in the set), or not."""
    values: tuple[str, ...] = ()
    """Literal values: an address, a prefix, a range `a-b`, a name; concatenations as `a . b`.
    Several values are an anonymous set (`{ a, b }`); for `ct state` a comma list of flags."""
    set: str | None = None
    """A named set (`@nodeport-ips`), instead of `values`."""


class NftElement(_Frozen):
    """One element of a set or map: `10.96.0.10 . tcp . 53 comment "…" : goto service-…`."""

    key: tuple[str, ...]
    """The key, one value per component of the set's type."""
    value: str | None = None
    """A map element's value (for a verdict map: `goto CHAIN`, `drop`, …)."""
    comment: str | None = None
    """The element's comment (kube-proxy names the Service port)."""
    timeout: int | None = None
    """The element's own timeout in seconds, when it has one."""


class NftVmap(_Frozen):
    """A verdict map lookup: `ip daddr . meta l4proto . th dport vmap @service-ips`, or
    `numgen random mod 3 vmap { 0 : goto …, 1 : goto …, 2 : goto … }`."""

    kind: Literal["vmap"] = "vmap"
    left: tuple[str, ...] = ()
    """The selectors that make the key; empty for a `numgen` key."""
    numgen: int | None = None
    """`numgen random mod N`: the key is a random number below N."""
    map: str | None = None
    """A named map (`@service-ips`)."""
    elements: tuple[NftElement, ...] = ()
    """An anonymous map's elements."""


class NftVerdict(_Frozen):
    """`accept`, `drop`, `return`, `continue`, `jump CHAIN`, `goto CHAIN`."""

    kind: Literal["verdict"] = "verdict"
    verdict: Literal["accept", "drop", "return", "continue", "jump", "goto"]
    """The verdict."""
    chain: str | None = None
    """The chain of `jump` and `goto`."""


class NftReject(_Frozen):
    """`reject [with icmp type T | with tcp reset]`: drops the packet and answers the sender."""

    kind: Literal["reject"] = "reject"
    reject_with: str = "icmp-port-unreachable"
    """What is sent back, in iptables' spelling (`icmp-port-unreachable`, `tcp-reset`)."""


class NftMark(_Frozen):
    """`meta mark set …`, normalised as the kernel computes it: `mark = (mark & mask) ^ xor`."""

    kind: Literal["mark"] = "mark"
    mask: int
    """Bits kept."""
    xor: int
    """Bits flipped after masking."""


class NftNat(_Frozen):
    """`dnat to A[:P]`, `snat to A[:P]`, `masquerade [fully-random] [to :P-P]`, `redirect`."""

    kind: Literal["nat"] = "nat"
    action: Literal["dnat", "snat", "masquerade", "redirect"]
    """Which NAT."""
    addr: IPv4Address | None = None
    """The new address (dnat, snat)."""
    port: int | None = None
    """The new port, or the first of a range."""
    port_hi: int | None = None
    """The last port of a range."""
    flags: tuple[str, ...] = ()
    """`fully-random`, `random`, `persistent`."""


class NftSetUpdate(_Frozen):
    """`update @affinity-… { ip saddr }` (or `add`, `delete`): the packet path changes a set."""

    kind: Literal["set-update"] = "set-update"
    op: Literal["add", "update", "delete"]
    """`add` keeps an existing element's expiry, `update` refreshes it, `delete` removes it."""
    set: str
    """The set."""
    key: tuple[str, ...]
    """The selectors whose values make the element."""
    timeout: int | None = None
    """A timeout given in the statement (seconds); else the set's."""


class NftCounter(_Frozen):
    """`counter [packets N bytes M]`: counts and goes on."""

    kind: Literal["counter"] = "counter"
    packets: int = 0
    """Packets counted so far."""
    bytes: int = 0
    """Bytes counted so far."""


class NftLog(_Frozen):
    """`log [prefix "…"] …`: writes to the kernel log and goes on."""

    kind: Literal["log"] = "log"
    prefix: str = ""
    """The log prefix."""


class NftNotrack(_Frozen):
    """`notrack`: conntrack ignores the packet (only before conntrack, at priority < -200)."""

    kind: Literal["notrack"] = "notrack"


class NftUnknown(_Frozen):
    """Expressions kubehop cannot evaluate, kept verbatim (the rest of the rule from there)."""

    kind: Literal["unknown"] = "unknown"
    text: str
    """The words as written."""


NftExpr = Annotated[
    NftCmp
    | NftVmap
    | NftVerdict
    | NftReject
    | NftMark
    | NftNat
    | NftSetUpdate
    | NftCounter
    | NftLog
    | NftNotrack
    | NftUnknown,
    Field(discriminator="kind"),
]
"""Any parsed expression or statement."""


# --- rules, chains, sets, tables ---------------------------------------------------


class NftRule(_Frozen):
    """One rule of a chain, as `nft list` prints it."""

    chain: str
    """The chain holding the rule."""
    index: int = Field(ge=1)
    """1-based position in its chain."""
    text: str
    """The rule as `nft list` prints it (its comment included)."""
    lineno: int = Field(default=0, ge=0)
    """The line of the source text (0 when not parsed from text)."""
    exprs: tuple[NftExpr, ...] = ()
    """The expressions, in the order the kernel runs them."""
    comment: str | None = None
    """The rule's comment."""


class NftChain(_Frozen):
    """A chain: a base chain (type, hook, priority, policy) or a regular one."""

    name: str
    """The chain's name (`nat-prerouting`, `service-ULMVA6XW-ns1/svc1/tcp/p80`)."""
    type: Literal["filter", "nat", "route"] | None = None
    """A base chain's type; None for a regular chain, which runs only when jumped to."""
    hook: Literal["prerouting", "input", "forward", "output", "postrouting"] | None = None
    """A base chain's hook."""
    priority: int | None = None
    """A base chain's priority as a number (`dstnat - 10` is -110)."""
    policy: Literal["accept", "drop"] | None = None
    """A base chain's policy."""
    comment: str | None = None
    """The chain's comment."""
    rules: tuple[NftRule, ...] = ()
    """The rules in order."""
    lineno: int = Field(default=0, ge=0)
    """The line that declares the chain."""


class NftSet(_Frozen):
    """A named set or map."""

    name: str
    """The set's name."""
    map: bool = False
    """A map (`map NAME { type K : V }`) rather than a set."""
    key_type: tuple[str, ...]
    """The key's type, one name per concatenated component (`ipv4_addr`, `inet_proto`, …)."""
    data_type: str | None = None
    """A map's value type (`verdict`)."""
    flags: tuple[str, ...] = ()
    """`dynamic`, `timeout`, `interval`, `constant`."""
    timeout: int | None = None
    """The default element timeout in seconds."""
    size: int | None = None
    """The most elements the set may hold."""
    comment: str | None = None
    """The set's comment."""
    elements: tuple[NftElement, ...] = ()
    """The elements, in the order `nft list` prints them."""
    lineno: int = Field(default=0, ge=0)
    """The line that declares the set."""


class NftTable(_Frozen):
    """One table, as `nft list table FAMILY NAME` prints it."""

    family: Literal["ip", "ip6", "inet", "arp", "bridge", "netdev"]
    """The address family."""
    name: str
    """The table's name (`kube-proxy`)."""
    comment: str | None = None
    """The table's comment."""
    sets: dict[str, NftSet] = Field(default_factory=dict)
    """Named sets and maps, in declaration order."""
    chains: dict[str, NftChain] = Field(default_factory=dict)
    """Chains, in declaration order."""
    lineno: int = Field(default=0, ge=0)
    """The line that declares the table."""

    @property
    def label(self) -> str:
        """`ip kube-proxy`, as nft commands name the table."""
        return f"{self.family} {self.name}"

    def base_chains(self, hook: str) -> tuple[NftChain, ...]:
        """The base chains registered at `hook` (lower-case), in declaration order.

        (A lazily read table keeps every chain's declaration in the dict itself
        and parses the rules on first access, so the declarations are looked at
        first and only the base chains' rules are parsed.)
        """
        names = [c.name for c in dict.values(self.chains) if c.hook == hook]
        return tuple(self.chains[name] for name in names)


class NftRuleset(_Frozen):
    """The nftables tables of one netns that kubehop walks (other than iptables-nft's)."""

    source: str = "<nft>"
    """Where the text came from, for messages."""
    tables: tuple[NftTable, ...] = ()
    """The tables, in the order the text lists them."""
    warnings: tuple[str, ...] = ()
    """What was read but cannot be evaluated faithfully, each naming `file:line`."""

    def table(self, family: str, name: str) -> NftTable | None:
        """The table `family name`, or None."""
        return next((t for t in self.tables if t.family == family and t.name == name), None)
