"""Parse `iptables-save` text (iptables-legacy and iptables-nft) into a `Ruleset`."""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from typing import Any

from model.errors import RulesParseError
from model.netfilter import (
    AcceptTarget,
    AddrMatch,
    AddrtypeMatch,
    Chain,
    CommentMatch,
    ConnmarkTarget,
    ConntrackMatch,
    CtAddrCondition,
    CtPortCondition,
    DnatTarget,
    DropTarget,
    FragmentMatch,
    IcmpMatch,
    IfaceMatch,
    JumpTarget,
    LogTarget,
    MarkMatch,
    MarkTarget,
    MasqueradeTarget,
    Match,
    MultiportMatch,
    NfacctMatch,
    NotrackTarget,
    PhysdevMatch,
    PortMatch,
    PortRange,
    ProtoMatch,
    RecentMatch,
    RejectTarget,
    ReturnTarget,
    Rule,
    Ruleset,
    SnatTarget,
    StatisticMatch,
    Table,
    Target,
    TcpFlagsMatch,
    UnknownMatch,
    UnknownTarget,
)

BUILTIN_CHAINS: dict[Table, tuple[str, ...]] = {
    Table.RAW: ("PREROUTING", "OUTPUT"),
    Table.MANGLE: ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    Table.NAT: ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    Table.FILTER: ("INPUT", "FORWARD", "OUTPUT"),
}
"""The built-in chains each table registers, in the kernel's terms."""

# Tables the kernel has but kubehop does not simulate; their text is skipped
# with a warning rather than rejected, since real nodes print them.
_IGNORED_TABLES = frozenset({"security"})

_BASE_LONG = frozenset(
    {
        "--source", "--src", "--destination", "--dst", "--protocol", "--in-interface",
        "--out-interface", "--fragment", "--match", "--jump", "--goto", "--set-counters",
    }
)  # fmt: skip

_PROTOCOLS = frozenset(
    {"all", "tcp", "udp", "udplite", "icmp", "icmpv6", "ipv6-icmp", "esp", "ah", "sctp",
     "mh", "gre", "ipip", "igmp", "ipencap", "dccp", "ospf", "vrrp"}
)  # fmt: skip
_PROTO_NUMBERS = {"0": "all", "1": "icmp", "6": "tcp", "17": "udp", "132": "sctp", "47": "gre"}

_MODULE_OPTIONS: dict[str, dict[str, int]] = {
    "comment": {"--comment": 1},
    "nfacct": {"--nfacct-name": 1},
    "tcp": {
        "--dport": 1, "--destination-port": 1, "--sport": 1, "--source-port": 1,
        "--tcp-flags": 2, "--syn": 0,
    },
    "udp": {"--dport": 1, "--destination-port": 1, "--sport": 1, "--source-port": 1},
    "sctp": {"--dport": 1, "--destination-port": 1, "--sport": 1, "--source-port": 1},
    "multiport": {
        "--dports": 1, "--destination-ports": 1, "--sports": 1, "--source-ports": 1, "--ports": 1,
    },
    "statistic": {"--mode": 1, "--probability": 1, "--every": 1, "--packet": 1},
    "mark": {"--mark": 1},
    "addrtype": {"--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0},
    "conntrack": {
        "--ctstate": 1, "--ctstatus": 1, "--ctproto": 1, "--ctorigsrc": 1, "--ctorigdst": 1,
        "--ctreplsrc": 1, "--ctrepldst": 1, "--ctorigsrcport": 1, "--ctorigdstport": 1,
        "--ctreplsrcport": 1, "--ctrepldstport": 1, "--ctdir": 1,
    },
    "state": {"--state": 1},
    "recent": {
        "--name": 1, "--set": 0, "--rcheck": 0, "--update": 0, "--remove": 0, "--seconds": 1,
        "--hitcount": 1, "--reap": 0, "--rttl": 0, "--rsource": 0, "--rdest": 0, "--mask": 1,
    },
    "physdev": {
        "--physdev-in": 1, "--physdev-out": 1, "--physdev-is-in": 0, "--physdev-is-out": 0,
        "--physdev-is-bridged": 0,
    },
    "icmp": {"--icmp-type": 1},
}  # fmt: skip

_TARGET_OPTIONS: dict[str, dict[str, int]] = {
    "ACCEPT": {},
    "DROP": {},
    "RETURN": {},
    "NOTRACK": {},
    "REJECT": {"--reject-with": 1},
    "DNAT": {"--to-destination": 1, "--random": 0, "--persistent": 0},
    "SNAT": {"--to-source": 1, "--random": 0, "--random-fully": 0, "--persistent": 0},
    "MASQUERADE": {"--to-ports": 1, "--random": 0, "--random-fully": 0},
    "MARK": {"--set-xmark": 1, "--set-mark": 1, "--or-mark": 1, "--and-mark": 1, "--xor-mark": 1},
    "CONNMARK": {
        "--set-xmark": 1, "--set-mark": 1, "--save-mark": 0, "--restore-mark": 0,
        "--nfmask": 1, "--ctmask": 1, "--mask": 1,
    },
    "LOG": {
        "--log-prefix": 1, "--log-level": 1, "--log-tcp-sequence": 0, "--log-tcp-options": 0,
        "--log-ip-options": 0, "--log-uid": 0, "--log-macdecode": 0,
    },
}  # fmt: skip

# Extension targets that exist in the kernel but are not simulated: a rule
# using one is kept as UnknownTarget. Any other undeclared name is a typo for
# a chain, which iptables-restore rejects too.
_FOREIGN_TARGETS = frozenset(
    {
        "CT", "TPROXY", "NFLOG", "ULOG", "NFQUEUE", "QUEUE", "TCPMSS", "CLASSIFY", "CHECKSUM",
        "DSCP", "TOS", "TTL", "TEE", "SET", "AUDIT", "REDIRECT", "NETMAP", "HMARK", "SECMARK",
        "CONNSECMARK", "IDLETIMER", "LED", "RATEEST", "SYNPROXY", "TRACE", "ECN", "CLUSTERIP",
        "TCPOPTSTRIP", "HL", "IPVS",
    }
)  # fmt: skip

_CT_STATES = frozenset({"NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "DNAT", "SNAT"})
_CT_STATUSES = frozenset({"NONE", "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED"})
_ADDR_TYPES = frozenset(
    {"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
     "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"}
)  # fmt: skip
_TCP_FLAGS = frozenset({"SYN", "ACK", "FIN", "RST", "URG", "PSH", "ALL", "NONE"})

_COUNTERS = re.compile(r"\[(\d+):(\d+)\]")
_WORD = re.compile(r"""(?:[^\s"'\\]+|"(?:[^"\\]|\\.)*"|'[^']*'|\\.)+""", re.DOTALL)
_PIECE = re.compile(r"""[^\s"'\\]+|"((?:[^"\\]|\\.)*)"|'([^']*)'|\\(.)""", re.DOTALL)
_QUOTING = re.compile(r"""["'\\]""")
_DQ_ESCAPE = re.compile(r'\\(["\\])')


@dataclass(frozen=True)
class _Option:
    negate: bool
    name: str
    args: tuple[str, ...]


@dataclass
class _TableBuilder:
    table: Table | None  # None for a table parsed only to be skipped
    name: str
    lineno: int
    policies: dict[str, str | None] = field(default_factory=dict)
    rules: dict[str, list[Rule]] = field(default_factory=dict)


class _Fail(Exception):
    """A problem in one line; the caller adds source and line number."""


class _Declared(dict[str, list[Rule]]):
    """Rule lists of every chain a table declares, made on first use."""

    def __init__(self, policies: dict[str, str | None]) -> None:
        super().__init__()
        self._policies = policies

    def __contains__(self, name: object) -> bool:
        return name in self._policies

    def __missing__(self, name: str) -> list[Rule]:
        rules: list[Rule] = []
        self[name] = rules
        return rules


class _LazyChains(dict[str, Chain]):
    """A table's chains, each parsed from its lines the first time it is asked for.

    A node of a 150,000-pod cluster has over 500,000 rules, and a packet
    visits a handful of chains; parsing only those makes the first trace on
    such a node seconds instead of most of a minute. Only for text kubehop
    rendered itself: a user's dump is parsed eagerly, so every error shows.
    """

    def __init__(
        self,
        table: Table,
        policies: dict[str, str | None],
        lines: dict[str, list[tuple[str, int]]],
        source: str,
    ) -> None:
        super().__init__()
        self._table = table
        self._policies = policies
        self._lines = lines
        self._source = source

    def _load(self, name: str) -> Chain:
        builder = _TableBuilder(self._table, self._table.value, 0, self._policies)
        builder.rules = _Declared(self._policies)
        for line, lineno in self._lines.get(name, ()):
            try:
                rule, _ = _parse_rule(line, builder, lineno)
            except _Fail as err:
                raise RulesParseError(f"{self._source}:{lineno}: {err}") from None
            builder.rules[name].append(rule)
        policy = self._policies[name]
        chain = Chain.model_construct(
            name=name,
            policy="ACCEPT" if policy == "ACCEPT" else "DROP" if policy == "DROP" else None,
            rules=tuple(builder.rules[name]),
        )
        dict.__setitem__(self, name, chain)
        return chain

    def __getitem__(self, name: str) -> Chain:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        if name not in self._policies:
            raise KeyError(name)
        return self._load(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self._policies else default

    def __contains__(self, name: object) -> bool:
        return name in self._policies

    def __iter__(self) -> Iterator[str]:
        return iter(self._policies)

    def __len__(self) -> int:
        return len(self._policies)

    def keys(self) -> Any:
        return self._policies.keys()

    def values(self) -> Any:
        return [self[name] for name in self._policies]

    def items(self) -> Any:
        return [(name, self[name]) for name in self._policies]


def parse_iptables_save(text: str, source: str = "<rules>", *, lazy: bool = False) -> Ruleset:
    """Parse `iptables-save` output into a `Ruleset`.

    Raises `RulesParseError("{source}:{lineno}: …")` on text iptables-restore
    would refuse; rules the simulator cannot evaluate are kept and named in
    `Ruleset.warnings`. With `lazy`, for text kubehop rendered itself, each
    chain's rules are parsed when the chain is first used, and neither the
    per-rule warnings nor the jump-loop check run up front.
    """
    if lazy:
        return _parse_lazily(text, source)
    tables: dict[Table, dict[str, Chain]] = {}
    seen: set[str] = set()
    warnings: list[str] = []
    current: _TableBuilder | None = None
    lineno = 0
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line:
            continue
        try:
            if line.startswith("#"):
                # iptables-nft-save reports tables it cannot print as comments.
                if "incompatible" in line or "Warning" in line:
                    warnings.append(f"{source}:{lineno}: {line.lstrip('# ')}")
                continue
            if line.startswith("*"):
                if current is not None:
                    raise _Fail(
                        f"table {current.name!r} (line {current.lineno}) has no COMMIT"
                        f" before {line}"
                    )
                name = line[1:].strip()
                if name in seen:
                    raise _Fail(f"table {name!r} appears twice")
                seen.add(name)
                if name in _IGNORED_TABLES:
                    warnings.append(
                        f"{source}:{lineno}: table {name!r} is not simulated; its rules are ignored"
                    )
                    current = _TableBuilder(None, name, lineno)
                elif name in Table._value2member_map_:
                    current = _TableBuilder(Table(name), name, lineno)
                else:
                    raise _Fail(f"unknown table {name!r} (expected raw, mangle, nat or filter)")
                continue
            if current is None:
                raise _Fail(f"{line.split()[0]!r} outside a table (missing '*table' line)")
            if line == "COMMIT":
                if current.table is not None:
                    tables[current.table] = _finish_table(current, source)
                current = None
                continue
            if line.startswith(":"):
                _declare_chain(current, line)
                continue
            counters = _COUNTERS.match(line)
            if counters is not None:
                line = line[counters.end() :].lstrip()
            elif line.startswith("["):
                raise _Fail(f"malformed counters {line.split()[0]!r} (expected [packets:bytes])")
            if not line.startswith("-A"):
                raise _Fail(
                    f"unexpected line {line[:40]!r} (expected -A, :CHAIN, COMMIT or *table)"
                )
            if current.table is None:
                continue
            rule, rule_warnings = _parse_rule(line, current, lineno)
            current.rules[rule.chain].append(rule)
            warnings.extend(
                f"{source}:{lineno}: {rule.table.value}/{rule.chain} #{rule.index}: {w}"
                for w in rule_warnings
            )
        except _Fail as err:
            raise RulesParseError(f"{source}:{lineno}: {err}") from None
    if current is not None:
        raise RulesParseError(
            f"{source}:{lineno}: table {current.name!r} (line {current.lineno}) has no COMMIT"
        )
    return Ruleset(source=source, tables=tables, warnings=tuple(warnings))


def _parse_lazily(text: str, source: str) -> Ruleset:
    tables: dict[Table, dict[str, Chain]] = {}
    current: _TableBuilder | None = None
    lines: dict[str, list[tuple[str, int]]] = {}
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if line.startswith("-A "):
            if current is not None and current.table is not None:
                chain = line.split(None, 2)[1]
                lines.setdefault(chain, []).append((line, lineno))
            continue
        try:
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                name = line[1:].strip()
                table = Table(name) if name in Table._value2member_map_ else None
                current = _TableBuilder(table, name, lineno)
                lines = {}
            elif line == "COMMIT" and current is not None:
                if current.table is not None:
                    tables[current.table] = _LazyChains(
                        current.table, current.policies, lines, source
                    )
                current = None
            elif line.startswith(":") and current is not None:
                _declare_chain(current, line)
            else:
                raise _Fail(f"unexpected line {line[:40]!r} in rendered rules")
        except _Fail as err:
            raise RulesParseError(f"{source}:{lineno}: {err}") from None
    return Ruleset.model_construct(source=source, tables=tables, warnings=())


def _declare_chain(current: _TableBuilder, line: str) -> None:
    parts = line[1:].split()
    if len(parts) not in (2, 3) or (len(parts) == 3 and not _COUNTERS.fullmatch(parts[2])):
        raise _Fail(f"malformed chain line {line!r} (expected ':CHAIN POLICY [packets:bytes]')")
    name, policy = parts[0], parts[1]
    if name in current.policies:
        raise _Fail(f"chain {name!r} declared twice")
    builtin = current.table is None or name in BUILTIN_CHAINS[current.table]
    if builtin:
        if policy not in ("ACCEPT", "DROP"):
            raise _Fail(f"built-in chain {name} has policy {policy!r} (must be ACCEPT or DROP)")
        current.policies[name] = policy
    else:
        if policy != "-":
            raise _Fail(f"user chain {name} has policy {policy!r} (user chains take '-')")
        current.policies[name] = None
    current.rules[name] = []


def _finish_table(current: _TableBuilder, source: str) -> dict[str, Chain]:
    assert current.table is not None
    chains: dict[str, Chain] = {}
    for name, policy in current.policies.items():
        chains[name] = Chain(
            name=name,
            policy="ACCEPT" if policy == "ACCEPT" else "DROP" if policy == "DROP" else None,
            rules=tuple(current.rules[name]),
        )
    _check_loops(chains, source)
    return chains


def _check_loops(chains: dict[str, Chain], source: str) -> None:
    # iptables-restore refuses a ruleset whose jumps form a cycle (ELOOP);
    # the evaluator relies on that to terminate.
    done: set[str] = set()
    for start in chains:
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            name, pos = stack.pop()
            if pos == 0:
                path.append(name)
                on_path.add(name)
            rules = chains[name].rules
            while pos < len(rules):
                target = rules[pos].target
                pos += 1
                if isinstance(target, JumpTarget) and target.chain not in done:
                    if target.chain in on_path:
                        loop = " -> ".join([*path[path.index(target.chain) :], target.chain])
                        rule = rules[pos - 1]
                        raise RulesParseError(
                            f"{source}:{rule.lineno}: jump to {target.chain} makes a loop ({loop})"
                        )
                    stack.append((name, pos))
                    stack.append((target.chain, 0))
                    break
            else:
                path.pop()
                on_path.discard(name)
                done.add(name)


def _tokens(line: str) -> list[str]:
    """The words of `line` as `shlex.split` gives them, without shlex's per-character loop."""
    if '"' not in line and "'" not in line and "\\" not in line:
        return line.split()
    words: list[str] = []
    pos = 0
    for word in _WORD.finditer(line):
        if line[pos : word.start()].strip():
            break
        text = word.group(0)
        words.append(_PIECE.sub(_unquote, text) if _QUOTING.search(text) else text)
        pos = word.end()
    else:
        if not line[pos:].strip():
            return words
    # A stray quote or backslash: let shlex say what is wrong.
    try:
        return shlex.split(line)
    except ValueError as err:
        raise _Fail(f"cannot split rule into words: {err}") from None


def _unquote(piece: re.Match[str]) -> str:
    double, single, escaped = piece.group(1), piece.group(2), piece.group(3)
    if double is not None:
        # In double quotes POSIX shells (and shlex) unescape only \" and \\.
        return _DQ_ESCAPE.sub(r"\1", double)
    if single is not None:
        return single
    if escaped is not None:
        return escaped
    return piece.group(0)


def _parse_rule(line: str, current: _TableBuilder, lineno: int) -> tuple[Rule, list[str]]:
    assert current.table is not None
    table = current.table
    toks = _tokens(line)
    if len(toks) < 2:
        raise _Fail("-A needs a chain name")
    chain = toks[1]
    if chain not in current.rules:
        raise _Fail(f"rule appended to undeclared chain {chain!r}")
    warnings: list[str] = []
    base: list[Match] = []
    ext: list[Match] = []
    target: Target | None = None
    seen_base: set[str] = set()
    i, n = 2, len(toks)
    while i < n:
        negate = False
        if toks[i] == "!":
            negate = True
            i += 1
            if i >= n:
                raise _Fail("'!' at end of rule")
        opt = toks[i]
        i += 1
        if opt in ("-s", "--source", "--src", "-d", "--destination", "--dst"):
            side: str = "src" if opt in ("-s", "--source", "--src") else "dst"
            value, negate, i = _value(toks, i, opt, negate)
            _once(seen_base, side, opt)
            base.append(
                AddrMatch.model_construct(
                    field="src" if side == "src" else "dst", net=_network(value, opt), negate=negate
                )
            )
        elif opt in ("-p", "--protocol"):
            value, negate, i = _value(toks, i, opt, negate)
            _once(seen_base, "proto", opt)
            proto = _PROTO_NUMBERS.get(value, value.lower())
            if proto not in _PROTOCOLS:
                raise _Fail(f"{opt} {value}: unknown protocol")
            base.append(ProtoMatch.model_construct(proto=proto, negate=negate))
        elif opt in ("-i", "--in-interface", "-o", "--out-interface"):
            value, negate, i = _value(toks, i, opt, negate)
            way = "in" if opt in ("-i", "--in-interface") else "out"
            _once(seen_base, way, opt)
            if len(value) > 15 or not value:
                raise _Fail(f"{opt} {value!r}: interface names have 1-15 characters")
            base.append(IfaceMatch(field="in" if way == "in" else "out", name=value, negate=negate))
        elif opt in ("-f", "--fragment"):
            base.append(FragmentMatch(negate=negate))
        elif opt in ("-c", "--set-counters"):
            i += 2
        elif opt in ("-m", "--match"):
            if negate:
                raise _Fail(f"'!' before {opt} (negate the module's options instead)")
            if i >= n:
                raise _Fail(f"{opt} needs a module name")
            module = toks[i]
            spec = _MODULE_OPTIONS.get(module)
            options, raw, unknown, i = _collect(toks, i + 1, spec, f"-m {module}")
            if spec is None or unknown is not None:
                what = f"option {unknown} of -m {module}" if spec is not None else f"-m {module}"
                warnings.append(f"cannot evaluate {what}; assumed it does not match")
                ext.append(UnknownMatch(module=module, args=raw))
            else:
                ext.extend(_build_match(module, options, warnings))
        elif opt in ("-j", "--jump", "-g", "--goto"):
            if negate:
                raise _Fail(f"'!' before {opt}")
            if target is not None:
                raise _Fail("more than one target (-j/-g)")
            if i >= n:
                raise _Fail(f"{opt} needs a target name")
            name = toks[i]
            target, i = _parse_target(
                toks, i + 1, name, opt in ("-g", "--goto"), table, current, warnings
            )
        else:
            raise _Fail(f"unknown option {opt!r}")
    index = len(current.rules[chain]) + 1
    # Every value was checked above; skipping pydantic's second check halves
    # the time to parse a node with a 20,000-rule KUBE-SERVICES.
    rule = Rule.model_construct(
        table=table,
        chain=chain,
        index=index,
        line=line,
        lineno=lineno,
        matches=(*base, *ext),
        target=target,
    )
    return rule, warnings


def _once(seen: set[str], key: str, opt: str) -> None:
    if key in seen:
        raise _Fail(f"{opt} given twice")
    seen.add(key)


def _value(toks: Sequence[str], i: int, opt: str, negate: bool) -> tuple[str, bool, int]:
    # iptables still accepts the old `-s ! ADDR` spelling.
    if i < len(toks) and toks[i] == "!" and not negate:
        negate = True
        i += 1
    if i >= len(toks):
        raise _Fail(f"{opt} needs a value")
    return toks[i], negate, i + 1


def _is_module_option(tok: str) -> bool:
    return tok.startswith("--") and tok not in _BASE_LONG


def _collect(
    toks: Sequence[str], i: int, spec: dict[str, int] | None, owner: str
) -> tuple[list[_Option], tuple[str, ...], str | None, int]:
    """The `[!] --opt args…` words after `-m NAME` or `-j NAME`, and the first unknown option."""
    options: list[_Option] = []
    unknown: str | None = None
    start, n = i, len(toks)
    while i < n:
        if toks[i] == "!" and i + 1 < n and _is_module_option(toks[i + 1]):
            negate, name, k = True, toks[i + 1], i + 2
        elif _is_module_option(toks[i]):
            negate, name, k = False, toks[i], i + 1
        else:
            break
        arity = None if spec is None else spec.get(name)
        args: list[str] = []
        if arity is None:
            unknown = unknown or name
            while k < n and toks[k] != "!" and not toks[k].startswith("-"):
                args.append(toks[k])
                k += 1
        else:
            for _ in range(arity):
                if k < n and toks[k] == "!" and not negate:
                    negate, k = True, k + 1
                if k >= n:
                    raise _Fail(f"{owner} {name} needs a value")
                args.append(toks[k])
                k += 1
        options.append(_Option(negate, name, tuple(args)))
        i = k
    return options, tuple(toks[start:i]), unknown, i


def _network(value: str, opt: str) -> IPv4Network:
    net = _cached_network(value)
    if net is None:
        raise _Fail(f"{opt} {value}: not an IPv4 address or network")
    return net


@functools.lru_cache(maxsize=65536)
def _cached_network(value: str) -> IPv4Network | None:
    # The pod CIDR and each ClusterIP recur in many rules; ipaddress parsing is slow.
    try:
        return IPv4Network(value, strict=False)
    except (AddressValueError, NetmaskValueError, ValueError):
        return None


def _address(value: str, opt: str) -> IPv4Address:
    try:
        return IPv4Address(value)
    except (AddressValueError, ValueError):
        raise _Fail(f"{opt} {value}: not an IPv4 address") from None


def _int(value: str, opt: str, lo: int = 0, hi: int = 0xFFFFFFFF) -> int:
    # strtoul(…, 0) as iptables parses numbers: 0x hex, leading 0 octal.
    try:
        if value.lower().startswith("0x"):
            number = int(value, 16)
        elif len(value) > 1 and value.startswith("0"):
            number = int(value, 8)
        else:
            number = int(value, 10)
    except ValueError:
        raise _Fail(f"{opt} {value}: not a number") from None
    if not lo <= number <= hi:
        raise _Fail(f"{opt} {value}: out of range {lo}-{hi}")
    return number


def _port(value: str, opt: str) -> int:
    if not value.isdigit():
        raise _Fail(f"{opt} {value}: not a port number")
    port = int(value)
    if port > 65535:
        raise _Fail(f"{opt} {value}: port out of range 0-65535")
    return port


def _port_range(value: str, opt: str, sep: str = ":") -> PortRange:
    lo_text, found, hi_text = value.partition(sep)
    lo = _port(lo_text, opt) if lo_text else 0
    hi = (_port(hi_text, opt) if hi_text else 65535) if found else lo
    if lo > hi:
        raise _Fail(f"{opt} {value}: range starts after it ends")
    return PortRange.model_construct(lo=lo, hi=hi)


def _value_mask(value: str, opt: str) -> tuple[int, int]:
    v, found, m = value.partition("/")
    return _int(v, opt), (_int(m, opt) if found else 0xFFFFFFFF)


def _names(value: str, opt: str, allowed: frozenset[str]) -> tuple[str, ...]:
    names = tuple(v.strip().upper() for v in value.split(","))
    for name in names:
        if name not in allowed:
            raise _Fail(
                f"{opt} {value}: unknown value {name!r} (expected {', '.join(sorted(allowed))})"
            )
    return names


def _build_match(module: str, options: list[_Option], warnings: list[str]) -> list[Match]:
    builder = _MATCH_BUILDERS.get(module)
    if builder is None:
        raise _Fail(f"-m {module}: no options understood")
    if not options and module not in (
        "addrtype",
        "conntrack",
        "state",
        "physdev",
        "tcp",
        "udp",
        "sctp",
    ):
        raise _Fail(f"-m {module} needs options")
    return builder(module, options, warnings)


def _comment(module: str, options: list[_Option], warnings: list[str]) -> list[Match]:
    return [CommentMatch.model_construct(comment=o.args[0]) for o in options]


def _ports(module: str, options: list[_Option], warnings: list[str]) -> list[Match]:
    matches: list[Match] = []
    for o in options:
        if o.name in ("--dport", "--destination-port", "--sport", "--source-port"):
            side = "dport" if o.name in ("--dport", "--destination-port") else "sport"
            matches.append(
                PortMatch.model_construct(
                    module=module,
                    field="dport" if side == "dport" else "sport",
                    ports=_port_range(o.args[0], o.name),
                    negate=o.negate,
                )
            )
        elif o.name == "--syn":
            matches.append(
                TcpFlagsMatch(mask=("SYN", "RST", "ACK", "FIN"), comp=("SYN",), negate=o.negate)
            )
        else:
            mask = _names(o.args[0], o.name, _TCP_FLAGS)
            comp = _names(o.args[1], o.name, _TCP_FLAGS)
            matches.append(TcpFlagsMatch(mask=mask, comp=comp, negate=o.negate))
    return matches


def _multiport(module: str, options: list[_Option], warnings: list[str]) -> list[Match]:
    matches: list[Match] = []
    for o in options:
        items = o.args[0].split(",")
        if len(items) > 15:
            raise _Fail(f"{o.name} {o.args[0]}: more than 15 ports")
        side = "port" if o.name == "--ports" else "dport" if "d" in o.name[2:4] else "sport"
        matches.append(
            MultiportMatch(
                field="port" if side == "port" else "dport" if side == "dport" else "sport",
                ranges=tuple(_port_range(item, o.name) for item in items),
                negate=o.negate,
            )
        )
    return matches


def _statistic(module: str, options: list[_Option], warnings: list[str]) -> list[Match]:
    given = {o.name: o for o in options}
    mode_opt = given.get("--mode")
    if mode_opt is None:
        raise _Fail("-m statistic needs --mode")
    mode = mode_opt.args[0]
    negate = any(o.negate for o in options)
    if mode == "random":
        prob = given.get("--probability")
        if prob is None:
            raise _Fail("-m statistic --mode random needs --probability")
        try:
            p = float(prob.args[0])
        except ValueError:
            raise _Fail(f"--probability {prob.args[0]}: not a number") from None
        if not 0.0 <= p <= 1.0:
            raise _Fail(f"--probability {prob.args[0]}: must be between 0 and 1")
        return [StatisticMatch(mode="random", probability=p, negate=negate)]
    if mode == "nth":
        every_opt = given.get("--every")
        if every_opt is None:
            raise _Fail("-m statistic --mode nth needs --every")
        every = _int(every_opt.args[0], "--every", lo=1)
        packet_opt = given.get("--packet")
        packet = _int(packet_opt.args[0], "--packet", hi=every - 1) if packet_opt else 0
        return [StatisticMatch(mode="nth", every=every, packet=packet, negate=negate)]
    raise _Fail(f"--mode {mode}: expected random or nth")


def _mark(module: str, options: list[_Option], warnings: list[str]) -> list[Match]:
    matches: list[Match] = []
    for o in options:
        value, mask = _value_mask(o.args[0], o.name)
        matches.append(MarkMatch(value=value, mask=mask, negate=o.negate))
    return matches


def _addrtype(module: str, options: list[_Option], warnings: list[str]) -> list[Match]:
    fields: dict[str, object] = {}
    for o in options:
        if o.name == "--src-type":
            fields["src_types"] = _names(o.args[0], o.name, _ADDR_TYPES)
            fields["src_negate"] = o.negate
        elif o.name == "--dst-type":
            fields["dst_types"] = _names(o.args[0], o.name, _ADDR_TYPES)
            fields["dst_negate"] = o.negate
        elif o.name == "--limit-iface-in":
            fields["limit_iface_in"] = True
        else:
            fields["limit_iface_out"] = True
    if fields.get("limit_iface_in") and fields.get("limit_iface_out"):
        raise _Fail("--limit-iface-in and --limit-iface-out cannot both be given")
    return [AddrtypeMatch.model_validate(fields)]


def _conntrack(module: str, options: list[_Option], warnings: list[str]) -> list[Match]:
    fields: dict[str, object] = {}
    addrs: list[CtAddrCondition] = []
    ports: list[CtPortCondition] = []
    for o in options:
        arg = o.args[0]
        if o.name in ("--ctstate", "--state"):
            fields["states"] = _names(arg, o.name, _CT_STATES)
            fields["states_negate"] = o.negate
        elif o.name == "--ctstatus":
            fields["statuses"] = _names(arg, o.name, _CT_STATUSES)
            fields["statuses_negate"] = o.negate
        elif o.name == "--ctproto":
            proto = _PROTO_NUMBERS.get(arg, arg.lower())
            if proto not in _PROTOCOLS:
                raise _Fail(f"--ctproto {arg}: unknown protocol")
            fields["proto"] = proto
            fields["proto_negate"] = o.negate
        elif o.name == "--ctdir":
            if arg.upper() not in ("ORIGINAL", "REPLY"):
                raise _Fail(f"--ctdir {arg}: expected ORIGINAL or REPLY")
            fields["direction"] = arg.upper()
        elif o.name.endswith("port"):
            ports.append(
                CtPortCondition.model_validate(
                    {"option": o.name[2:], "ports": _port_range(arg, o.name), "negate": o.negate}
                )
            )
        else:
            addrs.append(
                CtAddrCondition.model_validate(
                    {"option": o.name[2:], "net": _network(arg, o.name), "negate": o.negate}
                )
            )
    return [ConntrackMatch.model_validate({**fields, "addrs": tuple(addrs), "ports": tuple(ports)})]


def _recent(module: str, options: list[_Option], warnings: list[str]) -> list[Match]:
    fields: dict[str, object] = {}
    commands = [o for o in options if o.name in ("--set", "--rcheck", "--update", "--remove")]
    if len(commands) != 1:
        raise _Fail("-m recent needs exactly one of --set, --rcheck, --update, --remove")
    fields["command"] = commands[0].name[2:]
    fields["negate"] = commands[0].negate
    for o in options:
        if o.name == "--name":
            fields["name"] = o.args[0]
        elif o.name == "--seconds":
            fields["seconds"] = _int(o.args[0], o.name, lo=1)
        elif o.name == "--hitcount":
            fields["hitcount"] = _int(o.args[0], o.name, lo=1, hi=255)
        elif o.name == "--reap":
            fields["reap"] = True
        elif o.name == "--rttl":
            fields["rttl"] = True
            warnings.append("-m recent --rttl is not simulated; TTLs are not compared")
        elif o.name == "--rdest":
            fields["side"] = "dst"
        elif o.name == "--mask":
            fields["mask"] = _address(o.args[0], o.name)
    if fields.get("reap") and "seconds" not in fields:
        raise _Fail("-m recent --reap needs --seconds")
    return [RecentMatch.model_validate(fields)]


def _physdev(module: str, options: list[_Option], warnings: list[str]) -> list[Match]:
    fields: dict[str, object] = {}
    for o in options:
        if o.name == "--physdev-in":
            fields["physdev_in"] = o.args[0]
            fields["in_negate"] = o.negate
        elif o.name == "--physdev-out":
            fields["physdev_out"] = o.args[0]
            fields["out_negate"] = o.negate
        else:
            fields[o.name.removeprefix("--physdev-").replace("-", "_")] = not o.negate
    return [PhysdevMatch.model_validate(fields)]


def _nfacct(module: str, options: list[_Option], warnings: list[str]) -> list[Match]:
    return [NfacctMatch(name=o.args[0]) for o in options]


def _icmp(module: str, options: list[_Option], warnings: list[str]) -> list[Match]:
    return [IcmpMatch(icmp_type=o.args[0], negate=o.negate) for o in options]


_MATCH_BUILDERS: dict[str, Callable[[str, list[_Option], list[str]], list[Match]]] = {
    "comment": _comment,
    "nfacct": _nfacct,
    "tcp": _ports,
    "udp": _ports,
    "sctp": _ports,
    "multiport": _multiport,
    "statistic": _statistic,
    "mark": _mark,
    "addrtype": _addrtype,
    "conntrack": _conntrack,
    "state": _conntrack,
    "recent": _recent,
    "physdev": _physdev,
    "icmp": _icmp,
}


def _parse_target(
    toks: Sequence[str],
    i: int,
    name: str,
    goto: bool,
    table: Table,
    current: _TableBuilder,
    warnings: list[str],
) -> tuple[Target, int]:
    if name in current.rules:
        if current.policies[name] is not None:
            raise _Fail(f"cannot jump to built-in chain {name}")
        return JumpTarget.model_construct(chain=name, goto=goto), i
    if goto:
        raise _Fail(f"-g {name}: no such chain in table {table.value}")
    spec = _TARGET_OPTIONS.get(name)
    if spec is None:
        if name not in _FOREIGN_TARGETS:
            raise _Fail(f"-j {name}: no such chain in table {table.value}, and not a known target")
        options, raw, _unknown, i = _collect(toks, i, None, f"-j {name}")
        if name == "CT" and raw == ("--notrack",):
            return NotrackTarget(), i
        warnings.append(
            f"target {' '.join((name, *raw))} is not simulated;"
            " assumed to continue to the next rule"
        )
        return UnknownTarget(name=name, args=raw), i
    options, _raw, unknown, i = _collect(toks, i, spec, f"-j {name}")
    if unknown is not None:
        raise _Fail(f"-j {name}: unknown option {unknown}")
    given = {o.name: o.args for o in options}
    flags = {o.name for o in options}
    if name == "ACCEPT":
        return AcceptTarget(), i
    if name == "DROP":
        return DropTarget(), i
    if name == "RETURN":
        return ReturnTarget(), i
    if name == "NOTRACK":
        return NotrackTarget(), i
    if name == "REJECT":
        return RejectTarget(
            reject_with=given.get("--reject-with", ("icmp-port-unreachable",))[0]
        ), i
    if name == "DNAT":
        if "--to-destination" not in given:
            raise _Fail("-j DNAT needs --to-destination")
        addr, addr_hi, ports = _nat_range(given["--to-destination"][0], "--to-destination")
        if addr_hi is not None and addr_hi != addr:
            warnings.append("DNAT to an address range is simulated as its first address")
        return DnatTarget(
            addr=addr,
            addr_hi=addr_hi,
            ports=ports,
            random="--random" in flags,
            persistent="--persistent" in flags,
        ), i
    if name == "SNAT":
        if "--to-source" not in given:
            raise _Fail("-j SNAT needs --to-source")
        addr, addr_hi, ports = _nat_range(given["--to-source"][0], "--to-source")
        if addr_hi is not None and addr_hi != addr:
            warnings.append("SNAT to an address range is simulated as its first address")
        return SnatTarget(
            addr=addr,
            addr_hi=addr_hi,
            ports=ports,
            random="--random" in flags,
            random_fully="--random-fully" in flags,
            persistent="--persistent" in flags,
        ), i
    if name == "MASQUERADE":
        to_ports = given.get("--to-ports")
        return MasqueradeTarget(
            ports=_port_range(to_ports[0], "--to-ports", sep="-") if to_ports else None,
            random="--random" in flags,
            random_fully="--random-fully" in flags,
        ), i
    if name == "MARK":
        return _mark_target(options), i
    if name == "CONNMARK":
        return _connmark_target(options), i
    return LogTarget(
        prefix=given.get("--log-prefix", ("",))[0], level=given.get("--log-level", ("warning",))[0]
    ), i


def _nat_range(
    value: str, opt: str
) -> tuple[IPv4Address | None, IPv4Address | None, PortRange | None]:
    addr_text, found, port_text = value.partition(":")
    addr: IPv4Address | None = None
    addr_hi: IPv4Address | None = None
    if addr_text:
        lo_text, dash, hi_text = addr_text.partition("-")
        addr = _address(lo_text, opt)
        if dash:
            addr_hi = _address(hi_text, opt)
            if addr_hi < addr:
                raise _Fail(f"{opt} {value}: address range starts after it ends")
    ports = _port_range(port_text, opt, sep="-") if found else None
    if addr is None and ports is None:
        raise _Fail(f"{opt} {value!r}: needs an address or a port")
    if ports is not None and ports.lo == 0:
        raise _Fail(f"{opt} {value}: port 0 is not a valid NAT port")
    return addr, addr_hi, ports


def _mark_target(options: list[_Option]) -> MarkTarget:
    if len(options) != 1:
        raise _Fail(
            "-j MARK needs exactly one of"
            " --set-xmark, --set-mark, --or-mark, --and-mark, --xor-mark"
        )
    o = options[0]
    # Normalised the way libxt_MARK hands the kernel (mark & ~mask) ^ value.
    if o.name == "--set-xmark":
        value, mask = _value_mask(o.args[0], o.name)
        return MarkTarget(value=value, mask=mask)
    if o.name == "--set-mark":
        value, mask = _value_mask(o.args[0], o.name)
        return MarkTarget(value=value, mask=mask | value)
    bits = _int(o.args[0], o.name)
    if o.name == "--or-mark":
        return MarkTarget(value=bits, mask=bits)
    if o.name == "--and-mark":
        return MarkTarget(value=0, mask=~bits & 0xFFFFFFFF)
    return MarkTarget(value=bits, mask=0)


def _connmark_target(options: list[_Option]) -> ConnmarkTarget:
    given = {o.name: o.args for o in options}
    nfmask = _int(given["--nfmask"][0], "--nfmask") if "--nfmask" in given else 0xFFFFFFFF
    ctmask = _int(given["--ctmask"][0], "--ctmask") if "--ctmask" in given else 0xFFFFFFFF
    if "--mask" in given:
        nfmask = ctmask = _int(given["--mask"][0], "--mask")
    if "--set-xmark" in given:
        value, mask = _value_mask(given["--set-xmark"][0], "--set-xmark")
        return ConnmarkTarget(mode="set", value=value, mask=mask)
    if "--set-mark" in given:
        value, mask = _value_mask(given["--set-mark"][0], "--set-mark")
        return ConnmarkTarget(mode="set", value=value, mask=mask | value)
    if "--save-mark" in given:
        return ConnmarkTarget(mode="save", nfmask=nfmask, ctmask=ctmask)
    if "--restore-mark" in given:
        return ConnmarkTarget(mode="restore", nfmask=nfmask, ctmask=ctmask)
    raise _Fail("-j CONNMARK needs --set-xmark, --set-mark, --save-mark or --restore-mark")
