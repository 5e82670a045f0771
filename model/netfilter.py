"""Netfilter's vocabulary: hooks, tables, matches, targets, rules, chains and rulesets.

One module on purpose (over 500 lines): the match and target classes form the
discriminated unions `Match` and `Target` that `Rule` validates against, and
every reader and evaluator of rules speaks all of it.
"""

# No `from __future__ import annotations`: pydantic reads each string annotation by
# compiling and evaluating it when it makes the class; real ones spare that at start-up.

from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class Hook(StrEnum):
    """A netfilter hook, in the kernel's spelling."""

    PREROUTING = "PREROUTING"
    INPUT = "INPUT"
    FORWARD = "FORWARD"
    OUTPUT = "OUTPUT"
    POSTROUTING = "POSTROUTING"


class Table(StrEnum):
    """An iptables table, as `-t` names it."""

    RAW = "raw"
    MANGLE = "mangle"
    NAT = "nat"
    FILTER = "filter"


class RuleRef(BaseModel):
    """One rule, as a person finds it in `iptables-save` and `iptables -L --line-numbers`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    table: Table
    """The table holding the rule."""
    chain: str
    """The chain holding the rule (`KUBE-SVC-…`)."""
    index: int = Field(ge=1)
    """1-based position in its chain, as `iptables -L --line-numbers` counts."""
    line: str
    """The rule as iptables-save prints it, starting with `-A CHAIN`."""

    def __str__(self) -> str:
        return f"{self.table.value}/{self.chain} #{self.index}"


# The parsed rule model. Every class below is data only; `sim.kernel.netfilter`
# evaluates it and `sim.readers.iptables_save` builds it from text.


class _Frozen(BaseModel):
    # Validators are built when a model is first validated, not at import: the app's
    # first screen imports these 38 models and validates none (their schemas cost ~30 M
    # instructions at start-up).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class PortRange(_Frozen):
    """An inclusive port range `lo:hi`; a single port has `lo == hi`."""

    lo: int = Field(ge=0, le=65535)
    """The first port."""
    hi: int = Field(ge=0, le=65535)
    """The last port."""

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.lo <= port <= self.hi

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}:{self.hi}"


# --- matches -----------------------------------------------------------------


class AddrMatch(_Frozen):
    """`[!] -s NET` or `[!] -d NET`."""

    kind: Literal["addr"] = "addr"
    field: Literal["src", "dst"]
    """Which address of the packet is compared."""
    net: IPv4Network
    """The network; `/32` for one host."""
    negate: bool = False
    """`!` was given."""


class ProtoMatch(_Frozen):
    """`[!] -p PROTO`."""

    kind: Literal["proto"] = "proto"
    proto: str
    """The protocol name as iptables prints it (`tcp`, `udp`, `icmp`, `all`)."""
    negate: bool = False
    """`!` was given."""


class IfaceMatch(_Frozen):
    """`[!] -i NAME` or `[!] -o NAME`; a trailing `+` is a prefix wildcard."""

    kind: Literal["iface"] = "iface"
    field: Literal["in", "out"]
    """Input or output interface."""
    name: str
    """The interface name or `prefix+`."""
    negate: bool = False
    """`!` was given."""


class FragmentMatch(_Frozen):
    """`[!] -f`: second and further fragments."""

    kind: Literal["fragment"] = "fragment"
    negate: bool = False
    """`!` was given."""


class CommentMatch(_Frozen):
    """`-m comment --comment TEXT`; always matches."""

    kind: Literal["comment"] = "comment"
    comment: str
    """The comment, unquoted."""


class NfacctMatch(_Frozen):
    """`-m nfacct --nfacct-name NAME`: counts the packet in a named accounting object; always matches."""

    kind: Literal["nfacct"] = "nfacct"
    name: str
    """The accounting object (kube-proxy's `ct_state_invalid_dropped_pkts`, …)."""


class PortMatch(_Frozen):
    """`-m tcp|udp|sctp [!] --dport|--sport LO[:HI]`."""

    kind: Literal["port"] = "port"
    module: str
    """The match module (`tcp`, `udp`, `sctp`)."""
    field: Literal["sport", "dport"]
    """Which port is compared."""
    ports: PortRange
    """The inclusive range."""
    negate: bool = False
    """`!` was given."""


class TcpFlagsMatch(_Frozen):
    """`-m tcp [!] --tcp-flags MASK COMP` (and `--syn`, which is `SYN,RST,ACK,FIN SYN`)."""

    kind: Literal["tcp-flags"] = "tcp-flags"
    mask: tuple[str, ...]
    """Flags examined."""
    comp: tuple[str, ...]
    """Flags of `mask` that must be set; the rest of `mask` must be clear."""
    negate: bool = False
    """`!` was given."""


class MultiportMatch(_Frozen):
    """`-m multiport [!] --dports|--sports|--ports a,b:c`."""

    kind: Literal["multiport"] = "multiport"
    field: Literal["sport", "dport", "port"]
    """`port` matches when either port is listed."""
    ranges: tuple[PortRange, ...]
    """The listed ports and ranges."""
    negate: bool = False
    """`!` was given."""


class StatisticMatch(_Frozen):
    """`-m statistic --mode random --probability P` or `--mode nth --every N --packet P`."""

    kind: Literal["statistic"] = "statistic"
    mode: Literal["random", "nth"]
    """The statistic mode."""
    probability: float = 0.0
    """For `random`: the probability of matching."""
    every: int = 1
    """For `nth`: match one packet in `every`."""
    packet: int = 0
    """For `nth`: the initial counter value."""
    negate: bool = False
    """`!` was given."""


class MarkMatch(_Frozen):
    """`-m mark [!] --mark VALUE[/MASK]`."""

    kind: Literal["mark"] = "mark"
    value: int
    """Compared with `skb->mark & mask`."""
    mask: int = 0xFFFFFFFF
    """The mask."""
    negate: bool = False
    """`!` was given."""


class AddrtypeMatch(_Frozen):
    """`-m addrtype [!] --src-type T [!] --dst-type T [--limit-iface-in|--limit-iface-out]`."""

    kind: Literal["addrtype"] = "addrtype"
    src_types: tuple[str, ...] = ()
    """Accepted source address types (`LOCAL`, `UNICAST`, …); empty when not given."""
    src_negate: bool = False
    """`!` before `--src-type`."""
    dst_types: tuple[str, ...] = ()
    """Accepted destination address types; empty when not given."""
    dst_negate: bool = False
    """`!` before `--dst-type`."""
    limit_iface_in: bool = False
    """Only addresses of the input interface count as LOCAL."""
    limit_iface_out: bool = False
    """Only addresses of the output interface count as LOCAL."""


class CtAddrCondition(_Frozen):
    """One of `--ctorigsrc/--ctorigdst/--ctreplsrc/--ctrepldst [!] NET`."""

    option: Literal["ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst"]
    """Which address of the conntrack entry."""
    net: IPv4Network
    """The network compared."""
    negate: bool = False
    """`!` was given."""


class CtPortCondition(_Frozen):
    """One of `--ctorigsrcport/--ctorigdstport/--ctreplsrcport/--ctrepldstport [!] LO[:HI]`."""

    option: Literal["ctorigsrcport", "ctorigdstport", "ctreplsrcport", "ctrepldstport"]
    """Which port of the conntrack entry."""
    ports: PortRange
    """The inclusive range."""
    negate: bool = False
    """`!` was given."""


class ConntrackMatch(_Frozen):
    """`-m conntrack …` and `-m state --state …` (which the kernel implements the same way)."""

    kind: Literal["conntrack"] = "conntrack"
    states: tuple[str, ...] | None = None
    """`--ctstate`: NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED, and virtual DNAT, SNAT."""
    states_negate: bool = False
    """`!` before `--ctstate`."""
    statuses: tuple[str, ...] | None = None
    """`--ctstatus`: NONE, EXPECTED, SEEN_REPLY, ASSURED, CONFIRMED."""
    statuses_negate: bool = False
    """`!` before `--ctstatus`."""
    proto: str | None = None
    """`--ctproto`."""
    proto_negate: bool = False
    """`!` before `--ctproto`."""
    addrs: tuple[CtAddrCondition, ...] = ()
    """Address conditions on the entry's tuples."""
    ports: tuple[CtPortCondition, ...] = ()
    """Port conditions on the entry's tuples."""
    direction: Literal["ORIGINAL", "REPLY"] | None = None
    """`--ctdir`."""


class RecentMatch(_Frozen):
    """`-m recent --name N --set|--rcheck|--update|--remove [--seconds S] [--hitcount H] …`."""

    kind: Literal["recent"] = "recent"
    name: str = "DEFAULT"
    """The list's name (kube-proxy names it after the endpoint chain)."""
    command: Literal["set", "rcheck", "update", "remove"]
    """What the match does with the list."""
    seconds: int | None = None
    """Only stamps younger than this count."""
    hitcount: int | None = None
    """At least this many stamps must count."""
    reap: bool = False
    """Purge entries older than `seconds`."""
    rttl: bool = False
    """Also compare the TTL (not simulated)."""
    side: Literal["src", "dst"] = "src"
    """`--rsource` (default) or `--rdest`."""
    mask: IPv4Address = IPv4Address("255.255.255.255")
    """Applied to the address before lookup."""
    negate: bool = False
    """`!` was given."""


class PhysdevMatch(_Frozen):
    """`-m physdev …`: bridge ports of a bridged packet (with br_netfilter)."""

    kind: Literal["physdev"] = "physdev"
    physdev_in: str | None = None
    """`--physdev-in NAME`."""
    in_negate: bool = False
    """`!` before `--physdev-in`."""
    physdev_out: str | None = None
    """`--physdev-out NAME`."""
    out_negate: bool = False
    """`!` before `--physdev-out`."""
    is_in: bool | None = None
    """`--physdev-is-in` (True), `! --physdev-is-in` (False), or absent."""
    is_out: bool | None = None
    """`--physdev-is-out` (True), `! --physdev-is-out` (False), or absent."""
    is_bridged: bool | None = None
    """`--physdev-is-bridged` (True), `! --physdev-is-bridged` (False), or absent."""


class IcmpMatch(_Frozen):
    """`-m icmp [!] --icmp-type T`; simulated packets are never ICMP."""

    kind: Literal["icmp"] = "icmp"
    icmp_type: str
    """The type as written."""
    negate: bool = False
    """`!` was given."""


UNREADABLE = "?"
"""The module name of the one `UnknownMatch` that stands for a whole rule kubehop cannot
read (its args are the rule's words)."""


class UnknownMatch(_Frozen):
    """A match the simulator cannot evaluate (`-m set`, `-m bpf`, …), kept verbatim."""

    kind: Literal["unknown"] = "unknown"
    module: str
    """The module name after `-m`."""
    args: tuple[str, ...] = ()
    """Its options as written, including any `!`."""


Match = Annotated[
    AddrMatch
    | ProtoMatch
    | IfaceMatch
    | FragmentMatch
    | CommentMatch
    | NfacctMatch
    | PortMatch
    | TcpFlagsMatch
    | MultiportMatch
    | StatisticMatch
    | MarkMatch
    | AddrtypeMatch
    | ConntrackMatch
    | RecentMatch
    | PhysdevMatch
    | IcmpMatch
    | UnknownMatch,
    Field(discriminator="kind"),
]
"""Any parsed match."""


# --- targets -----------------------------------------------------------------


class AcceptTarget(_Frozen):
    """`-j ACCEPT`: this table accepts; the next table at the hook runs."""

    kind: Literal["ACCEPT"] = "ACCEPT"


class DropTarget(_Frozen):
    """`-j DROP`."""

    kind: Literal["DROP"] = "DROP"


class RejectTarget(_Frozen):
    """`-j REJECT [--reject-with TYPE]`."""

    kind: Literal["REJECT"] = "REJECT"
    reject_with: str = "icmp-port-unreachable"
    """The ICMP error or `tcp-reset` sent back."""


class ReturnTarget(_Frozen):
    """`-j RETURN`."""

    kind: Literal["RETURN"] = "RETURN"


class JumpTarget(_Frozen):
    """`-j CHAIN` or `-g CHAIN` into a user chain."""

    kind: Literal["jump"] = "jump"
    chain: str
    """The user chain entered."""
    goto: bool = False
    """`-g`: a RETURN from `chain` returns to the caller of this chain."""


class DnatTarget(_Frozen):
    """`-j DNAT --to-destination [IP[-IP]][:PORT[-PORT]]`."""

    kind: Literal["DNAT"] = "DNAT"
    addr: IPv4Address | None
    """The new destination (first of a range); None keeps it."""
    addr_hi: IPv4Address | None = None
    """The last address of a range."""
    ports: PortRange | None = None
    """The new destination port range; None keeps the port."""
    random: bool = False
    """`--random`."""
    persistent: bool = False
    """`--persistent`."""


class SnatTarget(_Frozen):
    """`-j SNAT --to-source [IP[-IP]][:PORT[-PORT]] [--random] [--random-fully]`."""

    kind: Literal["SNAT"] = "SNAT"
    addr: IPv4Address | None
    """The new source (first of a range); None keeps it."""
    addr_hi: IPv4Address | None = None
    """The last address of a range."""
    ports: PortRange | None = None
    """The new source port range; None keeps the port when it is free."""
    random: bool = False
    """`--random`."""
    random_fully: bool = False
    """`--random-fully`: the source port is drawn at random."""
    persistent: bool = False
    """`--persistent`."""


class MasqueradeTarget(_Frozen):
    """`-j MASQUERADE [--to-ports P[-P]] [--random] [--random-fully]`."""

    kind: Literal["MASQUERADE"] = "MASQUERADE"
    ports: PortRange | None = None
    """The source port range; None keeps the port when it is free."""
    random: bool = False
    """`--random`."""
    random_fully: bool = False
    """`--random-fully`: the source port is drawn at random."""


class MarkTarget(_Frozen):
    """`-j MARK`, every form normalised as the kernel stores it: `mark = (mark & ~mask) ^ value`."""

    kind: Literal["MARK"] = "MARK"
    value: int
    """XORed in after masking."""
    mask: int
    """Bits cleared first."""


class ConnmarkTarget(_Frozen):
    """`-j CONNMARK --set-xmark V/M | --save-mark | --restore-mark [--nfmask M] [--ctmask M]`."""

    kind: Literal["CONNMARK"] = "CONNMARK"
    mode: Literal["set", "save", "restore"]
    """Set the ctmark, copy the packet mark to it, or copy it to the packet mark."""
    value: int = 0
    """For `set`: XORed into the ctmark after masking."""
    mask: int = 0xFFFFFFFF
    """For `set`: ctmark bits cleared first."""
    nfmask: int = 0xFFFFFFFF
    """For save/restore: packet mark bits involved."""
    ctmask: int = 0xFFFFFFFF
    """For save/restore: ctmark bits involved."""


class LogTarget(_Frozen):
    """`-j LOG [--log-prefix P] [--log-level L]`: writes to the kernel log and continues."""

    kind: Literal["LOG"] = "LOG"
    prefix: str = ""
    """`--log-prefix`."""
    level: str = "warning"
    """`--log-level`."""


class NotrackTarget(_Frozen):
    """`-j NOTRACK` or `-j CT --notrack` in the raw table: conntrack ignores the packet."""

    kind: Literal["NOTRACK"] = "NOTRACK"


class UnknownTarget(_Frozen):
    """A target the simulator does not implement, kept verbatim; assumed not to end the chain."""

    kind: Literal["unknown"] = "unknown"
    name: str
    """The target name after `-j`."""
    args: tuple[str, ...] = ()
    """Its options as written."""


Target = Annotated[
    AcceptTarget
    | DropTarget
    | RejectTarget
    | ReturnTarget
    | JumpTarget
    | DnatTarget
    | SnatTarget
    | MasqueradeTarget
    | MarkTarget
    | ConnmarkTarget
    | LogTarget
    | NotrackTarget
    | UnknownTarget,
    Field(discriminator="kind"),
]
"""Any parsed target."""


# --- rules, chains, rulesets ---------------------------------------------------


class Rule(_Frozen):
    """One `-A` line of iptables-save, parsed."""

    table: Table
    """The table holding the rule."""
    chain: str
    """The chain holding the rule."""
    index: int = Field(ge=1)
    """1-based position in its chain."""
    line: str
    """The rule as iptables-save printed it, from `-A`, without counters."""
    lineno: int = Field(default=0, ge=0)
    """The line of the source text (0 when not parsed from text)."""
    matches: tuple[Match, ...] = ()
    """The matches in kernel order: `-s/-d/-i/-o/-p/-f` first, then `-m` modules as written."""
    target: Target | None = None
    """The target; None for a rule that only counts."""

    @property
    def ref(self) -> RuleRef:
        """This rule as a `RuleRef`."""
        return RuleRef(table=self.table, chain=self.chain, index=self.index, line=self.line)


class Chain(_Frozen):
    """A chain and its rules."""

    name: str
    """The chain name (`PREROUTING`, `KUBE-SERVICES`)."""
    policy: Literal["ACCEPT", "DROP"] | None = None
    """A built-in chain's policy; None for a user chain, which returns when it ends."""
    rules: tuple[Rule, ...] = ()
    """The rules in order."""


class Ruleset(_Frozen):
    """One netns's iptables rules, as one `iptables-save` text describes them."""

    source: str = "<rules>"
    """Where the text came from, for messages."""
    tables: dict[Table, dict[str, Chain]] = Field(default_factory=dict)
    """Tables present in the text, each a map of chain name to chain."""
    warnings: tuple[str, ...] = ()
    """What was parsed but cannot be evaluated faithfully, naming the rule and line."""

    def chain(self, table: Table, name: str) -> Chain | None:
        """The chain `name` of `table`, or None when either is absent."""
        chains = self.tables.get(table)
        return None if chains is None else chains.get(name)
