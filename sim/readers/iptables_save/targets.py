"""Targets (`-j DNAT`, `-j MARK`, a jump to a chain, …) with their options into a `Target`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ipaddress import IPv4Address

from model.netfilter import (
    AcceptTarget,
    ConnmarkTarget,
    DnatTarget,
    DropTarget,
    JumpTarget,
    LogTarget,
    MarkTarget,
    MasqueradeTarget,
    NotrackTarget,
    PortRange,
    RejectTarget,
    ReturnTarget,
    SnatTarget,
    Table,
    Target,
    UnknownTarget,
)
from sim.readers.iptables_save.options import Option, collect, is_module_option
from sim.readers.iptables_save.tables import TableBuilder
from sim.readers.iptables_save.values import address, integer, port_range, value_mask
from sim.readers.iptables_save.words import LineError, StructureError

TARGET_OPTIONS: dict[str, dict[str, int]] = {
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
"""Each target kubehop evaluates, with its options' argument counts."""

# Extension targets that exist in the kernel but are not simulated: a rule
# using one is kept as UnknownTarget. Any other undeclared name followed by
# options is taken for a target of another iptables version; alone, it is a
# jump to a missing chain, which iptables-restore rejects too.
_FOREIGN_TARGETS = frozenset(
    {
        "CT", "TPROXY", "NFLOG", "ULOG", "NFQUEUE", "QUEUE", "TCPMSS", "CLASSIFY", "CHECKSUM",
        "DSCP", "TOS", "TTL", "TEE", "SET", "AUDIT", "REDIRECT", "NETMAP", "HMARK", "SECMARK",
        "CONNSECMARK", "IDLETIMER", "LED", "RATEEST", "SYNPROXY", "TRACE", "ECN", "CLUSTERIP",
        "TCPOPTSTRIP", "HL", "IPVS",
    }
)  # fmt: skip


def parse_target(
    toks: Sequence[str],
    i: int,
    name: str,
    goto: bool,
    table: Table,
    current: TableBuilder,
    warnings: list[str],
    claimed: Callable[[str], bool] | None = None,
) -> tuple[Target, int]:
    """The target `name` whose options start at `toks[i]`, and where they end."""
    check_jump(toks, i, name, goto, table, current, claimed)
    if name in current.rules:
        return JumpTarget.model_construct(chain=name, goto=goto), i
    spec = TARGET_OPTIONS.get(name)
    if spec is None:
        options, raw, _unknown, i = collect(toks, i, None, f"-j {name}", claimed)
        if name == "CT" and raw == ("--notrack",):
            return NotrackTarget(), i
        warnings.append(
            f"target {' '.join((name, *raw))} is not simulated;"
            " assumed to continue to the next rule"
        )
        return UnknownTarget(name=name, args=raw), i
    options, _raw, unknown, i = collect(toks, i, spec, f"-j {name}", claimed)
    if unknown is not None:
        raise LineError(f"-j {name}: unknown option {unknown}")
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
            raise LineError("-j DNAT needs --to-destination")
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
            raise LineError("-j SNAT needs --to-source")
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
            ports=port_range(to_ports[0], "--to-ports", sep="-") if to_ports else None,
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


def check_jump(
    toks: Sequence[str],
    i: int,
    name: str,
    goto: bool,
    table: Table,
    current: TableBuilder,
    claimed: Callable[[str], bool] | None = None,
) -> None:
    """Refuse, as iptables-restore does, a jump to a built-in chain or to a chain not declared.

    A name that is neither a declared chain nor a target kubehop knows is taken
    for a target of another iptables version when options follow it (a jump
    takes none), and for a missing chain otherwise.
    """
    if name in current.rules:
        if current.policies[name] is not None:
            raise StructureError(f"cannot jump to built-in chain {name}")
        return
    if goto:
        raise StructureError(f"-g {name}: no such chain in table {table.value}")
    if name in TARGET_OPTIONS or name in _FOREIGN_TARGETS:
        return
    following = toks[i] if i < len(toks) else ""
    if not is_module_option(following) or (claimed is not None and claimed(following)):
        raise StructureError(
            f"-j {name}: no such chain in table {table.value}, and not a known target"
        )


def _nat_range(
    value: str, opt: str
) -> tuple[IPv4Address | None, IPv4Address | None, PortRange | None]:
    addr_text, found, port_text = value.partition(":")
    addr: IPv4Address | None = None
    addr_hi: IPv4Address | None = None
    if addr_text:
        lo_text, dash, hi_text = addr_text.partition("-")
        addr = address(lo_text, opt)
        if dash:
            addr_hi = address(hi_text, opt)
            if addr_hi < addr:
                raise LineError(f"{opt} {value}: address range starts after it ends")
    ports = port_range(port_text, opt, sep="-") if found else None
    if addr is None and ports is None:
        raise LineError(f"{opt} {value!r}: needs an address or a port")
    if ports is not None and ports.lo == 0:
        raise LineError(f"{opt} {value}: port 0 is not a valid NAT port")
    return addr, addr_hi, ports


def _mark_target(options: list[Option]) -> MarkTarget:
    if len(options) != 1:
        raise LineError(
            "-j MARK needs exactly one of"
            " --set-xmark, --set-mark, --or-mark, --and-mark, --xor-mark"
        )
    o = options[0]
    # Normalised the way libxt_MARK hands the kernel (mark & ~mask) ^ value.
    if o.name == "--set-xmark":
        value, mask = value_mask(o.args[0], o.name)
        return MarkTarget(value=value, mask=mask)
    if o.name == "--set-mark":
        value, mask = value_mask(o.args[0], o.name)
        return MarkTarget(value=value, mask=mask | value)
    bits = integer(o.args[0], o.name)
    if o.name == "--or-mark":
        return MarkTarget(value=bits, mask=bits)
    if o.name == "--and-mark":
        return MarkTarget(value=0, mask=~bits & 0xFFFFFFFF)
    return MarkTarget(value=bits, mask=0)


def _connmark_target(options: list[Option]) -> ConnmarkTarget:
    given = {o.name: o.args for o in options}
    nfmask = integer(given["--nfmask"][0], "--nfmask") if "--nfmask" in given else 0xFFFFFFFF
    ctmask = integer(given["--ctmask"][0], "--ctmask") if "--ctmask" in given else 0xFFFFFFFF
    if "--mask" in given:
        nfmask = ctmask = integer(given["--mask"][0], "--mask")
    if "--set-xmark" in given:
        value, mask = value_mask(given["--set-xmark"][0], "--set-xmark")
        return ConnmarkTarget(mode="set", value=value, mask=mask)
    if "--set-mark" in given:
        value, mask = value_mask(given["--set-mark"][0], "--set-mark")
        return ConnmarkTarget(mode="set", value=value, mask=mask | value)
    if "--save-mark" in given:
        return ConnmarkTarget(mode="save", nfmask=nfmask, ctmask=ctmask)
    if "--restore-mark" in given:
        return ConnmarkTarget(mode="restore", nfmask=nfmask, ctmask=ctmask)
    raise LineError("-j CONNMARK needs --set-xmark, --set-mark, --save-mark or --restore-mark")
