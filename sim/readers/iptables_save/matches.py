"""Match modules (`-m tcp`, `-m conntrack`, …): each one's options into `Match`es."""

from __future__ import annotations

from collections.abc import Callable

from model.netfilter import (
    AddrtypeMatch,
    CommentMatch,
    ConntrackMatch,
    CtAddrCondition,
    CtPortCondition,
    IcmpMatch,
    MarkMatch,
    Match,
    MultiportMatch,
    NfacctMatch,
    PhysdevMatch,
    PortMatch,
    RecentMatch,
    StatisticMatch,
    TcpFlagsMatch,
)
from sim.readers.iptables_save.options import Option
from sim.readers.iptables_save.values import (
    PROTO_NUMBERS,
    PROTOCOLS,
    address,
    integer,
    name_list,
    network,
    port_range,
    value_mask,
)
from sim.readers.iptables_save.words import LineError

MODULE_OPTIONS: dict[str, dict[str, int]] = {
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
"""Each match module kubehop evaluates, with its options' argument counts."""

_CT_STATES = frozenset({"NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "DNAT", "SNAT"})
_CT_STATUSES = frozenset({"NONE", "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED"})
_ADDR_TYPES = frozenset(
    {"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
     "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"}
)  # fmt: skip
_TCP_FLAGS = frozenset({"SYN", "ACK", "FIN", "RST", "URG", "PSH", "ALL", "NONE"})


def build_match(module: str, options: list[Option], warnings: list[str]) -> list[Match]:
    """The matches `-m module` with `options` makes."""
    builder = _MATCH_BUILDERS.get(module)
    if builder is None:
        raise LineError(f"-m {module}: no options understood")
    if not options and module not in (
        "addrtype",
        "conntrack",
        "state",
        "physdev",
        "tcp",
        "udp",
        "sctp",
    ):
        raise LineError(f"-m {module} needs options")
    return builder(module, options, warnings)


def _comment(module: str, options: list[Option], warnings: list[str]) -> list[Match]:
    return [CommentMatch.model_construct(comment=o.args[0]) for o in options]


def _ports(module: str, options: list[Option], warnings: list[str]) -> list[Match]:
    matches: list[Match] = []
    for o in options:
        if o.name in ("--dport", "--destination-port", "--sport", "--source-port"):
            side = "dport" if o.name in ("--dport", "--destination-port") else "sport"
            matches.append(
                PortMatch.model_construct(
                    module=module,
                    field="dport" if side == "dport" else "sport",
                    ports=port_range(o.args[0], o.name),
                    negate=o.negate,
                )
            )
        elif o.name == "--syn":
            matches.append(
                TcpFlagsMatch(mask=("SYN", "RST", "ACK", "FIN"), comp=("SYN",), negate=o.negate)
            )
        else:
            mask = name_list(o.args[0], o.name, _TCP_FLAGS)
            comp = name_list(o.args[1], o.name, _TCP_FLAGS)
            matches.append(TcpFlagsMatch(mask=mask, comp=comp, negate=o.negate))
    return matches


def _multiport(module: str, options: list[Option], warnings: list[str]) -> list[Match]:
    matches: list[Match] = []
    for o in options:
        items = o.args[0].split(",")
        if len(items) > 15:
            raise LineError(f"{o.name} {o.args[0]}: more than 15 ports")
        side = "port" if o.name == "--ports" else "dport" if "d" in o.name[2:4] else "sport"
        matches.append(
            MultiportMatch(
                field="port" if side == "port" else "dport" if side == "dport" else "sport",
                ranges=tuple(port_range(item, o.name) for item in items),
                negate=o.negate,
            )
        )
    return matches


def _statistic(module: str, options: list[Option], warnings: list[str]) -> list[Match]:
    given = {o.name: o for o in options}
    mode_opt = given.get("--mode")
    if mode_opt is None:
        raise LineError("-m statistic needs --mode")
    mode = mode_opt.args[0]
    negate = any(o.negate for o in options)
    if mode == "random":
        prob = given.get("--probability")
        if prob is None:
            raise LineError("-m statistic --mode random needs --probability")
        try:
            p = float(prob.args[0])
        except ValueError:
            raise LineError(f"--probability {prob.args[0]}: not a number") from None
        if not 0.0 <= p <= 1.0:
            raise LineError(f"--probability {prob.args[0]}: must be between 0 and 1")
        return [StatisticMatch(mode="random", probability=p, negate=negate)]
    if mode == "nth":
        every_opt = given.get("--every")
        if every_opt is None:
            raise LineError("-m statistic --mode nth needs --every")
        every = integer(every_opt.args[0], "--every", lo=1)
        packet_opt = given.get("--packet")
        packet = integer(packet_opt.args[0], "--packet", hi=every - 1) if packet_opt else 0
        return [StatisticMatch(mode="nth", every=every, packet=packet, negate=negate)]
    raise LineError(f"--mode {mode}: expected random or nth")


def _mark(module: str, options: list[Option], warnings: list[str]) -> list[Match]:
    matches: list[Match] = []
    for o in options:
        value, mask = value_mask(o.args[0], o.name)
        matches.append(MarkMatch(value=value, mask=mask, negate=o.negate))
    return matches


def _addrtype(module: str, options: list[Option], warnings: list[str]) -> list[Match]:
    fields: dict[str, object] = {}
    for o in options:
        if o.name == "--src-type":
            fields["src_types"] = name_list(o.args[0], o.name, _ADDR_TYPES)
            fields["src_negate"] = o.negate
        elif o.name == "--dst-type":
            fields["dst_types"] = name_list(o.args[0], o.name, _ADDR_TYPES)
            fields["dst_negate"] = o.negate
        elif o.name == "--limit-iface-in":
            fields["limit_iface_in"] = True
        else:
            fields["limit_iface_out"] = True
    if fields.get("limit_iface_in") and fields.get("limit_iface_out"):
        raise LineError("--limit-iface-in and --limit-iface-out cannot both be given")
    return [AddrtypeMatch.model_validate(fields)]


def _conntrack(module: str, options: list[Option], warnings: list[str]) -> list[Match]:
    fields: dict[str, object] = {}
    addrs: list[CtAddrCondition] = []
    ports: list[CtPortCondition] = []
    for o in options:
        arg = o.args[0]
        if o.name in ("--ctstate", "--state"):
            fields["states"] = name_list(arg, o.name, _CT_STATES)
            fields["states_negate"] = o.negate
        elif o.name == "--ctstatus":
            fields["statuses"] = name_list(arg, o.name, _CT_STATUSES)
            fields["statuses_negate"] = o.negate
        elif o.name == "--ctproto":
            proto = PROTO_NUMBERS.get(arg, arg.lower())
            if proto not in PROTOCOLS:
                raise LineError(f"--ctproto {arg}: unknown protocol")
            fields["proto"] = proto
            fields["proto_negate"] = o.negate
        elif o.name == "--ctdir":
            if arg.upper() not in ("ORIGINAL", "REPLY"):
                raise LineError(f"--ctdir {arg}: expected ORIGINAL or REPLY")
            fields["direction"] = arg.upper()
        elif o.name.endswith("port"):
            ports.append(
                CtPortCondition.model_validate(
                    {"option": o.name[2:], "ports": port_range(arg, o.name), "negate": o.negate}
                )
            )
        else:
            addrs.append(
                CtAddrCondition.model_validate(
                    {"option": o.name[2:], "net": network(arg, o.name), "negate": o.negate}
                )
            )
    return [ConntrackMatch.model_validate({**fields, "addrs": tuple(addrs), "ports": tuple(ports)})]


def _recent(module: str, options: list[Option], warnings: list[str]) -> list[Match]:
    fields: dict[str, object] = {}
    commands = [o for o in options if o.name in ("--set", "--rcheck", "--update", "--remove")]
    if len(commands) != 1:
        raise LineError("-m recent needs exactly one of --set, --rcheck, --update, --remove")
    fields["command"] = commands[0].name[2:]
    fields["negate"] = commands[0].negate
    for o in options:
        if o.name == "--name":
            fields["name"] = o.args[0]
        elif o.name == "--seconds":
            fields["seconds"] = integer(o.args[0], o.name, lo=1)
        elif o.name == "--hitcount":
            fields["hitcount"] = integer(o.args[0], o.name, lo=1, hi=255)
        elif o.name == "--reap":
            fields["reap"] = True
        elif o.name == "--rttl":
            fields["rttl"] = True
            warnings.append("-m recent --rttl is not simulated; TTLs are not compared")
        elif o.name == "--rdest":
            fields["side"] = "dst"
        elif o.name == "--mask":
            fields["mask"] = address(o.args[0], o.name)
    if fields.get("reap") and "seconds" not in fields:
        raise LineError("-m recent --reap needs --seconds")
    return [RecentMatch.model_validate(fields)]


def _physdev(module: str, options: list[Option], warnings: list[str]) -> list[Match]:
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


def _nfacct(module: str, options: list[Option], warnings: list[str]) -> list[Match]:
    return [NfacctMatch(name=o.args[0]) for o in options]


def _icmp(module: str, options: list[Option], warnings: list[str]) -> list[Match]:
    return [IcmpMatch(icmp_type=o.args[0], negate=o.negate) for o in options]


_MATCH_BUILDERS: dict[str, Callable[[str, list[Option], list[str]], list[Match]]] = {
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
