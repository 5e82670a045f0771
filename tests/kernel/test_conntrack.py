"""The conntrack table: lookups by either tuple, and immutability."""

from __future__ import annotations

from ipaddress import IPv4Address

from model.netfilter import Hook
from model.packet import ConntrackEntry, ConntrackTuple, CtState, Proto
from model.trace import Direction, HopKind, Trace
from sim.cluster.load import demo_cluster
from sim.kernel.conntrack import ConntrackTable, ConntrackView, CtDirection, conntrack_view
from sim.trace import tracer
from sim.trace.request import Request


def tup(src: str, sport: int, dst: str, dport: int, proto: Proto = Proto.TCP) -> ConntrackTuple:
    return ConntrackTuple(
        proto=proto, src=IPv4Address(src), dst=IPv4Address(dst), sport=sport, dport=dport
    )


# A pod's connection to a ClusterIP, DNATed to an endpoint on another node.
ORIGINAL = tup("10.244.1.5", 40000, "10.96.14.20", 80)
REPLY = tup("10.244.2.4", 8080, "10.244.1.5", 40000)
ENTRY = ConntrackEntry(original=ORIGINAL, reply=REPLY, dnat=True, confirmed=True)


def test_lookup_by_original_tuple_is_original_direction() -> None:
    found = ConntrackTable.of([ENTRY]).lookup(ORIGINAL)
    assert found is not None
    assert found.entry == ENTRY
    assert found.direction is CtDirection.ORIGINAL


def test_lookup_by_reply_tuple_is_reply_direction() -> None:
    found = ConntrackTable.of([ENTRY]).lookup(REPLY)
    assert found is not None
    assert found.entry == ENTRY
    assert found.direction is CtDirection.REPLY


def test_inverted_original_is_not_the_reply_after_dnat() -> None:
    # The reply comes from the endpoint, not from the ClusterIP: a packet from
    # the ClusterIP belongs to no connection.
    assert ConntrackTable.of([ENTRY]).lookup(ORIGINAL.inverted()) is None


def test_with_entry_leaves_the_old_table_unchanged() -> None:
    empty = ConntrackTable()
    one = empty.with_entry(ENTRY)
    assert len(empty) == 0
    assert empty.lookup(ORIGINAL) is None
    assert len(one) == 1
    assert list(one) == [ENTRY]


def test_with_entry_replaces_by_original_and_reindexes_the_reply() -> None:
    snat_reply = tup("10.244.2.4", 8080, "172.18.0.2", 61001)
    updated = ENTRY.model_copy(update={"reply": snat_reply, "snat": True})
    table = ConntrackTable.of([ENTRY]).with_entry(updated)
    assert len(table) == 1
    assert table.lookup(REPLY) is None
    found = table.lookup(snat_reply)
    assert found is not None and found.entry == updated


def test_replacing_state_keeps_both_keys() -> None:
    established = ENTRY.model_copy(update={"state": CtState.ESTABLISHED})
    table = ConntrackTable.of([ENTRY]).with_entry(established)
    assert table.get(ORIGINAL) == established
    found = table.lookup(REPLY)
    assert found is not None and found.entry.state is CtState.ESTABLISHED


def test_without_removes_both_keys() -> None:
    table = ConntrackTable.of([ENTRY]).without(ORIGINAL)
    assert ORIGINAL not in table
    assert REPLY not in table
    assert len(table) == 0


def test_without_unknown_tuple_returns_same_table() -> None:
    table = ConntrackTable.of([ENTRY])
    assert table.without(REPLY) is table


def test_tuple_in_use_sees_both_directions() -> None:
    table = ConntrackTable.of([ENTRY])
    assert table.tuple_in_use(ORIGINAL)
    assert table.tuple_in_use(REPLY)
    assert not table.tuple_in_use(tup("10.244.2.4", 8080, "10.244.1.5", 40001))


def test_protocol_is_part_of_the_key() -> None:
    udp = tup("10.244.1.5", 40000, "10.96.14.20", 80, Proto.UDP)
    assert ConntrackTable.of([ENTRY]).lookup(udp) is None


def test_thousands_of_entries() -> None:
    entries = [
        ConntrackEntry(
            original=tup("10.244.1.5", port, "10.96.0.10", 53, Proto.UDP),
            reply=tup("10.244.3.2", 53, "10.244.1.5", port, Proto.UDP),
            dnat=True,
            confirmed=True,
        )
        for port in range(20000, 25000)
    ]
    table = ConntrackTable.of(entries)
    assert len(table) == 5000
    found = table.lookup(tup("10.244.3.2", 53, "10.244.1.5", 24321, Proto.UDP))
    assert found is not None
    assert found.direction is CtDirection.REPLY
    assert found.entry.original.sport == 24321


def _view_at(trace: Trace, netns: str, hook: Hook, direction: Direction) -> ConntrackView:
    hop = next(
        h
        for h in trace.hops
        if h.where.netns == netns and h.where.hook is hook and h.direction is direction
    )
    return conntrack_view(trace, hop.seq)


def test_a_hops_entry_before_and_after_follows_the_connection_through_its_netns() -> None:
    trace = tracer.trace(
        demo_cluster(), Request("pod1", "svc-b:80", seed=7, pick="192.168.2.2:8080")
    )
    created = _view_at(trace, "node-a", Hook.PREROUTING, Direction.REQUEST)
    assert created.before is None and created.changed == {"new"}
    assert created.after is not None and created.after.dnat and not created.after.confirmed
    assert created.after.reply.src == IPv4Address("192.168.2.2")

    confirmed = _view_at(trace, "node-a", Hook.POSTROUTING, Direction.REQUEST)
    assert confirmed.before == created.after
    assert confirmed.changed == {"confirmed"}

    replied = _view_at(trace, "node-a", Hook.PREROUTING, Direction.REPLY)
    assert replied.before is not None and replied.before.state is CtState.NEW
    assert replied.after is not None and replied.after.state is CtState.ESTABLISHED
    assert replied.changed == {"state"}


def test_between_hooks_the_entry_is_as_the_last_hook_left_it() -> None:
    trace = tracer.trace(
        demo_cluster(), Request("pod1", "svc-b:80", seed=7, pick="192.168.2.2:8080")
    )
    route = next(h for h in trace.hops if h.kind is HopKind.ROUTE and h.where.netns == "node-a")
    view = conntrack_view(trace, route.seq)
    assert not view.at_hook and view.changed == frozenset()
    assert view.after is not None and view.after == view.before and view.after.dnat
    pod = conntrack_view(trace, 0)  # pods' netns run no hooks in kubehop's model
    assert pod.before is None and pod.after is None
