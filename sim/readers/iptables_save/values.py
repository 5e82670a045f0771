"""Option values: addresses, networks, numbers as iptables reads them, ports, marks, names."""

from __future__ import annotations

import functools
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError

from model.netfilter import PortRange
from sim.readers.iptables_save.words import LineError

PROTOCOLS = frozenset(
    {"all", "tcp", "udp", "udplite", "icmp", "icmpv6", "ipv6-icmp", "esp", "ah", "sctp",
     "mh", "gre", "ipip", "igmp", "ipencap", "dccp", "ospf", "vrrp"}
)  # fmt: skip
"""The protocol names `-p` and `--ctproto` accept."""

PROTO_NUMBERS = {"0": "all", "1": "icmp", "6": "tcp", "17": "udp", "132": "sctp", "47": "gre"}
"""Protocol numbers iptables-save may print, by name."""


def network(value: str, opt: str) -> IPv4Network:
    """The IPv4 address or network `value` of option `opt`."""
    net = _cached_network(value)
    if net is None:
        raise LineError(f"{opt} {value}: not an IPv4 address or network")
    return net


@functools.lru_cache(maxsize=65536)
def _cached_network(value: str) -> IPv4Network | None:
    # The pod CIDR and each ClusterIP recur in many rules; ipaddress parsing is slow.
    try:
        return IPv4Network(value, strict=False)
    except (AddressValueError, NetmaskValueError, ValueError):
        return None


def address(value: str, opt: str) -> IPv4Address:
    """The IPv4 address `value` of option `opt`."""
    try:
        return IPv4Address(value)
    except (AddressValueError, ValueError):
        raise LineError(f"{opt} {value}: not an IPv4 address") from None


def integer(value: str, opt: str, lo: int = 0, hi: int = 0xFFFFFFFF) -> int:
    """The number `value` of option `opt`, from `lo` to `hi`."""
    # strtoul(…, 0) as iptables parses numbers: 0x hex, leading 0 octal.
    try:
        if value.lower().startswith("0x"):
            number = int(value, 16)
        elif len(value) > 1 and value.startswith("0"):
            number = int(value, 8)
        else:
            number = int(value, 10)
    except ValueError:
        raise LineError(f"{opt} {value}: not a number") from None
    if not lo <= number <= hi:
        raise LineError(f"{opt} {value}: out of range {lo}-{hi}")
    return number


def _port(value: str, opt: str) -> int:
    if not value.isdigit():
        raise LineError(f"{opt} {value}: not a port number")
    port = int(value)
    if port > 65535:
        raise LineError(f"{opt} {value}: port out of range 0-65535")
    return port


def port_range(value: str, opt: str, sep: str = ":") -> PortRange:
    """A port or `lo<sep>hi` range; either end may be left out."""
    lo_text, found, hi_text = value.partition(sep)
    lo = _port(lo_text, opt) if lo_text else 0
    hi = (_port(hi_text, opt) if hi_text else 65535) if found else lo
    if lo > hi:
        raise LineError(f"{opt} {value}: range starts after it ends")
    return PortRange.model_construct(lo=lo, hi=hi)


def value_mask(value: str, opt: str) -> tuple[int, int]:
    """`value[/mask]` as numbers; no mask is all ones."""
    v, found, m = value.partition("/")
    return integer(v, opt), (integer(m, opt) if found else 0xFFFFFFFF)


def name_list(value: str, opt: str, allowed: frozenset[str]) -> tuple[str, ...]:
    """The comma-separated names in `value`, each one of `allowed` (case-insensitive)."""
    names = tuple(v.strip().upper() for v in value.split(","))
    for name in names:
        if name not in allowed:
            raise LineError(
                f"{opt} {value}: unknown value {name!r} (expected {', '.join(sorted(allowed))})"
            )
    return names
