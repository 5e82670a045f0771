"""A node's view of the entries a CNI writes about every node: the others', never its own."""

from __future__ import annotations

import pytest

from sim.cni.peers import Peers, peer_entries


def test_a_node_sees_every_other_nodes_entry_in_order() -> None:
    entries = peer_entries(
        [("a", "10.0.1.0", "mac-a"), ("b", "10.0.2.0", "mac-b"), ("c", "10.0.3.0", "mac-c")]
    )
    view = Peers(entries, "b")
    assert list(view) == ["10.0.1.0", "10.0.3.0"]
    assert dict(view) == {"10.0.1.0": "mac-a", "10.0.3.0": "mac-c"}
    assert len(view) == 2
    assert "10.0.2.0" not in view
    with pytest.raises(KeyError):
        view["10.0.2.0"]


def test_a_key_two_nodes_write_keeps_the_other_nodes_value() -> None:
    # Two nodes annotated with the same VTEP MAC: each node's FDB holds the other's address,
    # as a table written from the other nodes alone would.
    entries = peer_entries(
        [("a", "mac", "10.0.0.1"), ("b", "mac", "10.0.0.2"), ("c", "x", "10.0.0.3")]
    )
    assert Peers(entries, "a")["mac"] == "10.0.0.2"
    assert Peers(entries, "b")["mac"] == "10.0.0.1"
    assert Peers(entries, "c")["mac"] == "10.0.0.2"
    assert Peers(entries, "c") == {"mac": "10.0.0.2"}
