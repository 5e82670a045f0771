"""What every mode's explanations share: how a hop's sentence is put."""

from __future__ import annotations

__all__ = ["capitalised", "conntrack_destination", "conntrack_source"]

from model.packet import Packet


def capitalised(sentence: str) -> str:
    """`sentence` with a capital, unless it starts with a name (`cali-PREROUTING #1 …`)."""
    first = sentence.split(" ", 1)[0]
    return sentence[0].upper() + sentence[1:] if first.isalpha() and first.islower() else sentence


def conntrack_destination(before: Packet, after: Packet, *, original: bool) -> str:
    """The clause for a destination conntrack rewrote without a rule: a later packet of the
    connection gets its DNAT again, a reply has its SNAT reversed."""
    change = f"destination {before.dst}:{before.dport} → {after.dst}:{after.dport}"
    what = "applies the connection's DNAT again" if original else "reverses the SNAT"
    return (
        f"conntrack {what}: {change} (no rule is consulted: the connection already has its mapping)"
    )


def conntrack_source(before: Packet, after: Packet, *, original: bool) -> str:
    """The clause for a source conntrack rewrote without a rule: a later packet of the
    connection gets its SNAT again, a reply has its DNAT reversed."""
    change = f"source {before.src}:{before.sport} → {after.src}:{after.sport}"
    if original:
        return (
            f"conntrack applies the connection's SNAT again: {change} (no rule is consulted:"
            " the connection already has its mapping)"
        )
    return (
        f"conntrack reverses the DNAT: {change}, so the reply seems to come from the address"
        " the client asked for"
    )
