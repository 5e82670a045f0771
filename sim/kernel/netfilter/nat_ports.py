"""The source port SNAT and MASQUERADE leave a connection with (nf_nat's unique tuple).

The kernel keeps the packet's source port when the reply tuple it makes is free,
and otherwise searches the range for one that is; `--random` and
`--random-fully` draw instead.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address

from model.netfilter import PortRange
from model.packet import ConntrackTuple
from sim.kernel.conntrack import ConntrackTable

__all__ = ["pick_source_port"]


def pick_source_port(
    conntrack: ConntrackTable,
    reply: ConntrackTuple,
    addr: IPv4Address,
    ports: PortRange | None,
    sport: int,
    randomize: bool,
    rng: random.Random,
) -> int:
    """The source port after SNAT to `addr`: `sport` kept when free, else another in the
    range, for the connection whose reply tuple is `reply`.

    Simplifications: `--random` and `--random-fully` both draw uniformly
    from the range (1024-65535 by default) with `rng`, where the kernel
    uses a keyed hash or prandom and a privileged source port keeps to
    1-1023; a clash walks upward from the range start instead of from a
    hashed offset.
    """
    lo, hi = (ports.lo, ports.hi) if ports is not None else (1024, 65535)
    lo = max(lo, 1)

    def free(port: int) -> bool:
        return not conntrack.tuple_in_use(reply.model_copy(update={"dst": addr, "dport": port}))

    if randomize:
        for _ in range(64):
            port = rng.randint(lo, hi)
            if free(port):
                return port
    elif (ports is None or lo <= sport <= hi) and free(sport):
        return sport
    for port in range(lo, hi + 1):
        if free(port):
            return port
    return lo
