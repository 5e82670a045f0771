"""A node's IPVS table, read from `ipvsadm-save -n` or `ipvsadm -Ln` output.

`ipvsadm-save -n` prints `-A -t VIP:PORT -s SCHED [-p T] [-M MASK] [-b FLAGS]` and, under
each, `-a -t VIP:PORT -r IP:PORT -m|-g|-i -w W`; `ipvsadm -Ln` a header, then `TCP
VIP:PORT SCHED [(FLAGS)] [persistent T [mask M]]` with `  -> IP:PORT Masq W ACTIVE INACTIVE`
lines. Either becomes an `IpvsTable`; a line neither prints is one `RulesParseError`
naming the file and line. The real servers keep the order the text gives (ipvsadm sorts
them; the kernel's own order is not printed).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address

from model.errors import RulesParseError
from model.ipvs import IpvsTable, RealServer, VirtualServer
from model.packet import Proto

__all__ = ["is_ipvsadm_text", "parse_ipvsadm"]

_SWITCH = {"-t": Proto.TCP, "--tcp-service": Proto.TCP, "-u": Proto.UDP, "--udp-service": Proto.UDP,
           "--sctp-service": Proto.SCTP}  # fmt: skip
_FORWARD = {"-m": "masq", "-g": "gate", "-i": "ipip", "Masq": "masq", "Route": "gate",
            "Local": "gate", "Tunnel": "ipip"}  # fmt: skip


def is_ipvsadm_text(text: str) -> bool:
    """Whether `text` starts as `ipvsadm-save -n` or `ipvsadm -Ln` prints."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        return line.startswith(("-A -t ", "-A -u ", "-A --sctp", "IP Virtual Server version"))
    return False


@dataclass
class _Reading:
    source: str
    services: list[VirtualServer] = field(default_factory=list)

    def fail(self, lineno: int, why: str) -> RulesParseError:
        return RulesParseError(f"{self.source}:{lineno}: {why}")

    def endpoint(self, text: str, lineno: int) -> tuple[IPv4Address, int]:
        host, colon, port = text.rpartition(":")
        try:
            if not colon:
                raise ValueError
            number = int(port)
            if not 0 <= number <= 65535:
                raise ValueError
            return IPv4Address(host), number
        except ValueError:
            raise self.fail(lineno, f"{text!r} is not an IPv4 address:port") from None

    def add_server(
        self, rs: RealServer, lineno: int, key: tuple[Proto, IPv4Address, int] | None
    ) -> None:
        if not self.services or (key is not None and self.services[-1].key != key):
            found = next((i for i, vs in enumerate(self.services) if vs.key == key), None)
            if found is None:
                raise self.fail(lineno, "a real server before its virtual server's line")
        else:
            found = len(self.services) - 1
        vs = self.services[found]
        self.services[found] = replace(vs, real_servers=(*vs.real_servers, rs))


def parse_ipvsadm(text: str, source: str) -> IpvsTable:
    """The virtual servers in `ipvsadm-save -n` or `ipvsadm -Ln` text."""
    reading = _Reading(source)
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("IP Virtual Server", "Prot LocalAddress", "-> RemoteAddress")):
            continue
        words = line.split()
        if words[0] in ("-A", "-a"):
            _save_line(reading, words, lineno)
        elif words[0] == "->":
            _list_server(reading, words, lineno)
        elif words[0].lower() in ("tcp", "udp", "sctp"):
            _list_service(reading, words, lineno)
        else:
            raise reading.fail(
                lineno,
                f"unexpected line {line[:40]!r} (expected `ipvsadm-save -n`'s -A/-a lines or"
                " `ipvsadm -Ln`'s service and -> lines)",
            )
    return IpvsTable(tuple(reading.services), source=source)


def _option(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words[:-1] else None


def _save_line(reading: _Reading, words: list[str], lineno: int) -> None:
    if len(words) < 3 or words[1] not in _SWITCH:
        raise reading.fail(
            lineno, "expected -t, -u or --sctp-service and VIP:PORT after " + words[0]
        )
    proto = _SWITCH[words[1]]
    ip, port = reading.endpoint(words[2], lineno)
    if words[0] == "-A":
        timeout = _option(words, "-p")
        mask = _option(words, "-M")
        flags = _option(words, "-b")
        reading.services.append(
            VirtualServer(
                proto,
                ip,
                port,
                _option(words, "-s") or "wlc",
                int(timeout) if timeout is not None and timeout.isdigit() else None,
                IPv4Address(mask) if mask else IPv4Address("255.255.255.255"),
                tuple(flags.split(",")) if flags else (),
                lineno=lineno,
            )
        )
        return
    server = _option(words, "-r")
    if server is None:
        raise reading.fail(lineno, "a real server line without -r IP:PORT")
    rip, rport = reading.endpoint(server, lineno)
    weight = _option(words, "-w")
    forward = next((_FORWARD[w] for w in words[3:] if w in ("-m", "-g", "-i")), "gate")
    rs = RealServer(rip, rport, int(weight) if weight and weight.isdigit() else 1, forward, lineno)
    reading.add_server(rs, lineno, (proto, ip, port))


def _list_service(reading: _Reading, words: list[str], lineno: int) -> None:
    if len(words) < 3:
        raise reading.fail(lineno, "a service line without its address and scheduler")
    ip, port = reading.endpoint(words[1], lineno)
    persistent = _option(words, "persistent")
    mask = _option(words, "mask")
    flags = next((w.strip("()") for w in words[3:] if w.startswith("(")), "")
    reading.services.append(
        VirtualServer(
            Proto(words[0].lower()),
            ip,
            port,
            words[2],
            int(persistent) if persistent is not None and persistent.isdigit() else None,
            IPv4Address(mask) if mask else IPv4Address("255.255.255.255"),
            tuple(flags.split(",")) if flags else (),
            lineno=lineno,
        )
    )


def _list_server(reading: _Reading, words: list[str], lineno: int) -> None:
    if len(words) < 4:
        raise reading.fail(lineno, "a real server line without its address, method and weight")
    ip, port = reading.endpoint(words[1], lineno)
    weight = int(words[3]) if words[3].isdigit() else 1
    rs = RealServer(ip, port, weight, _FORWARD.get(words[2], "masq"), lineno)
    reading.add_server(rs, lineno, None)
