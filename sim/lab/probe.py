"""Real traffic in the lab: listeners in the pods, one connection at a time from a source netns."""

from __future__ import annotations

import errno
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address
from pathlib import Path
from types import TracebackType

from model.packet import Proto
from sim.lab.failures import LabError
from sim.lab.netns import in_netns, netns_socket, popen_in_netns

CONNECT_TIMEOUT = 1.5
"""Seconds a connection may take before the kernel is said to have dropped it.

One SYN retransmission (at 1 s) fits in; a dropped SYN is never answered, so
waiting longer only makes `lab verify` slower.
"""

LISTENER = Path(__file__).with_name("listener.py")
"""The script each destination netns runs."""


class Outcome(StrEnum):
    """What the client's socket saw."""

    DELIVERED = "delivered"
    """Connected, and the server's answer came back."""
    REFUSED = "refused"
    """ECONNREFUSED: a TCP RST, or ICMP port unreachable (kube-proxy's REJECT)."""
    TIMEOUT = "timeout"
    """No answer at all within the timeout: dropped somewhere."""
    UNREACHABLE = "unreachable"
    """EHOSTUNREACH/ENETUNREACH: no route, or no ARP answer."""
    RESET = "reset"
    """Connected, then reset before the answer came."""
    DENIED = "denied"
    """EPERM: netfilter dropped (or rejected) the sender's own packet in its OUTPUT path."""


@dataclass(frozen=True)
class Observation:
    """One real connection: how it ended and what the server reported."""

    outcome: Outcome
    """How it ended."""
    sport: int
    """The client socket's source port (bound to port 0, so the kernel chose it)."""
    src: IPv4Address | None
    """The client socket's source address, once connected."""
    peer: tuple[IPv4Address, int] | None = None
    """The address the server saw the connection come from."""
    endpoint: tuple[IPv4Address, int] | None = None
    """The address the server was reached at (after DNAT: the endpoint)."""
    error: str = ""
    """The socket error, when there was one."""


_ERRNO_OUTCOME = {
    errno.ECONNREFUSED: Outcome.REFUSED,
    errno.EHOSTUNREACH: Outcome.UNREACHABLE,
    errno.ENETUNREACH: Outcome.UNREACHABLE,
    errno.ETIMEDOUT: Outcome.TIMEOUT,
    errno.ECONNRESET: Outcome.RESET,
    errno.EPERM: Outcome.DENIED,
}


def send(
    netns: str,
    dst: IPv4Address,
    dport: int,
    proto: Proto,
    *,
    timeout: float = CONNECT_TIMEOUT,
) -> Observation:
    """Open one connection (TCP) or exchange one datagram (UDP) from a fresh source port."""
    kind = socket.SOCK_STREAM if proto is Proto.TCP else socket.SOCK_DGRAM
    with netns_socket(netns, socket.AF_INET, kind) as sock:
        sock.settimeout(timeout)
        sock.bind(("0.0.0.0", 0))
        sport = sock.getsockname()[1]
        src: IPv4Address | None = None
        try:
            sock.connect((str(dst), dport))
            src = IPv4Address(sock.getsockname()[0])
            if proto is not Proto.TCP:
                sock.send(b"?\n")
            answer = _read_line(sock, timeout)
        except TimeoutError:
            return Observation(Outcome.TIMEOUT, sport, src, error="timed out")
        except OSError as err:
            outcome = _ERRNO_OUTCOME.get(err.errno or 0)
            if outcome is None:
                raise LabError(f"connect to {dst}:{dport} from {netns}: {err}") from err
            return Observation(outcome, sport, src, error=err.strerror or str(err))
    if answer is None:
        return Observation(Outcome.RESET, sport, src, error="closed without an answer")
    peer_ip, peer_port, local_ip, local_port = answer.split()
    return Observation(
        Outcome.DELIVERED,
        sport,
        src,
        peer=(IPv4Address(peer_ip), int(peer_port)),
        endpoint=(IPv4Address(local_ip), int(local_port)),
    )


def _read_line(sock: socket.socket, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(256)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\n", 1)[0].decode()


@dataclass(frozen=True)
class ListenSpec:
    """What one netns listens on."""

    netns: str
    """The lab netns."""
    tcp: tuple[int, ...]
    """TCP ports."""
    udp: tuple[int, ...]
    """UDP ports."""


class Listeners:
    """The listener processes of a verify run; a context manager that always ends them."""

    def __init__(self, specs: list[ListenSpec], *, lifetime: float = 900.0) -> None:
        self.specs = specs
        self.lifetime = lifetime
        self.procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> Listeners:
        try:
            for spec in self.specs:
                argv = [sys.executable, "-I", str(LISTENER), "--lifetime", str(self.lifetime)]
                if spec.tcp:
                    argv += ["--tcp", *map(str, spec.tcp)]
                if spec.udp:
                    argv += ["--udp", *map(str, spec.udp)]
                self.procs.append(popen_in_netns(spec.netns, argv))
            deadline = time.monotonic() + 15.0
            for spec, proc in zip(self.specs, self.procs, strict=True):
                self._wait_ready(spec, proc, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def _wait_ready(spec: ListenSpec, proc: subprocess.Popen[str], deadline: float) -> None:
        assert proc.stdout is not None
        left = max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([proc.stdout], [], [], left)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            proc.kill()
            err = proc.stderr.read().strip().splitlines() if proc.stderr else []
            raise LabError(
                f"the listener in {spec.netns} did not start: {err[-1] if err else 'no answer'}"
            )

    def stop(self) -> None:
        """End every listener (closing its stdin alone would do; this is quicker)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=2.0)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        self.procs = []


@dataclass(frozen=True)
class KernelEntry:
    """One line of `conntrack -L`: the original and reply tuples."""

    proto: Proto
    """tcp or udp."""
    original: tuple[IPv4Address, IPv4Address, int, int]
    """(src, dst, sport, dport) of the connection's first packet."""
    reply: tuple[IPv4Address, IPv4Address, int, int]
    """(src, dst, sport, dport) a reply carries."""
    state: str
    """TCP state, or "" for UDP."""

    def __str__(self) -> str:
        o, r = self.original, self.reply
        return f"{self.proto.value} {o[0]}:{o[2]}→{o[1]}:{o[3]} | reply {r[0]}:{r[2]}→{r[1]}:{r[3]}"


def conntrack_flush(netns: str) -> None:
    """Forget every connection in a lab netns (`conntrack -F`)."""
    in_netns(netns, ["conntrack", "-F"], check=False)


def conntrack_list(netns: str, proto: Proto) -> list[KernelEntry]:
    """The connections of one protocol in a lab netns (`conntrack -L -p PROTO`)."""
    done = in_netns(netns, ["conntrack", "-L", "-p", proto.value], check=False)
    entries: list[KernelEntry] = []
    for line in done.stdout.splitlines():
        fields = line.split()
        pairs = [f.split("=", 1) for f in fields if "=" in f]
        values: dict[str, list[str]] = {}
        for key, value in pairs:
            values.setdefault(key, []).append(value)
        if len(values.get("src", ())) < 2 or len(values.get("sport", ())) < 2:
            continue
        state = fields[3] if proto is Proto.TCP and len(fields) > 3 else ""

        def tup(
            i: int, v: dict[str, list[str]] = values
        ) -> tuple[IPv4Address, IPv4Address, int, int]:
            return (
                IPv4Address(v["src"][i]),
                IPv4Address(v["dst"][i]),
                int(v["sport"][i]),
                int(v["dport"][i]),
            )

        entries.append(KernelEntry(proto, tup(0), tup(1), state))
    return entries


def zero_counters(netns: str) -> None:
    """Zero the filter table's packet counters in a lab netns (`iptables -Z`)."""
    in_netns(netns, ["iptables", "-w", "5", "-t", "filter", "-Z"], check=False)


def drop_rules_hit(netns: str) -> list[tuple[str, int]]:
    """The filter rules ending in DROP or REJECT that counted packets, with their counts."""
    done = in_netns(netns, ["iptables-save", "-c", "-t", "filter"], check=False)
    hit: list[tuple[str, int]] = []
    for line in done.stdout.splitlines():
        if not line.startswith("[") or not (" -j DROP" in line or " -j REJECT" in line):
            continue
        counters, _, rule = line.partition("] ")
        packets = int(counters[1:].split(":")[0])
        if packets:
            hit.append((rule, packets))
    return hit
